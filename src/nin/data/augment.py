"""Augmentation on whole batches of tensors: no per-sample Python."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def random_translate(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each image of x (B, C, H, W) by its own random offset in [-max_shift, max_shift] (zero fill)."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), device=x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)       # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)       # (B, W)
    x = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * max_shift))
    return x.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image of x (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def make_augment(max_shift: int, flip: bool):
    def augment(x: torch.Tensor) -> torch.Tensor:
        x = random_translate(x, max_shift)
        return random_flip(x) if flip else x
    return augment
