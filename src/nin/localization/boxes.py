"""Boxes from heat maps (class activation mapping, Zhou et al. 2016), IoU, and the saliency baseline.

Boxes are (x0, y0, x1, y1) in pixels, inclusive of x0/y0 and exclusive of x1/y1.
"""

from __future__ import annotations

import numpy as np
import torch
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


def iou(a, b) -> float:
    """Intersection over union of two boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centred_box(height: int, width: int, box_h: float, box_w: float) -> tuple[int, int, int, int]:
    """A box of the given size in the middle of an image (the no-information baseline)."""
    x0, y0 = round((width - box_w) / 2), round((height - box_h) / 2)
    return x0, y0, x0 + round(box_w), y0 + round(box_h)


def gradient_saliency(model, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """|d score_c / d input| maxed over channels (Simonyan et al. 2014): (B, C, H, W) -> (B, H, W)."""
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    scores = model(x).gather(1, classes.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(scores, x)
    return grad.abs().amax(dim=1)
