"""Mini-batches from tensors held in memory: no per-sample Python, no worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def shuffle_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A permutation of range(n) that depends only on (seed, epoch), so a resumed run sees the same order."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def iterate_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                    order: torch.Tensor | None = None, drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) batches in `order` (default: as stored); `order` may cover only part of the data."""
    n = len(labels) if order is None else len(order)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield images[start:start + batch_size], labels[start:start + batch_size]
        else:
            index = order[start:start + batch_size]
            yield images[index], labels[index]


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) on the 0-255 scale -> float, standardised per channel; mean/std: (C,) on 0-1."""
    x = images.float().div_(255.0)
    return x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))


def make_prepare(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device, channels_last: bool):
    """The function that turns a uint8 batch on `device` into the model's input."""
    mean_t = torch.tensor(mean, device=device)
    std_t = torch.tensor(std, device=device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def prepare(images: torch.Tensor) -> torch.Tensor:
        # uint8 images are standardised here; preprocessed (float16) ones are used as they are.
        x = normalize(images, mean_t, std_t) if images.dtype == torch.uint8 else images.float()
        return x.contiguous(memory_format=memory_format)

    return prepare
