"""From images to figure rows: maps, probabilities and the boxes located from the maps."""

from __future__ import annotations

import numpy as np
import torch

from nin.errors import NinError
from nin.inference import Trained, model_inputs
from nin.maps.confidence import class_maps, top_fraction, upsample
from nin.maps.figure import MapRow
from nin.maps.locate import DEFAULT_THRESHOLD, box_from_heatmap


def require_class_maps(trained: Trained) -> None:
    """One line for a model without class maps (an FC head): the map commands need a GAP model."""
    if not trained.model.has_class_maps:
        raise NinError(f"{trained.meta.get('preset', 'this model')} has a fully connected head, so it has no class "
                       "confidence maps; only GAP models (nin-*, cnn-*-gap) do")


def channels_last(image: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 -> (H, W) for grey, (H, W, 3) for colour: how pictures are drawn."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def explain(trained: Trained, images: torch.Tensor, labels: list[int | None], top_k: int | None = None,
            fraction: float | None = None, boxes: int = 1, threshold: float = DEFAULT_THRESHOLD,
            titles: list[str] | None = None) -> list[MapRow]:
    """One MapRow per uint8 image (N, C, H, W).

    top_k: show that many maps (most likely classes first), None for all classes in class order.
    fraction: show only each map's top fraction of activations (the paper used 0.1).
    boxes: locate the top this-many predicted classes (the first is drawn strongest).
    """
    require_class_maps(trained)
    maps, logits = class_maps(trained.model, model_inputs(trained, images))
    maps = upsample(maps, tuple(images.shape[-2:]))
    probabilities = logits.softmax(dim=1)
    rows = []
    for i, image in enumerate(images.numpy()):
        order = probabilities[i].argsort(descending=True).tolist()
        classes = order[:top_k] if top_k else list(range(len(order)))
        heat = maps[i].numpy()
        located = [(c, box_from_heatmap(heat[c], threshold)) for c in order[:boxes]]
        shown = top_fraction(maps[i], fraction).numpy() if fraction else heat
        rows.append(MapRow(image=channels_last(image), maps=shown,
                           probabilities=probabilities[i].numpy(), classes=classes, boxes=located,
                           true_class=labels[i], title=titles[i] if titles else ""))
    return rows
