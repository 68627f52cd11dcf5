r"""Panel and page embeddings of a corpus from a trained checkpoint, streamed to a store.

    python -m training.embed --checkpoint RUN/best.pt --json_dir PAGES \
        --image_root IMAGES --output_dir EMB [--resume] [--dtype float32]

EMB gets `embeddings.zarr`, a Zarr group (`training/store.py` lists its arrays): per page
the page embedding, the vision encoder's embedding of the whole page image, and the
metadata row (JSON and image paths, size); per panel slot (the first `max_panels` in
reading order) the panel's state in its page's context, its vision and text encoder
outputs, its box, index, text state (present, none, or unknown: embedded with its text
masked, never as an empty text) and lettered text. Rows are written a chunk at a time
(`--chunk_pages`), so memory stays that of a batch and a chunk; a killed run continues
with `--resume` and ends with the store an uninterrupted run writes. An output folder that
already holds embeddings is refused unless `--resume` (an unfinished store) or
`--overwrite`. Pages that cannot be used are listed in skipped_pages.csv; when no page can
be embedded the command exits 1 naming the input. `python -m training.search` queries the
store.

`--format npy` writes the earlier output instead, held in memory: page_embeddings.npy,
panel_embeddings.npy and index.csv (one row per embedding: `kind` page or panel, `row`,
`page_row`, JSON and image paths, panel index, reading position, box, text state).
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from dataspec.io import atomic_open, atomic_write_bytes

from .batches import Batch, Collate
from .cli import (
    CONTEXT,
    Args,
    SkipLog,
    args_of,
    checkpoint_option,
    doc_help,
    first_reasons,
    flag,
    invoke,
    loader_options,
    open_checkpoint,
    output_bytes,
    path_type,
    progress_option,
    source_of,
    source_options,
)
from .data import TEXT_STATES, PageDataset
from .look import LOOK_DIM
from .progress import Progress
from .rundir import write_csv
from .store import (
    FLOAT_DTYPES,
    STORE_NAME,
    Rows,
    Skip,
    Store,
    StoreError,
    StoreWriter,
    file_digest,
    inputs_digest,
    store_state,
    text_of,
    texts_of,
)

log = logging.getLogger(__name__)

NPY_OUTPUTS = ("page_embeddings.npy", "panel_embeddings.npy", "index.csv")

INDEX_COLUMNS = (
    "kind",
    "row",
    "page_row",
    "json_path",
    "image_path",
    "panel_index",
    "reading_position",
    "x",
    "y",
    "w",
    "h",
    "text",
)


@click.command(name="training.embed", help=doc_help(__doc__), context_settings=CONTEXT)
@checkpoint_option
@source_options
@flag(
    "output_dir",
    type=path_type(file_okay=False),
    required=True,
    metavar="DIR",
    help="Where the store (or the arrays and index.csv) and skipped_pages.csv go (created).",
)
@flag(
    "format",
    dest="output_format",
    type=click.Choice(["zarr", "npy"]),
    default="zarr",
    help="zarr: the chunked, resumable store; npy: the earlier in-memory .npy + index.csv.",
)
@flag("resume", is_flag=True, help="Continue the unfinished store in --output_dir.")
@flag("overwrite", is_flag=True, help="Replace the embeddings already in --output_dir.")
@flag(
    "dtype",
    type=click.Choice(FLOAT_DTYPES),
    default="float16",
    help="Float type of the stored embeddings (zarr).",
)
@flag(
    "chunk_pages",
    type=click.IntRange(min=1),
    default=1024,
    help="Pages per storage chunk and per commit (zarr).",
)
@loader_options
@progress_option
def command(**params: Any) -> int:
    return embed(args_of(params))  # fmt: skip


def held_outputs(out_dir: Path) -> list[str]:
    """The embedding outputs already in `out_dir` (the store, the .npy files, index.csv)."""
    held = [name for name in NPY_OUTPUTS if (out_dir / name).exists()]
    if store_state(out_dir) is not None or (out_dir / STORE_NAME).exists():
        held.insert(0, STORE_NAME)
    return held


def _refuse(args: Args) -> str | None:
    """Why the run may not write to `--output_dir`, or None."""
    out_dir: Path = args.output_dir
    if args.resume and args.overwrite:
        raise click.UsageError("--resume is not allowed with --overwrite: give one of them")
    if args.resume and args.output_format != "zarr":
        raise click.UsageError("--resume needs --format zarr (the .npy output is not resumable)")
    held = held_outputs(out_dir)
    if args.overwrite or not held:
        if args.resume and store_state(out_dir) is None:
            return f"{out_dir}: no unfinished store to resume (run without --resume)"
        return None
    state = store_state(out_dir)
    if args.resume:
        if state == "unfinished":
            return None
        if state == "complete":
            return f"{out_dir / STORE_NAME}: the store is complete; nothing to resume"
        return f"{out_dir}: no unfinished store to resume; it holds {', '.join(held)}"
    what = {"unfinished": "an unfinished store (--resume continues it)"}.get(state or "", "")
    return (
        f"{out_dir} already holds embeddings ({', '.join(held)}{'; ' + what if what else ''}); "
        "give --overwrite to replace them"
    )


@torch.no_grad()
def embed(args: Args) -> int:
    """Embed every usable page and panel; the exit status."""
    refusal = _refuse(args)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 1
    opened = open_checkpoint(args)
    if opened is None:
        return 1
    model, config, _, paths, device = opened
    if args.output_format == "npy":
        return _embed_npy(args, model, config, paths, device)
    return _embed_store(args, model, config, paths, device)


def _batches(
    args: Args, config: Any, paths: Sequence[Path], start: int, page_crops: bool
) -> Iterator[tuple[Batch, int]]:
    """(batch, inputs read after it) over the inputs from `start`, in input order, in
    batches of `--batch_size` counted from the first input (a resumed run sees the same
    batches as an uninterrupted one)."""
    dataset = PageDataset(
        list(paths),
        image_root=args.image_root,
        config=config,
        shuffle_slots=False,
        strict_paths=args.strict_paths,
        page_crops=page_crops,
    )
    size = args.batch_size
    first = start - start % size
    groups = [
        list(range(max(i, start), min(i + size, len(paths))))
        for i in range(first, len(paths), size)
    ]
    groups = [g for g in groups if g]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=groups,
        num_workers=args.num_workers,
        collate_fn=Collate(config.max_panels),
    )
    for group, batch in zip(groups, loader, strict=True):
        yield batch, group[-1] + 1


def _rows(out: dict[str, torch.Tensor], batch: Batch, max_panels: int) -> Rows:
    """A batch's model outputs in the store's layout (slots are reading positions)."""
    b, p = len(batch), max_panels
    d = out["page"].shape[-1]
    states = out["states"].float().cpu().numpy()
    flat_vision = out["vision"].float().cpu().numpy()
    flat_text = out["text"].float().cpu().numpy()
    vision = np.zeros((b, p, d), np.float32)
    text = np.zeros((b, p, d), np.float32)
    panel_states = np.zeros((b, p, d), np.float32)
    mask = np.zeros((b, p), bool)
    text_state = np.full((b, p), -1, np.int8)
    box = np.zeros((b, p, 4), np.int32)
    index = np.full((b, p), -1, np.int16)
    lines = np.full((b, p), "", dtype=object)  # text_of: valid Unicode only
    real = batch.panel_mask.cpu().numpy()
    flat_row = np.cumsum(real.ravel()).reshape(real.shape) - 1
    position = batch.position.cpu().numpy()
    states_in = batch.text_state.cpu().numpy()
    for row, meta in enumerate(batch.pages):
        for slot in range(len(meta.boxes)):
            at = int(position[row, slot])
            k = int(flat_row[row, slot])
            panel_states[row, at] = states[row, slot]
            vision[row, at] = flat_vision[k]
            text[row, at] = flat_text[k]
            mask[row, at] = True
            text_state[row, at] = states_in[row, slot]
            box[row, at] = meta.boxes[slot]
            index[row, at] = meta.panel_index[slot]
            lines[row, at] = text_of(batch.texts[k])
    sizes = np.array([m.page_size for m in batch.pages], np.int32).reshape(b, 2)
    return Rows(
        page_embedding=out["page"].float().cpu().numpy(),
        page_image=out["page_image"].float().cpu().numpy(),
        page_look=_looks(batch.pages),
        panel_embedding=panel_states,
        panel_vision=vision,
        panel_text=text,
        panel_mask=mask,
        panel_text_state=text_state,
        panel_box=box,
        panel_index=index,
        panel_lines=lines,
        page_json_path=texts_of([m.json_path for m in batch.pages]),
        page_image_path=texts_of([m.image_path for m in batch.pages]),
        page_size=sizes,
        page_panels_total=np.array([m.panels_total for m in batch.pages], np.int32),
        page_input=np.array([m.index for m in batch.pages], np.int64),
    )


def _looks(pages: Sequence[Any]) -> np.ndarray:
    """(B, LOOK_DIM) the pages' looks (zero for a page whose image was not read)."""
    out = np.zeros((len(pages), LOOK_DIM), np.float32)
    for row, meta in enumerate(pages):
        if meta.look is not None:
            out[row] = meta.look
    return out


