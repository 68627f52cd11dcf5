"""Deterministic synthetic comic corpus: page JPEGs, detector COCO output, VLM JSONs, truth.

Run ``python -m dataspec.sample OUT --pages N --seed S``. The layout under ``OUT`` mimics
the user's data (user-data.md)::

    images/<Series>/JPG4CBZ/0001.jpg     page images
    predictions.json                     COCO detector output (Windows-path image ids)
    vlm/<Series>/JPG4CBZ_0001.json       one VLM analysis per page
    truth.jsonl                          ground truth, one page per line

About 40% of the series read right to left and look it (screentone, vertical lettering);
about half the pages' VLM replies are in the old schema, the rest in the production one
(chosen per series); detector and VLM disagree as the user's do (equal panel counts on
about a third of the pages), and ``truth.jsonl`` lists each defect applied.

One module per concern: ``layout`` (panel grids, reading order), ``content`` (series, cast,
lines), ``pixels`` (drawing the JPEGs), ``detector`` (COCO predictions), ``vlm`` (replies in
both schemas), ``truth`` (the records and shared types), ``corpus`` (`generate_corpus`),
``pages`` (DataSpec pages from the truth, for training), ``cli`` (the command).

Needs Pillow (the ``analyzer`` extra); nothing else in :mod:`dataspec` imports this package.
The same seed and arguments give byte-identical files on the same Pillow build.
"""

from .cli import main
from .corpus import SampleCorpus, generate_corpus
from .pages import SyntheticCorpus, make_corpus, write_pages
from .truth import CATEGORIES

__all__ = [
    "CATEGORIES",
    "SampleCorpus",
    "SyntheticCorpus",
    "generate_corpus",
    "main",
    "make_corpus",
    "write_pages",
]
