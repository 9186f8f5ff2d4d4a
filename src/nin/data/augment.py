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


def random_cutout(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a size x size square of each image of x (B, C, H, W), centred on a random pixel of it, so
    that near the border part of the square falls outside (Cutout, DeVries & Taylor 2017). Zero is the
    mean of GCN + ZCA and of normalised images: the hole carries no signal."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    top = torch.randint(0, h, (b,), device=x.device)[:, None] - size // 2     # (B, 1)
    left = torch.randint(0, w, (b,), device=x.device)[:, None] - size // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size)                               # (B, H)
    in_cols = (cols >= left) & (cols < left + size)                             # (B, W)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0)


def make_augment(max_shift: int, flip: bool, crop: int | None = None, cutout: int = 0):
    """Random translation (zero fill) and flips; with `crop`, random crops of crop x crop pixels instead
    of the translation (a smaller input: the fully convolutional GAP network takes any size); then, with
    `cutout`, a random cutout x cutout hole in each image."""
    def augment(x: torch.Tensor) -> torch.Tensor:
        x = random_crop(x, crop) if crop else random_translate(x, max_shift)
        x = random_flip(x) if flip else x
        return random_cutout(x, cutout)
    return augment
