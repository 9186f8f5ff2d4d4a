"""What a recipe (nin.recipe) does to the model: initialisation, per-parameter learning rates, the optimizer."""

from __future__ import annotations

import torch
from torch import nn

from nin.models.nin import NIN
from nin.recipe import Recipe

# Authors' layer files: weights N(0, 0.05), biases zero.
PAPER_INIT_STD = 0.05


def init_normal_(model: NIN) -> None:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, std=PAPER_INIT_STD)
            nn.init.zeros_(module.bias)


# Fast recipe: the class-map layer starts with small outputs around +1, so that every class
# map is positive (alive under the class-map ReLU) and all classes start with equal scores.
FAST_CLASS_MAP_STD = 0.1
FAST_CLASS_MAP_BIAS = 1.0


@torch.no_grad()
def init_lsuv_(model: NIN, sample: torch.Tensor) -> None:
    """Data-dependent init that keeps the paper's model trainable at a high learning rate.

    Every layer gets Kaiming normal weights and is then rescaled so that its output has
    unit std on `sample` (LSUV: Mishkin & Matas 2016, "All you need is a good init");
    the class-map layer is rescaled to std 0.1 around a bias of 1.0.

    Why: with plain Kaiming init the first MNIST batch gives logits up to ~8 and a
    gradient norm ~40, and within 15 steps every class map is negative everywhere; the
    class-map ReLU then passes no gradient and training sits at chance (loss 2.3026).
    With LSUV alone, classes still die one by one (seed-dependent: 38% to 97% after 300
    steps). Starting the class maps positive keeps all of them alive.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]   # in forward order
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    was_training = model.training
    model.eval()
    stds = {}
    handles = [layer.register_forward_hook(lambda m, _i, out: stds.__setitem__(m, out.std())) for layer in layers]
    try:
        model(sample)
    finally:
        for handle in handles:
            handle.remove()
    # One forward pass instead of one per layer: with zero biases every part of these networks is positively
    # homogeneous (convolutions, linear layers, ReLU, maxout, max and average pooling, dropout at eval), so
    # scaling one layer's weights by c scales every later layer's output by c. Rescaling layer by layer and
    # measuring again, as LSUV is defined, would measure each layer's std times the scales already applied.
    applied = 1.0
    for layer in layers:
        target = FAST_CLASS_MAP_STD if layer is model.output_layer else 1.0
        scale = target / (stds[layer] * applied).clamp(min=1e-8)
        layer.weight.mul_(scale)
        applied = applied * scale
    if model.has_class_maps:   # an FC head's scores have no ReLU to die under: its bias stays 0
        nn.init.constant_(model.class_map_layer.bias, FAST_CLASS_MAP_BIAS)
    model.train(was_training)


def initialize_(model: NIN, init: str, sample: torch.Tensor) -> None:
    """`normal`: the authors' N(0, 0.05); `lsuv`: data-dependent, on `sample`, prepared training images."""
    if init == "normal":
        init_normal_(model)
    else:
        init_lsuv_(model, sample)


def param_groups(model: NIN, recipe: Recipe, weight_decay: float) -> list[dict]:
    """SGD parameter groups; each carries `lr_scale`, its learning rate relative to the schedule's.

    Biases never get weight decay; their rate and the class-map layer's are scaled as the recipe says.
    """
    class_map = {id(p) for p in model.output_layer.parameters()}
    groups: dict[tuple[float, float], list[torch.Tensor]] = {}
    for name, p in model.named_parameters():
        is_bias = name.endswith("bias")
        scale = (recipe.bias_lr_scale if is_bias else 1.0) * (recipe.class_map_lr_scale if id(p) in class_map else 1.0)
        key = (scale, 0.0 if is_bias else weight_decay)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr_scale": scale, "weight_decay": wd} for (scale, wd), ps in groups.items()]


def make_optimizer(model: NIN, recipe: Recipe, lr: float, weight_decay: float | None = None,
                   momentum: float | None = None) -> torch.optim.SGD:
    """SGD as the recipe has it (momentum, Nesterov, the groups above); weight decay and momentum may be overridden."""
    return torch.optim.SGD(param_groups(model, recipe, recipe.weight_decay if weight_decay is None else weight_decay),
                           lr=lr, momentum=recipe.momentum if momentum is None else momentum, nesterov=recipe.nesterov)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
