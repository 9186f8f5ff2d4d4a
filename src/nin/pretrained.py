"""Pretrained models from Python: the model and the preprocessing that goes with its weights.

    import nin
    weights = nin.get_weights("nin-cifar10")           # its card in weights.meta, class names in meta["categories"]
    model = nin.models.nin_cifar10(weights=weights)    # the architecture's builder, as torchvision's
    logits = model(weights.transforms()(Image.open("photo.jpg")))
    model, preprocess = nin.load_pretrained("nin-mnist")   # the same in one call

As torchvision's `weights.transforms()`, `preprocess` turns images into exactly what the network
saw in training (the training size, then per-channel standardisation, or GCN + ZCA whitening with
the statistics fitted in training for the CIFAR models).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nin.errors import NinError
from nin.inference import Trained, load_trained, model_inputs, shipped_card, shipped_names
from nin.models.nin import NIN


class Preprocess:
    """Images -> model input (N, C, H, W) float32, as in training. Callable on a PIL image, a list of
    them, or uint8 arrays/tensors (C, H, W) or (N, C, H, W) already at the training size."""

    def __init__(self, trained: Trained):
        self.trained = trained
        self.size = trained.image_size
        self.channels = trained.model.config.in_channels

    def __call__(self, images) -> torch.Tensor:
        if isinstance(images, (list, tuple)):
            return torch.cat([self(image) for image in images])
        if hasattr(images, "convert"):   # a PIL image
            from nin.images import to_array
            images = to_array(images, self.channels, self.size)
        batch = torch.as_tensor(np.asarray(images))
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != self.channels:
            raise NinError(f"expected uint8 images ({self.channels}, H, W) or (N, {self.channels}, H, W), "
                           f"got {batch.dtype} {tuple(batch.shape)}")
        return model_inputs(self.trained, batch.contiguous())

    def __repr__(self) -> str:
        return (f"Preprocess({self.trained.meta.get('dataset')}: {self.size}x{self.size}, "
                f"{self.trained.meta.get('preprocess', 'none')})")


class Weights:
    """One set of trained weights, shaped like torchvision's weights entries: `meta` (the card: class names as
    "categories", test errors, recipe, commit, ...), `transforms()` (the preprocessing the weights need), and
    the model, built by the architecture's builder (nin.models.nin_cifar10(weights=...))."""

    def __init__(self, name: str | Path):
        self.name = str(name)
        self._trained = load_trained(name)   # shipped files are checked against their cards' sha256 here
        card = shipped_card(self.name)
        self.meta = {**(card or {}), **{k: v for k, v in self._trained.meta.items() if k != "model_config"},
                     "categories": self._trained.class_names}

    @property
    def preset(self) -> str:
        """The architecture the weights are of (nin-mnist, nin-cifar10, ...)."""
        return self._trained.meta["preset"]

    def transforms(self) -> Preprocess:
        return Preprocess(self._trained)

    def model(self) -> NIN:
        return self._trained.model

    def __repr__(self) -> str:
        return f"Weights({self.name!r}: {self.preset}, {len(self.meta['categories'])} classes)"


def get_weights(name: str | Path) -> Weights:
    """A shipped name (see `list_pretrained`), a run folder or a weights.safetensors file."""
    return name if isinstance(name, Weights) else Weights(name)


def load_pretrained(name: str | Path) -> tuple[NIN, Preprocess]:
    """(model in eval mode on the CPU, its preprocessing): a shortcut for get_weights(name).model() and
    .transforms(). The class names are `get_weights(name).meta["categories"]`."""
    weights = get_weights(name)
    return weights.model(), weights.transforms()


def list_pretrained() -> list[str]:
    return shipped_names()


def build_preset(preset: str, weights: str | Path | Weights | None = None) -> NIN:
    """The paper's architecture `preset`, untrained (weights None) or with those weights, which must be of it."""
    from nin.models.registry import build_model

    if weights is None:
        return build_model(preset)
    weights = get_weights(weights)
    if weights.preset != preset:
        raise NinError(f"{weights.name}: weights of {weights.preset}, not of {preset}")
    return weights.model()
