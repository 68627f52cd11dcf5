"""analyzer: detector panels (COCO) + VLM panel text → per-page CSV, subset lists, DataSpec.

Documentation: docs/analyzer.md. Command lines: `python -m analyzer`,
`python -m analyzer.subset`, `python -m analyzer.merge`.

Where each stage lives:

- `cli` (flags, parsed into `options`) → `run` (load, match, run the chunks, write the
  outputs)
- inputs: `coco/` (predictions → one record per image), `vlm` (the VLM JSON index, read
  through `dataspec.normalize`), `manifest`, `match` (pages ↔ VLM JSONs, tier by tier),
  `images` (can the page image be used)
- `pool` (page order, shards, output names, chunks, workers) → `page` (one page in a
  worker: read, pair, score, emit; `work`: what a worker is handed and hands back)
- per page: `pairing` (detections at the threshold, aligned by `align/`: which VLM panel's
  text goes on which detection; a book's reading direction shared), `score` (the seed's
  quality score and tiers), `emit` (the DataSpec page), `page_files` (its file name and
  write)
- `outputs` (the CSV, lists, skip log), `problems` (bad input met on the way)
- other tools: `subset`, `merge`, `report/`
"""
