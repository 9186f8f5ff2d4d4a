"""Scoring and baselines of the localisation benchmark: IoU, the centred box and gradient saliency.

Boxes are (x0, y0, x1, y1) in pixels, as in `nin.maps.locate`.
"""

from __future__ import annotations

import torch

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
