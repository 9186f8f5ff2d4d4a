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


def random_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """A size x size window of each image of x (B, C, H, W), each at its own random position."""
    b, c, h, w = x.shape
    if size >= min(h, w):
        return x
    offsets = torch.randint(0, h - size + 1, (b,), device=x.device), torch.randint(0, w - size + 1, (b,), device=x.device)
    rows = offsets[0][:, None] + torch.arange(size, device=x.device)     # (B, size)
    cols = offsets[1][:, None] + torch.arange(size, device=x.device)
    x = x.gather(2, rows[:, None, :, None].expand(b, c, size, w))
    return x.gather(3, cols[:, None, None, :].expand(b, c, size, size))


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image of x (B, C, H, W) left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def make_augment(max_shift: int, flip: bool, crop: int | None = None):
    """Random translation (zero fill) and flips; with `crop`, random crops of crop x crop pixels instead
    of the translation (a smaller input: the fully convolutional GAP network takes any size)."""
    def augment(x: torch.Tensor) -> torch.Tensor:
        x = random_crop(x, crop) if crop else random_translate(x, max_shift)
        return random_flip(x) if flip else x
    return augment
