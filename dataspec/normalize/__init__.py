"""The lenient path: JSON from the wild → canonical pages. One module per rule family.

- `pages`: the entry points; image path, page size, provenance, reading order
- `locate`: the page inside wrappers and model replies; empty replies
- `panels`: a panel list → panel records (box, text, score, characters, faces, cast)
- `kept`: fields no rule read, kept JSON-safe
- `boxes`: every bbox variant → `[x, y, w, h]` integer pixels
- `text`: every text variant → dialogue / narration / sfx (+ description)
- `decode`: bytes → JSON (BOM, cp1252, NaN literals, markdown fences)
- `repair`: broken model replies (truncation, unescaped quotes) → JSON
- `fast`: the fast path for the common shapes, giving what the general path gives
"""

from .pages import normalize, read_panels
from .record import PanelRecord

__all__ = ["PanelRecord", "normalize", "read_panels"]
