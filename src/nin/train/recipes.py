"""What the two recipes do to the model: initialisation and per-parameter learning rates."""

from __future__ import annotations

import torch
from torch import nn

from nin.models.nin import NIN

# Authors' layer files: weights N(0, 0.05), biases zero.
PAPER_INIT_STD = 0.05
# Authors' parameter files: biases learn at 2x the LR, the last 1x1 (class-map) layer at 0.1x.
PAPER_BIAS_LR_SCALE = 2.0
PAPER_CLASS_MAP_LR_SCALE = 0.1


def init_paper_(model: NIN) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=PAPER_INIT_STD)
            nn.init.zeros_(module.bias)


def init_fast_(model: NIN) -> None:
    """Kaiming (He) normal for ReLU layers; zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)


def initialize_(model: NIN, recipe: str) -> None:
    {"paper": init_paper_, "fast": init_fast_}[recipe](model)


def param_groups(model: NIN, recipe: str, weight_decay: float) -> list[dict]:
    """SGD parameter groups; each carries `lr_scale`, its learning rate relative to the schedule's.

    Biases never get weight decay. The paper recipe also scales biases' and the
    class-map layer's learning rates as the authors' files do.
    """
    class_map = {id(p) for p in model.class_map_layer.parameters()}
    groups: dict[tuple[float, float], list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        is_bias = name.endswith("bias")
        scale = 1.0
        if recipe == "paper":
            scale = (PAPER_BIAS_LR_SCALE if is_bias else 1.0) * (PAPER_CLASS_MAP_LR_SCALE if id(p) in class_map else 1.0)
        key = (scale, 0.0 if is_bias else weight_decay)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr_scale": scale, "weight_decay": wd} for (scale, wd), ps in groups.items()]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
