"""The page's pictures: a class map laid over the photo, with the box from the predicted class's map (pure)."""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from nin.maps.figure import OVERLAY_ALPHA
from nin.maps.photo import PhotoMaps

BOX_COLOUR = (255, 255, 255)


def overlay(seen: PhotoMaps, k: int) -> np.ndarray:
    """(H, W, 3) uint8: the photo with the k-th class's map over it in the colour map of `nin maps` (one scale
    for all the photo's maps), and the box of the predicted class on the first."""
    photo = seen.photo if seen.photo.ndim == 3 else np.repeat(seen.photo[..., None], 3, axis=2)
    low, high = min(float(seen.maps_at_photo.min()), 0.0), max(float(seen.maps_at_photo.max()), 1e-6)
    scaled = (seen.maps_at_photo[k] - low) / (high - low)
    colour = colormaps["jet"](scaled)[..., :3] * 255
    out = ((1 - OVERLAY_ALPHA) * photo + OVERLAY_ALPHA * colour).round().astype(np.uint8)
    if k == 0:
        x0, y0, x1, y1 = seen.box
        line = max(1, round(max(photo.shape[:2]) / 200))
        out[y0:y1, x0:x0 + line] = out[y0:y1, x1 - line:x1] = BOX_COLOUR
        out[y0:y0 + line, x0:x1] = out[y1 - line:y1, x0:x1] = BOX_COLOUR
    return out


def array_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(seen: PhotoMaps, k: int) -> bytes:
    return array_png(overlay(seen, k))


def png_data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()
