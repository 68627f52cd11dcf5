r"""Write every page with the model's reading order.

    python -m training.predict --checkpoint RUN/best.pt --json_dir PAGES \
        --image_root IMAGES --out_dir PREDICTED [--render_disagreements RENDERS]

Each usable page is written to --out_dir (a new folder: an existing one that is not empty
is refused unless --overwrite) at its place in the input tree below the inputs' common
folder, with the model's decoded reading order (best first panel, then the best unvisited
successor) as `reading_order` and `reading_order_source: "model"`, via `dataspec.dump`
(atomic; the strict loader reads it back). The image path is written resolved (absolute),
so the page still finds its image from its new place. Panels beyond the checkpoint's
--max_panels follow the model's in the page's own order. OUT_DIR also gets
predicted_pages.txt (every page written, one path a line) and skipped_pages.csv (pages
that could not be read or written: path, reason naming the file, kind). With
--render_disagreements DIR, pages where the model's order differs from the layout
heuristic's (`dataspec.reading_order`, the run's direction) are drawn side by side
(`dataspec.render`), at most --max_renders of them. When no page can be written the
command exits 1 naming the input.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import torch

import dataspec
from dataspec.io import atomic_write_bytes, output_path

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
from .data import PageError, PageMeta
from .order_eval import decode_order
from .progress import Progress
from .rundir import write_csv

log = logging.getLogger(__name__)

LIST_NAME = "predicted_pages.txt"
SKIPS_NAME = "skipped_pages.csv"
_OWN = (LIST_NAME, SKIPS_NAME)


@click.command(name="training.predict", help=doc_help(__doc__), context_settings=CONTEXT)
@checkpoint_option
@source_options
@flag(
    "out_dir",
    type=path_type(file_okay=False),
    required=True,
    metavar="DIR",
    help="A new folder for the predicted pages, predicted_pages.txt and skipped_pages.csv.",
)
@flag(
    "overwrite",
    is_flag=True,
    help="Write into a non-empty --out_dir (or --render_disagreements folder), replacing "
    "files of the same names; other files stay.",
)
@flag(
    "render_disagreements",
    type=path_type(file_okay=False),
    default=None,
    metavar="DIR",
    help="Draw pages where the model's order differs from the layout heuristic's here "
    "(model left, heuristic right; a new folder unless --overwrite).",
)
@flag(
    "max_renders",
    type=click.IntRange(min=0),
    default=50,
    help="Draw at most this many disagreements (the rest are counted).",
)
@loader_options
@click.option(
    "--rtl/--ltr",
    "rtl",
    default=None,
    show_default=True,
    help="Right-to-left or left-to-right heuristic order (the panels kept, the renders' "
    "comparison) [default: as trained].",
)
@flag("seed", type=int, default=0, help="Seeds the panel slot order.")
@progress_option
def command(**params: Any) -> int:
    return predict(args_of(params))  # fmt: skip


def _refuse_non_empty(folder: Path | None, what: str, overwrite: bool) -> str | None:
    """Why `folder` cannot be written to, or None."""
    if folder is None or not os.path.lexists(folder):
        return None
    if not folder.is_dir():
        return f"{what} {folder} is not a folder"
    if overwrite:
        return None
    entries = sorted(os.listdir(folder))
    if not entries:
        return None
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    return (
        f"{what} {folder} is not empty ({shown}); nothing was written. Give a new folder, "
        "or --overwrite to write into it"
    )


def common_root(paths: list[Path]) -> Path:
    """The deepest folder holding every page file (their tree is mirrored below it)."""
    return Path(os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]))


def _model_order(meta: PageMeta, page: dataspec.Page, nxt: Any, start: Any, rtl: bool) -> list[int]:
    """The model's order of the page's panels: its decoded order of the panels it saw,
    then the others (beyond --max_panels) in the page's own order."""
    n = len(meta.boxes)
    seen = [meta.panel_index[s] for s in decode_order(nxt, start, n)] if n else []
    kept = set(seen)
    return seen + [i for i in page.order(rtl=rtl) if i not in kept]


def _render(model_page: dataspec.Page, layout: list[int], rtl: bool, title: str) -> bytes:
    """Model's order and the heuristic's, side by side, as JPEG bytes."""
    from dataspec.render import contact_sheet, render_page

    heuristic_page = model_page.model_copy(
        update={"reading_order": layout, "reading_order_source": "layout"}
    )
    images = [render_page(p, rtl=rtl, max_side=1000) for p in (model_page, heuristic_page)]
    sheet = contact_sheet(
        images, labels=["model", "layout heuristic"], cols=2, thumb=500, title=title
    )
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


