"""Class confidence maps as arrays: upsampling, the paper's top-10% rendering, and which map is strongest.

Pure functions on tensors; the model is only called in `class_maps`.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


@torch.no_grad()
def class_maps(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(maps (B, K, h, w), logits (B, K)) in fp32 for a batch of model inputs.

    The logits are the maps' spatial means: with a GAP head that is exactly what the model outputs.
    """
    model.eval()
    maps = model.forward_maps(x).float()
    return maps, maps.mean(dim=(2, 3))


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) -> (B, K, H, W), bilinear, so a map lies over the image it came from."""
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def top_fraction(maps: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """Each map with everything below its own top `fraction` of values set to zero (the paper's Figure 4).

    maps: (..., H, W). Ties at the cut-off are kept.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flat = maps.flatten(-2)
    keep = max(1, round(fraction * flat.shape[-1]))
    cutoff = flat.topk(keep, dim=-1).values[..., -1:]
    return torch.where(flat >= cutoff, flat, torch.zeros_like(flat)).view_as(maps)


def map_peaks(maps: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) -> (B, K): each map's highest activation."""
    return maps.flatten(2).amax(dim=2)


def strongest_map(maps: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) -> (B,): the class whose map has the highest peak.

    Not the same as the prediction, which is the class with the highest mean: a map can
    peak high on a small patch and still lose on average.
    """
    return map_peaks(maps).argmax(dim=1)
