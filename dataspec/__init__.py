"""dataspec: the DataSpec v0.3 contract for comic-page training data.

import dataspec
page = dataspec.load("page.json")                      # strict: canonical files
page = dataspec.load("vlm.json", lenient=True)         # any known variant
page, notes = dataspec.normalize(obj, page_size=(1988, 3057))
dataspec.dump(page, "out/page.json")                   # atomic, deterministic
"""

from .errors import DataSpecError, Note
from .io import dump, dumps, load, load_with_notes, loads
from .models import Box, Page, PageSize, Panel, PanelText, Source, UnpairedText
from .normalize import normalize
from .order import reading_order
from .paths import ImageResolver, discover, windows_to_local
from .schema import json_schema
from .version import SPEC_VERSION

__version__ = "0.1.0"

__all__ = [
    "SPEC_VERSION",
    "Box",
    "DataSpecError",
    "ImageResolver",
    "Note",
    "Page",
    "PageSize",
    "Panel",
    "PanelText",
    "Source",
    "UnpairedText",
    "discover",
    "dump",
    "dumps",
    "json_schema",
    "load",
    "load_with_notes",
    "loads",
    "normalize",
    "reading_order",
    "windows_to_local",
]
