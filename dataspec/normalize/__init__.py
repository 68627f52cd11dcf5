"""The lenient path: JSON from the wild → canonical pages. One module per rule family.

- `pages`: wrappers, image path, page size, panel list, provenance, reading order
- `boxes`: every bbox variant → `[x, y, w, h]` integer pixels
- `text`: every text variant → dialogue / narration / sfx (+ description)
- `decode`: bytes → JSON (BOM, cp1252, NaN literals, markdown fences)
"""

from .pages import PanelRecord, normalize, read_panels

__all__ = ["PanelRecord", "normalize", "read_panels"]
