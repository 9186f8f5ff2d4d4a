"""Loading a trained model from a run folder or a weights file."""

from __future__ import annotations

from pathlib import Path

import torch

from nin.data.sources import dataset_info
from nin.errors import NinError
from nin.models.nin import NIN, ModelConfig
from nin.train.checkpoint import load_weights
from nin.train.run import WEIGHTS_FILE


def resolve_weights_path(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
        if not path.is_file():
            raise NinError(f"{path}: missing; the run folder has no final weights (did training finish? "
                           "`nin train --resume` finishes it)")
    elif not path.exists():
        raise NinError(f"{path}: no such run folder or weights file")
    return path


def load_trained(path: Path) -> tuple[NIN, dict]:
    """The model (eval mode, on CPU) and the metadata saved with it."""
    weights_path = resolve_weights_path(path)
    state, meta = load_weights(weights_path)
    try:
        model = NIN(ModelConfig.from_dict(meta["model_config"]))
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = str(e).splitlines()[0][:200]
        raise NinError(f"{weights_path}: the weights do not match the model they describe ({reason})") from None
    return model.eval(), meta


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
