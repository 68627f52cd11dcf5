"""analyzer: detector panels (COCO) + VLM panel text → per-page CSV, subset lists, DataSpec.

Documentation: docs/analyzer.md. Command lines: `python -m analyzer`,
`python -m analyzer.subset`, `python -m analyzer.merge`.
"""