def fingerprint(args: Args, config: Any, paths: Sequence[Path]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues."""
    return {
        "checkpoint_sha256": file_digest(args.checkpoint),
        "inputs_sha256": inputs_digest(paths),
        "inputs": len(paths),
        "image_root": args.image_root,
        "strict_paths": bool(args.strict_paths),
        "batch_size": args.batch_size,
        "dtype": args.dtype,
        "chunk_pages": args.chunk_pages,
        "rtl": config.rtl,
    }


def _embed_store(args: Args, model: Any, config: Any, paths: Sequence[Path], device: Any) -> int:
    out_dir: Path = args.output_dir
    if args.overwrite:
        for name in held_outputs(out_dir):
            target = out_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
    try:
        writer = StoreWriter.open(
            out_dir,
            dim=config.dim,
            max_panels=config.max_panels,
            dtype=args.dtype,
            chunk_pages=args.chunk_pages,
            fingerprint=fingerprint(args, config, paths),
            model_config=config.to_dict(),
            checkpoint=str(Path(args.checkpoint).resolve()),
            resume=args.resume,
        )
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    start = writer.inputs
    earlier = writer.skipped
    this_run: list[tuple[str, str, str]] = []
    if args.resume:
        log.info("resuming %s at page %d of %d", out_dir / STORE_NAME, start, len(paths))
    skip_log = SkipLog(log)
    left = len(paths) - start
    bar = Progress((left + args.batch_size - 1) // args.batch_size, "embed", enabled=args.progress)
    for batch, read in _batches(args, config, paths, start, page_crops=True):
        bar.update()
        skips = [Skip(s.index, s.json_path, s.reason, s.kind) for s in batch.skipped]
        this_run.extend((s.json_path, s.reason, s.kind) for s in batch.skipped)
        for s in batch.skipped:
            skip_log.add(s.json_path, s.reason, s.kind)
        rows = None
        if len(batch):
            rows = _rows(model.embed(batch.to(device)), batch, config.max_panels)
        writer.add(rows, skips, read)
    bar.close()
    writer.finish()
    store = Store(out_dir)
    # skips committed before a resume come from the store (paths as stored); this run's as read
    skipped = [
        *zip(
            store.array("skipped_path")[:earlier].tolist(),
            store.array("skipped_reason")[:earlier].tolist(),
            store.array("skipped_kind")[:earlier].tolist(),
            strict=True,
        ),
        *this_run,
    ]
    if skipped:
        write_csv(
            out_dir / "skipped_pages.csv", ["path", "reason", "kind"], [list(r) for r in skipped]
        )
        skip_log.summary(f"every one is listed in {out_dir / 'skipped_pages.csv'}")
    if not store.n_pages:
        first = first_reasons([r for _, r, _ in skipped])
        print(
            f"error: {source_of(args)}: no page could be embedded ({len(paths)} found, "
            f"{len(skipped)} skipped as unusable){f'; first: {first}' if first else ''}. "
            "The store holds no page.",
            file=sys.stderr,
        )
        return 1
    n_panels = int(store.array("panel_mask").sum())
    print(
        f"{store.n_pages} pages, {n_panels} panels embedded (dim {config.dim}); "
        f"{len(skipped)} pages skipped → {store.path}"
    )
    return 0


def _embed_npy(args: Args, model: Any, config: Any, paths: Sequence[Path], device: Any) -> int:
    pages: list[np.ndarray] = []
    panels: list[np.ndarray] = []
    index = io.StringIO()
    writer = csv.writer(index, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    skipped: list[tuple[str, str, str]] = []
    skip_log = SkipLog(log)
    n_pages = n_panels = 0
    bar = Progress(
        (len(paths) + args.batch_size - 1) // args.batch_size, "embed", enabled=args.progress
    )
    for batch, _ in _batches(args, config, paths, 0, page_crops=False):
        bar.update()
        skipped.extend((s.json_path, s.reason, s.kind) for s in batch.skipped)
        for s in batch.skipped:
            skip_log.add(s.json_path, s.reason, s.kind)
        if not len(batch):
            continue
        out = model(batch.to(device))
        states = out["states"].float().cpu().numpy()
        pages.append(out["page"].float().cpu().numpy())
        for row, meta in enumerate(batch.pages):
            page_row = n_pages
            writer.writerow(
                ["page", page_row, page_row, meta.json_path, meta.image_path, *[""] * 7]
            )
            n_pages += 1
            position = batch.position[row].tolist()
            text_state = batch.text_state[row].tolist()
            for slot in sorted(range(len(meta.boxes)), key=lambda s: position[s]):
                panels.append(states[row, slot])
                writer.writerow(
                    [
                        "panel",
                        n_panels,
                        page_row,
                        meta.json_path,
                        meta.image_path,
                        meta.panel_index[slot],
                        position[slot],
                        *meta.boxes[slot],
                        TEXT_STATES[text_state[slot]],
                    ]
                )
                n_panels += 1
    bar.close()
    out_dir: Path = args.output_dir
    if args.overwrite:
        for name in NPY_OUTPUTS:
            (out_dir / name).unlink(missing_ok=True)
    if skipped:
        write_csv(
            out_dir / "skipped_pages.csv", ["path", "reason", "kind"], list(map(list, skipped))
        )
        skip_log.summary(f"every one is listed in {out_dir / 'skipped_pages.csv'}")
    if not n_pages:
        first = first_reasons([r for _, r, _ in skipped])
        print(
            f"error: {source_of(args)}: no page could be embedded ({len(paths)} found, "
            f"{len(skipped)} skipped as unusable){f'; first: {first}' if first else ''}. "
            "No embeddings written.",
            file=sys.stderr,
        )
        return 1
    dim = config.dim
    page_array = np.concatenate(pages)
    panel_array = np.stack(panels) if panels else np.zeros((0, dim), np.float32)
    for name, array in (("page_embeddings.npy", page_array), ("panel_embeddings.npy", panel_array)):
        with atomic_open(out_dir / name, "wb") as fh:
            np.save(fh, array.astype(np.float32))
    atomic_write_bytes(out_dir / "index.csv", output_bytes(index.getvalue()))
    print(
        f"{n_pages} pages, {n_panels} panels embedded (dim {dim}); "
        f"{len(skipped)} pages skipped → {out_dir}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.embed` with `argv`; returns the exit status."""
    return invoke(command, argv, "python -m training.embed")


if __name__ == "__main__":
    raise SystemExit(main())
