"""A photo of any size through a model: the top classes' maps, at the model's input and laid over the photo.

The model sees the whole photo resized to its input size (the aspect ratio is not kept, nothing is cropped),
so a map stretched back to the photo's width and height lies over the part of the photo it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nin.images import load_image, to_array
from nin.inference import Trained, input_size, load_trained, model_inputs
from nin.maps.confidence import class_maps, upsample
from nin.maps.explain import channels_last, require_class_maps
from nin.maps.locate import DEFAULT_THRESHOLD, box_from_heatmap


PHOTO_TOP_K = 3   # classes drawn over a photo unless asked otherwise


@dataclass
class PhotoMaps:
    """What a model made of one photo: its top classes, most likely first, and their maps."""
    names: list[str]              # class names
    classes: list[int]            # class indices
    probabilities: list[float]    # softmax of the single view (the maps' means), 0 to 1
    photo: np.ndarray             # (H, W) grey or (H, W, 3) uint8: the photo in the model's channels, its own size
    model_input: np.ndarray       # (S, S) or (S, S, 3) uint8: the photo as the model saw it
    maps_at_input: np.ndarray     # (k, S, S) float32: each class's map upsampled to the model input
    maps_at_photo: np.ndarray     # (k, H, W) float32: the same maps stretched over the photo
    box: tuple[int, int, int, int]   # (x0, y0, x1, y1) on the photo, from the predicted class's map
    fitted: str                   # how the photo was fitted to the model input, in words


def _as_image(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    raise TypeError(f"expected a path, a PIL image or a uint8 array, got {type(image).__name__}")


def explain_photo(trained: Trained, image, top_k: int = PHOTO_TOP_K, threshold: float = DEFAULT_THRESHOLD,
                  native_size: bool = False) -> PhotoMaps:
    """The top `top_k` classes of `image` (a path, PIL image or uint8 array) with their maps.

    `threshold`: the share of the predicted map's maximum that bounds the box (docs/maps.md). `native_size`: the
    model sees the photo at its own size (GAP allows it; refused for models whitened at one size)."""
    channels = trained.model.config.in_channels
    size = input_size(trained, native_size)
    if isinstance(image, (str, Path)):
        photo = load_image(Path(image), channels)   # one-line errors for unreadable files and bombs
    else:
        photo = to_array(_as_image(image), channels)
    height, width = photo.shape[1:]
    model_image = photo if size is None else to_array(Image.fromarray(channels_last(photo)), channels, size)
    maps, logits = class_maps(trained.model, model_inputs(trained, torch.from_numpy(model_image)[None]))
    probabilities = logits.softmax(dim=1)[0]
    top = probabilities.topk(max(1, min(top_k, len(probabilities))))
    classes = top.indices.tolist()
    chosen = maps[:, classes]
    at_photo = upsample(chosen, (height, width))[0].numpy()
    if size is None:
        fitted = f"the {width} x {height} photo at its own size (--native-size)"
    elif (width, height) == (size, size):
        fitted = f"the photo at the model's input size, {size} x {size}"
    else:
        fitted = (f"the {width} x {height} photo resized to {size} x {size} for the model (the whole photo, its "
                  "aspect ratio not kept); the maps stretched back over it")
    return PhotoMaps(
        names=[trained.class_names[c] for c in classes], classes=classes, probabilities=top.values.tolist(),
        photo=channels_last(photo), model_input=channels_last(model_image),
        maps_at_input=upsample(chosen, tuple(model_image.shape[1:]))[0].numpy(), maps_at_photo=at_photo,
        box=box_from_heatmap(at_photo[0], threshold), fitted=fitted)


def explain(model, image, top_k: int = PHOTO_TOP_K, threshold: float = DEFAULT_THRESHOLD) -> PhotoMaps:
    """`nin.explain`: a shipped model's name, a run folder or weights file (or a loaded model from
    nin.inference.load_trained), and a photo; see explain_photo."""
    trained = model if isinstance(model, Trained) else load_trained(model)
    require_class_maps(trained)
    return explain_photo(trained, image, top_k, threshold)
