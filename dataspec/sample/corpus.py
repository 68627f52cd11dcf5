"""`generate_corpus`: plan the series and pages, draw each page, write every file.

The plan is per series, as real books are: a reading direction (``rtl_share`` of series read
right to left) and a VLM schema (half the pages' series analysed in the old schema, the rest
in the production one). Each page then has its own seed, and its pixels, detector output and
VLM reply come from separate streams of it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..io import atomic_write_bytes
from . import content
from .detector import detect
from .layout import layout, split
from .lettering import Fonts, fonts_for
from .pixels import draw_page
from .truth import CATEGORIES, SUBDIR, Direction, PageSpec, Schema, names_for, truth_record
from .vlm import vlm_reply

SchemaChoice = Literal["mixed", "old", "production"]
SCHEMA_CHOICES: tuple[SchemaChoice, ...] = ("mixed", "old", "production")
RTL_SHARE = 0.4
"""Share of series read right to left (manga-like) by default."""


@dataclass(frozen=True)
class SampleCorpus:
    """Where :func:`generate_corpus` put each part of the corpus."""

    root: Path
    images_dir: Path
    coco_path: Path
    vlm_dir: Path
    truth_path: Path
    pages: int


def json_bytes(obj: Any, *, indent: int | None = None) -> bytes:
    """Serialise with sorted keys so that output bytes are stable."""
    return (json.dumps(obj, sort_keys=True, ensure_ascii=False, indent=indent) + "\n").encode()


def _schemas(rng: random.Random, counts: list[int], choice: SchemaChoice) -> list[Schema]:
    """One schema per series; ``mixed`` balances the pages between the two."""
    if choice != "mixed":
        return [choice] * len(counts)
    out: list[Schema] = ["old"] * len(counts)
    pages = {"old": 0, "production": 0}
    order = list(range(len(counts)))
    rng.shuffle(order)
    for k in order:
        schema: Schema = (
            rng.choice(("old", "production"))
            if pages["old"] == pages["production"]
            else min(("old", "production"), key=lambda s: pages[s])
        )
        out[k] = schema
        pages[schema] += counts[k]
    return out


def plan(
    rng: random.Random,
    pages: int,
    n_series: int,
    *,
    disagreement: bool,
    schema: SchemaChoice,
    rtl_share: float,
) -> list[PageSpec]:
    """Every page to draw, series by series."""
    names = content.series_names(rng, n_series)
    counts = [1 + e for e in split(pages - n_series, [rng.uniform(0.5, 1.5) for _ in names])]
    rtl = set(rng.sample(range(n_series), round(n_series * rtl_share)))
    schemas = _schemas(rng, counts, schema)
    specs: list[PageSpec] = []
    for k, (name, count) in enumerate(zip(names, counts, strict=True)):
        cast = tuple(rng.sample(content.NAMES, 4))
        has_cover = rng.random() < 0.7
        direction: Direction = "rtl" if k in rtl else "ltr"
        tone = rng.choice(("dots", "lines"))
        for page in range(1, count + 1):
            specs.append(
                PageSpec(
                    series=name,
                    page=page,
                    cast=cast,
                    cover=has_cover and page == 1 and count > 1,
                    seed=rng.getrandbits(64),
                    direction=direction,
                    schema=schemas[k],
                    disagreement=disagreement,
                    tone=tone,
                )
            )
    return specs


def render_page(
    spec: PageSpec, size: tuple[int, int], fonts: Fonts
) -> tuple[bytes, dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """One page: JPEG bytes, VLM reply, detections, truth record and COCO image record."""
    rng = random.Random(spec.seed)
    place = rng.choice(content.PLACES)
    boxes = layout(rng, size[0], size[1], spec.cover, spec.direction)
    jpeg, panels = draw_page(rng, spec, boxes, size, fonts, f"{place[0]} {place[1]}")
    names = names_for(spec)
    reply, vlm_defects = vlm_reply(spec, names, panels, place, size)
    dets, det_defects = detect(spec, names.coco_image_id, panels, size)
    truth = truth_record(spec, names, size, panels, det_defects, vlm_defects)
    image = {
        "id": names.coco_image_id,
        "file_name": f"{SUBDIR}\\{spec.page:04d}.jpg",
        "width": size[0],
        "height": size[1],
    }
    return jpeg, reply, dets, truth, image


def generate_corpus(
    out_dir: str | Path,
    *,
    pages: int = 200,
    seed: int = 0,
    width: int = 800,
    height: int = 1200,
    series: int | None = None,
    disagreement: bool = True,
    schema: SchemaChoice = "mixed",
    rtl_share: float = RTL_SHARE,
) -> SampleCorpus:
    """Write a synthetic comic corpus of ``pages`` pages under ``out_dir``.

    ``series`` defaults to ``max(3, pages // 25)`` (never more than ``pages``). With
    ``disagreement`` False the detector and the VLM mostly agree (the old corpus: a few
    missed panels, a VLM count off by one on about 8% of pages); ``schema`` picks the VLM
    schema of every series (``mixed``: about half the pages each); ``rtl_share`` is the share
    of series read right to left. Existing files at the same paths are replaced; other files
    under ``out_dir`` are left alone.
    """
    if pages < 1:
        raise ValueError("pages must be >= 1")
    if width < 300 or height < 400:
        raise ValueError("width must be >= 300 and height >= 400")
    if schema not in SCHEMA_CHOICES:
        raise ValueError(f"schema must be one of {SCHEMA_CHOICES}")
    if not 0.0 <= rtl_share <= 1.0:
        raise ValueError("rtl_share must be between 0 and 1")
    n_series = max(3, pages // 25) if series is None else series
    if n_series < 1:
        raise ValueError("series must be >= 1")
    n_series = min(n_series, pages)

    root = Path(out_dir)
    images_dir, vlm_dir = root / "images", root / "vlm"
    coco_path, truth_path = root / "predictions.json", root / "truth.jsonl"
    specs = plan(
        random.Random(seed),
        pages,
        n_series,
        disagreement=disagreement,
        schema=schema,
        rtl_share=rtl_share,
    )
    size = (width, height)
    fonts = fonts_for(width)
    records: list[tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]] = []
    for spec in specs:
        jpeg, reply, dets, truth, image = render_page(spec, size, fonts)
        atomic_write_bytes(images_dir / truth["image"], jpeg)
        atomic_write_bytes(vlm_dir / truth["vlm_json"], json_bytes(reply, indent=2))
        records.append((truth["image"], truth, image, dets))

    records.sort(key=lambda r: r[0])
    annotations: list[dict[str, Any]] = []
    for _, _, _, dets in records:
        for det in dets:
            annotations.append({"id": len(annotations) + 1, **det})
    coco = {
        "images": [r[2] for r in records],
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }
    atomic_write_bytes(coco_path, json_bytes(coco))
    atomic_write_bytes(truth_path, b"".join(json_bytes(r[1]) for r in records))
    return SampleCorpus(
        root=root,
        images_dir=images_dir,
        coco_path=coco_path,
        vlm_dir=vlm_dir,
        truth_path=truth_path,
        pages=pages,
    )
