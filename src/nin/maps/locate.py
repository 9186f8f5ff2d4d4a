"""Boxes from heat maps (class activation mapping, Zhou et al. 2016): where a class map says the object is.

Boxes are (x0, y0, x1, y1) in pixels, inclusive of x0/y0 and exclusive of x1/y1.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_THRESHOLD = 0.2   # fraction of the map's maximum, as Zhou et al. (2016) used


def box_from_heatmap(heat: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> tuple[int, int, int, int]:
    """The box around the largest connected region of `heat` (H, W) at or above threshold x its maximum.

    A map with no positive value gives the whole image (there is nothing to locate).
    """
    heat = np.asarray(heat, dtype=np.float64)
    h, w = heat.shape
    peak = heat.max()
    if not np.isfinite(peak) or peak <= 0:
        return 0, 0, w, h
    regions, count = ndimage.label(heat >= threshold * peak)   # 4-connectivity
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    sizes[0] = 0
    ys, xs = np.nonzero(regions == sizes.argmax())
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
