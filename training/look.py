"""A page's look: a small, alteration-robust descriptor of the whole page image.

The page is reduced to `LOOK_SIDE` x `LOOK_SIDE` grey cells (box filter: each cell is the
mean of its area), centred and scaled to unit length. Cosine between two looks is then
the correlation of their thumbnails: unchanged by brightness and contrast, barely moved by
re-encoding, a small crop or a rescale, so an altered copy of a page finds its original
(`training.evaluate --retrieval` measures how often). It says nothing about what is drawn;
the vision encoder's page vector (`page_image`) does that.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LOOK_SIDE = 16
LOOK_DIM = LOOK_SIDE * LOOK_SIDE


def page_look(image: Image.Image) -> np.ndarray:
    """(LOOK_DIM,) float32 unit vector of an image (zero for a flat image)."""
    grey = image.convert("L").resize((LOOK_SIDE, LOOK_SIDE), Image.Resampling.BOX)
    cells = np.asarray(grey, dtype=np.float32).reshape(-1)
    cells = cells - cells.mean()
    norm = float(np.linalg.norm(cells))
    return cells / norm if norm > 1e-3 else np.zeros(LOOK_DIM, np.float32)
