r"""Panel and page embeddings of a corpus from a trained checkpoint.

    python -m training.embed --checkpoint RUN/best.pt --json_dir PAGES \
        --image_root IMAGES --output_dir EMB

EMB gets page_embeddings.npy (pages x dim), panel_embeddings.npy (panels x dim; a panel's
state in the context of its page), and index.csv: one row per embedding, `kind` page or
panel, `row` in its array, the page's row, the JSON and image paths, and for panels the
index in the page's `panels` list, the reading position, the box and `text`: present, none
(known to have no lettered text) or unknown (`text_known: false`; the panel was embedded
with its text masked, never as an empty text). Pages that cannot be used are listed in
skipped_pages.csv. When no page can be embedded the command exits 1 naming the input
(EMB then gets only skipped_pages.csv).
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from dataspec.io import atomic_open, atomic_write_bytes

from .cli import (
    CONTEXT,
    Args,
    SkipLog,
    args_of,
    checkpoint_option,
    doc_help,
    first_reasons,
    flag,
    inference_loader,
    invoke,
    loader_options,
    open_checkpoint,
    output_bytes,
    path_type,
    progress_option,
    source_of,
    source_options,
)
from .data import TEXT_STATES
from .progress import Progress
from .rundir import write_csv

log = logging.getLogger(__name__)

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
    help="Where the arrays, index.csv and skipped_pages.csv go (created).",
)
@loader_options
@progress_option
def command(**params: Any) -> int:
    return embed(args_of(params))  # fmt: skip


@torch.no_grad()
def embed(args: Args) -> int:
    """Embed every usable page and panel; the exit status."""
    opened = open_checkpoint(args)
    if opened is None:
        return 1
    model, config, _, paths, device = opened
    config, _, loader = inference_loader(args, config, paths, shuffle_slots=False)
    pages: list[np.ndarray] = []
    panels: list[np.ndarray] = []
    index = io.StringIO()
    writer = csv.writer(index, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    skipped: list[tuple[str, str, str]] = []
    skip_log = SkipLog(log)
    n_pages = n_panels = 0
    bar = Progress(len(loader), "embed", enabled=args.progress)
    for batch in loader:
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
                [
                    "page",
                    page_row,
                    page_row,
                    meta.json_path,
                    meta.image_path,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
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
    page_array = np.concatenate(pages) if pages else np.zeros((0, dim), np.float32)
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
