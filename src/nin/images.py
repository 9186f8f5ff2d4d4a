"""Image files in, uint8 arrays out: Pillow with its decompression-bomb limit, one-line errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from nin.errors import NinError


def to_array(image: Image.Image, channels: int, size: int | None = None) -> np.ndarray:
    """(C, H, W) uint8 from a PIL image, converted to `channels` (1 or 3) and resized to size x size
    (bilinear) unless `size` is None."""
    image = image.convert("L" if channels == 1 else "RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    array = np.array(image, dtype=np.uint8)   # a writable copy
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy()


def load_image(path: Path, channels: int, size: int | None = None) -> np.ndarray:
    """(C, H, W) uint8 from any image file Pillow reads; grey or colour converted to `channels` (1 or 3).

    `size`: resize to size x size (bilinear) as the model was trained on; None keeps the file's size.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice it: treat both as refusal.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return to_array(image, channels, size)
    except FileNotFoundError:
        raise NinError(f"{path}: no such file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise NinError(f"{path}: larger than Pillow's decompression-bomb limit "
                       f"({Image.MAX_IMAGE_PIXELS} pixels); resize it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise NinError(f"{path}: not a readable image ({reason}); expected a PNG, JPEG or other Pillow format") from None