@torch.no_grad()
def predict(args: Args) -> int:
    """Predict and write every usable page; the exit status."""
    out_dir: Path = args.out_dir
    for folder, what in (
        (out_dir, "--out_dir"),
        (args.render_disagreements, "--render_disagreements"),
    ):
        problem = _refuse_non_empty(folder, what, args.overwrite)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return 1
    opened = open_checkpoint(args)
    if opened is None:
        return 1
    model, config, _, paths, device = opened
    root = common_root(paths)
    inputs = {os.path.realpath(p) for p in paths}
    if os.path.realpath(out_dir) == os.path.realpath(root):
        print(
            f"error: --out_dir {out_dir} is the folder of the input pages: their "
            "predictions would replace them. Give a new folder",
            file=sys.stderr,
        )
        return 1
    config, dataset, loader = inference_loader(args, config, paths)
    rtl, sampler = config.rtl, loader.batch_sampler
    skipped: list[list[str]] = []
    skip_log = SkipLog(log)
    written: list[Path] = []
    disagree = rendered = over = 0

    def skip(path: str, reason: str, kind: str) -> None:
        skipped.append([path, reason, kind])
        skip_log.add(path, reason, kind)

    bar = Progress(len(sampler), "predict", enabled=args.progress)
    for batch in loader:
        bar.update()
        for s in batch.skipped:
            skip(s.json_path, s.reason, s.kind)
        if not len(batch):
            continue
        out = model(batch.to(device))
        nxt = out["next_logits"].float().cpu().numpy()
        start = out["start_logits"].float().cpu().numpy()
        for row, meta in enumerate(batch.pages):
            path = meta.json_path
            rel = os.path.relpath(os.path.abspath(path), root)
            try:
                page, _ = dataset.load_page(meta.index)
                order = _model_order(meta, page, nxt[row], start[row], rtl)
                predicted = dataspec.Page.model_validate(
                    {**page.to_json_dict(), "reading_order": order, "reading_order_source": "model"}
                )
                target = output_path(out_dir, rel)
                if rel in _OWN or os.path.realpath(target) in inputs:
                    raise dataspec.DataSpecError(
                        f"its output {target} would replace an input page or an output list"
                    )
                dataspec.dump(predicted, target)
            except PageError as exc:
                skip(path, str(exc), "page")
                continue
            except (dataspec.DataSpecError, OSError, ValueError) as exc:
                skip(path, f"{path}: cannot write the prediction: {exc}", "output")
                continue
            written.append(target)
            over += len(page.panels) > len(meta.boxes)
            layout = dataspec.reading_order(page.boxes(), rtl=rtl)
            if order == layout:
                continue
            disagree += 1
            if args.render_disagreements is not None and rendered < args.max_renders:
                try:
                    image = _render(predicted, layout, rtl, rel)
                    dest = output_path(args.render_disagreements, Path(rel).with_suffix(".jpg"))
                    atomic_write_bytes(dest, image)
                    rendered += 1
                except (dataspec.DataSpecError, OSError, ValueError) as exc:
                    log.warning("%s: cannot render the disagreement: %s", path, exc)
    bar.close()
    skips_csv = out_dir / SKIPS_NAME
    write_csv(skips_csv, ["path", "reason", "kind"], skipped)
    skip_log.summary(f"every one is listed in {skips_csv}")
    if not written:
        first = first_reasons([r for _, r, _ in skipped])
        print(
            f"error: {source_of(args)}: no page could be predicted ({len(paths)} found, "
            f"{len(skipped)} skipped){f'; first: {first}' if first else ''}. "
            f"No pages written (skips: {skips_csv}).",
            file=sys.stderr,
        )
        return 1
    listing = out_dir / LIST_NAME
    atomic_write_bytes(listing, output_bytes("".join(f"{os.path.abspath(p)}\n" for p in written)))
    renders = ""
    if args.render_disagreements is not None:
        renders = f", {rendered} drawn in {args.render_disagreements}"
    beyond = f" ({over} with panels beyond --max_panels {config.max_panels})" if over else ""
    print(
        f"{len(written)} pages written{beyond}, {len(skipped)} skipped; the model's order "
        f"differs from the layout heuristic's on {disagree}{renders} → {listing}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.predict` with `argv`; returns the exit status."""
    return invoke(command, argv, "python -m training.predict")


if __name__ == "__main__":
    raise SystemExit(main())
