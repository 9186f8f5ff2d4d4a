"""A trained model ready for new inputs: loading (run folder, weights file or shipped name) and its preprocessing."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nin.data import preprocess
from nin.data.batches import normalize
from nin.data.registry import dataset_info
from nin.errors import NinError
from nin.fast import optimize
from nin.models.nin import NIN, ModelConfig
from nin.files import PREPROCESS_PREFIX, load_weights
from nin.rundir import WEIGHTS_FILE


@dataclass
class Trained:
    model: NIN                               # eval mode, on the CPU
    meta: dict                               # what `nin train` stored: data set, preprocessing, classes...
    zca: preprocess.ZcaParams | None = None  # the whitening fitted in training, for gcn-zca models

    @property
    def image_size(self) -> int:
        return dataset_info(self.meta["dataset"]).image_size

    @property
    def test_flip(self) -> bool:
        """Whether it was trained and measured with flip test-time augmentation (see loop.forward_views)."""
        return bool(self.meta.get("test_flip", False))

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names") or range(self.model.config.num_classes))


def shipped_weights_dir() -> Path:
    """The weights shipped in the package (src/nin/weights/, installed with it), or $NIN_WEIGHTS."""
    return Path(os.environ.get("NIN_WEIGHTS") or str(resources.files("nin") / "weights"))


def shipped_names() -> list[str]:
    folder = shipped_weights_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def shipped_card(name: str) -> dict | None:
    """The card of a shipped model (src/nin/weights/NAME.json), or None for a name that is not shipped."""
    if name not in shipped_names():
        return None
    return json.loads((shipped_weights_dir() / f"{name}.json").read_text())


def _verified_shipped(name: str) -> Path:
    """The weights file of a shipped model, after checking it against the sha256 on its card."""
    folder = shipped_weights_dir()
    card = json.loads((folder / f"{name}.json").read_text())
    path = folder / card["weights"]
    if not path.is_file():
        raise NinError(f"{path}: missing; the card {name}.json names it (restore it with `git checkout -- weights`)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != card["sha256"]:
        raise NinError(f"{path}: sha256 {digest[:12]}... does not match its card ({card['sha256'][:12]}...); "
                       "the file is damaged or was replaced; restore it with `git checkout -- weights`")
    return path


def resolve_weights_path(path: Path | str) -> Path:
    """A run folder, a weights file, or the name of a shipped model (see `shipped_names`)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
        if not path.is_file():
            raise NinError(f"{path}: missing; the run folder has no final weights (did training finish? "
                           "`nin train --resume` finishes it)")
    elif not path.exists():
        if str(path) in shipped_names():
            return _verified_shipped(str(path))
        shipped = f" or a shipped model ({', '.join(shipped_names())})" if shipped_names() else ""
        raise NinError(f"{path}: no such run folder or weights file; pass one{shipped}")
    return path


def load_trained(path: Path | str) -> Trained:
    """The model and everything stored with it; never unpickles (safetensors only)."""
    weights_path = resolve_weights_path(path)
    tensors, meta = load_weights(weights_path)
    state = {k: v for k, v in tensors.items() if not k.startswith(PREPROCESS_PREFIX)}
    extra = {k[len(PREPROCESS_PREFIX):]: v for k, v in tensors.items() if k.startswith(PREPROCESS_PREFIX)}
    try:
        model = optimize(NIN(ModelConfig.from_dict(meta["model_config"])))
        model.load_state_dict(state)
        zca = None
        if meta.get("preprocess") == "gcn-zca":
            zca = preprocess.zca_from_tensors({k: v.numpy() for k, v in extra.items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0][:200]
        raise NinError(f"{weights_path}: the weights do not match the model they describe ({reason})") from None
    return Trained(model.eval(), meta, zca)


def model_inputs(trained: Trained, images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> the model's input, preprocessed exactly as in training (fp32, CPU).

    gcn-zca needs the training image size (the whitening is per pixel); the other methods take any size.
    """
    method = trained.meta.get("preprocess", "none")
    if method == "none":
        return normalize(images, torch.tensor(trained.meta["mean"]), torch.tensor(trained.meta["std"]))
    x = images.numpy()
    if method == "gcn-zca":
        if x[0].size != len(trained.zca.mean):
            raise ValueError(f"gcn-zca takes {trained.image_size}x{trained.image_size} images")
        return torch.from_numpy(preprocess.gcn_zca_images(x, trained.zca))
    return torch.from_numpy(preprocess.local_contrast_normalize(x))


def input_size(trained: Trained, native_size: bool) -> int | None:
    """The side new images are resized to: the training size, or None (as they are) with `native_size`.

    gcn-zca models refuse `native_size`: their whitening is one matrix over the pixels of the training size."""
    if not native_size:
        return trained.image_size
    if trained.meta.get("preprocess") == "gcn-zca":
        size = trained.image_size
        raise NinError(f"--native-size: this model's ZCA whitening was fitted on {size} x {size} images and applies "
                       f"to that size only; leave --native-size off (images are then resized to {size} x {size})")
    return None


def read_images(paths: list[Path], trained: Trained, native_size: bool = False
                ) -> tuple[list[tuple[Path, torch.Tensor]], list[tuple[Path, NinError]]]:
    """(readable images as uint8 tensors (1, C, H, W) with their paths, unreadable paths with why)."""
    from nin.images import load_image

    size = input_size(trained, native_size)
    loaded, failed = [], []
    for path in paths:
        try:
            loaded.append((path, torch.from_numpy(load_image(path, trained.model.config.in_channels, size))[None]))
        except NinError as e:
            failed.append((path, e))
    return loaded, failed


def meta_dataset(meta: dict, requested: str | None) -> str:
    """The data set to evaluate on: the one asked for, else the one trained on; checked for shape."""
    name = requested or meta.get("dataset")
    if name is None:
        raise NinError("the weights do not name their data set; pass --dataset")
    info = dataset_info(name)
    model_cfg = meta["model_config"]
    if info.num_classes != model_cfg["num_classes"] or info.in_channels != model_cfg["in_channels"]:
        raise NinError(f"--dataset {name}: {info.in_channels} channels and {info.num_classes} classes, but the model "
                       f"takes {model_cfg['in_channels']} channels and has {model_cfg['num_classes']} classes")
    return name


def to_device(model: NIN, device: torch.device) -> NIN:
    return model.to(device, memory_format=torch.channels_last)


def top_k(logits: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, k), classes (N, k)) of the k most likely classes, most likely first."""
    probs = logits.float().softmax(dim=1)
    values, classes = probs.topk(min(k, probs.shape[1]), dim=1)
    return values.numpy(), classes.numpy()
