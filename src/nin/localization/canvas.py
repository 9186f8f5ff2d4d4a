"""Translated digits: each MNIST digit at a random place on a larger blank canvas, with its true box.

Optional clutter: square fragments cut from other digits, scattered over the canvas first,
so a locator has to tell the digit from digit-like strokes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Canvases:
    images: np.ndarray   # (N, 1, S, S) uint8
    labels: np.ndarray   # (N,) int64
    boxes: np.ndarray    # (N, 4) int64: x0, y0, x1, y1 (x1, y1 exclusive), tight around the digit's ink


def tight_box(digit: np.ndarray) -> tuple[int, int, int, int]:
    """The box around a (H, W) image's non-zero pixels (the whole image if it has none)."""
    ys, xs = np.nonzero(digit)
    if len(xs) == 0:
        return 0, 0, digit.shape[1], digit.shape[0]
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def make_canvases(digits: np.ndarray, labels: np.ndarray, count: int, size: int = 64, clutter: int = 0,
                  fragment: int = 8, seed: int = 0) -> Canvases:
    """`count` canvases of `size` x `size` from digits (N, 28, 28) uint8 and their labels.

    Deterministic for a seed. Each canvas holds one digit (drawn at random, with replacement)
    at a uniformly random position, on top of `clutter` fragments of `fragment` x `fragment`
    pixels cut from other random digits.
    """
    digits = np.asarray(digits).reshape(len(digits), digits.shape[-2], digits.shape[-1])
    dh, dw = digits.shape[1:]
    if size < max(dh, dw):
        raise ValueError(f"canvas size {size} is smaller than the {dh}x{dw} digits")
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 1, size, size), dtype=np.uint8)
    out_labels = np.empty(count, dtype=np.int64)
    boxes = np.empty((count, 4), dtype=np.int64)
    for n in range(count):
        canvas = images[n, 0]
        for _ in range(clutter):
            source = digits[rng.integers(len(digits))]
            # Fragments from the middle of a digit, where its strokes are.
            fy, fx = rng.integers(4, dh - fragment - 3), rng.integers(4, dw - fragment - 3)
            y, x = rng.integers(0, size - fragment + 1, size=2)
            patch = canvas[y:y + fragment, x:x + fragment]
            np.maximum(patch, source[fy:fy + fragment, fx:fx + fragment], out=patch)
        index = rng.integers(len(digits))
        y, x = rng.integers(0, size - dh + 1), rng.integers(0, size - dw + 1)
        region = canvas[y:y + dh, x:x + dw]
        np.maximum(region, digits[index], out=region)
        x0, y0, x1, y1 = tight_box(digits[index])
        boxes[n] = (x + x0, y + y0, x + x1, y + y1)
        out_labels[n] = labels[index]
    return Canvases(images, out_labels, boxes)
