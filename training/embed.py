r"""Panel and page embeddings of a corpus from a trained checkpoint.

    python -m training.embed --checkpoint RUN/best.pt --json_dir PAGES \
        --image_root IMAGES --output_dir EMB

EMB gets page_embeddings.npy (pages x dim), panel_embeddings.npy (panels x dim; a panel's
state in the context of its page), and index.csv: one row per embedding, `kind` page or
panel, `row` in its array, the page's row, the JSON and image paths, and for panels the
index in the page's `panels` list, the reading position, the box and `text`: present, none
(known to have no lettered text) or unknown (`text_known: false`; the panel was embedded
with its text masked, never as an empty text). Pages that cannot be used are listed in
skipped_pages.csv.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import torch

from dataspec.io import atomic_open, atomic_write_bytes

from .cli import add_source_args, flag, open_checkpoint, output_bytes
from .data import TEXT_STATES, Collate, PageDataset, PagePairBatchSampler

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


def build_parser() -> argparse.ArgumentParser:
    """The `python -m training.embed` options."""
    parser = argparse.ArgumentParser(
        prog="python -m training.embed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flag(parser, "checkpoint", type=Path, required=True)
    add_source_args(parser)
    flag(parser, "output_dir", type=Path, required=True)
    flag(parser, "batch_size", type=int, default=8)
    flag(parser, "num_workers", type=int, default=0)
    flag(parser, "device", default="auto")
    return parser


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    """Command line: embed every usable page and panel."""
    parser = build_parser()
    args = parser.parse_args(argv)
    opened = open_checkpoint(parser, args)
    if opened is None:
        return 1
    model, config, _, paths, device = opened
    dataset = PageDataset(
        paths,
        image_root=args.image_root,
        config=config,
        shuffle_slots=False,
        strict_paths=args.strict_paths,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=PagePairBatchSampler(dataset.keys, args.batch_size, shuffle=False),
        num_workers=args.num_workers,
        collate_fn=Collate(config.max_panels),
    )
    pages: list[np.ndarray] = []
    panels: list[np.ndarray] = []
    index = io.StringIO()
    writer = csv.writer(index, lineterminator="\n")
    writer.writerow(INDEX_COLUMNS)
    skipped: list[tuple[str, str, str]] = []
    n_pages = n_panels = 0
    for batch in loader:
        skipped.extend((s.json_path, s.reason, s.kind) for s in batch.skipped)
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
    dim = config.dim
    page_array = np.concatenate(pages) if pages else np.zeros((0, dim), np.float32)
    panel_array = np.stack(panels) if panels else np.zeros((0, dim), np.float32)
    out_dir: Path = args.output_dir
    for name, array in (("page_embeddings.npy", page_array), ("panel_embeddings.npy", panel_array)):
        with atomic_open(out_dir / name, "wb") as fh:
            np.save(fh, array.astype(np.float32))
    atomic_write_bytes(out_dir / "index.csv", output_bytes(index.getvalue()))
    if skipped:
        buf = io.StringIO()
        skip_writer = csv.writer(buf, lineterminator="\n")
        skip_writer.writerow(["path", "reason", "kind"])
        skip_writer.writerows(skipped)
        atomic_write_bytes(out_dir / "skipped_pages.csv", output_bytes(buf.getvalue()))
    print(
        f"{n_pages} pages, {n_panels} panels embedded (dim {dim}); "
        f"{len(skipped)} pages skipped → {out_dir}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
