"""Preset name -> ModelConfig, each from the authors' own layer files."""

from __future__ import annotations

import dataclasses

from nin.errors import NinError
from nin.models.nin import NIN, MlpConvSpec, ModelConfig


def _three_blocks(in_channels: int, num_classes: int, widths, kernels) -> ModelConfig:
    # Max pooling and dropout 0.5 after mlpconv1 and 2; mlpconv3 ends in the class maps.
    return ModelConfig(
        in_channels=in_channels,
        num_classes=num_classes,
        blocks=(
            MlpConvSpec(kernels[0], widths[0], pool="max", dropout=0.5),
            MlpConvSpec(kernels[1], widths[1], pool="max", dropout=0.5),
            MlpConvSpec(kernels[2], (*widths[2], num_classes), pool=None, dropout=0.0),
        ),
    )


_CIFAR_WIDTHS = ((192, 160, 96), (192, 192, 192), (192, 192))

PRESETS: dict[str, ModelConfig] = {
    # mavenlin/cuda-convnet NIN/ layer files, CIFAR-10 (also the Caffe Model Zoo model): 966,986 params.
    "nin-cifar10": _three_blocks(3, 10, _CIFAR_WIDTHS, (5, 5, 3)),
    # Same layers, 100 class maps: 984,356 params.
    "nin-cifar100": _three_blocks(3, 100, _CIFAR_WIDTHS, (5, 5, 3)),
    # SVHN layer file: 1,986,026 params.
    "nin-svhn": _three_blocks(3, 10, ((128, 96, 64), (320, 256, 128), (384, 256)), (5, 5, 5)),
    # MNIST layer file, "the CIFAR-10 structure with fewer maps": 349,674 params.
    "nin-mnist": _three_blocks(1, 10, ((96, 64, 48), (128, 96, 48), (128, 96)), (5, 5, 5)),
}


# ------------------------------------------------------------------ the paper's comparison models
# All share nin.models.NIN; see docs/models.md, "Comparison models", for why each size was chosen.

FC_HIDDEN = 512   # one hidden fully connected layer: 512 ReLU units


def with_dropout(config: ModelConfig, rate: float) -> ModelConfig:
    """Every dropout the model has (between blocks, before FC layers) at `rate`; 0 removes them.

    A training choice, not a new model: the layers with weights are the same, so are the weights' names.
    """
    if not 0.0 <= rate < 1.0:
        raise NinError(f"dropout rate must be in [0, 1), got {rate}")
    blocks = tuple(dataclasses.replace(b, dropout=rate) if b.dropout else b for b in config.blocks)
    return dataclasses.replace(config, blocks=blocks, fc_dropout=rate if config.fc_dropout else 0.0)


def _fc_head(config: ModelConfig, dropout: float) -> ModelConfig:
    """Table 5's "mlpconv + fully connected": the third block keeps its hidden width (its class-map
    layer is removed), then flatten -> FC 512 -> ReLU -> FC num_classes, with dropout 0.5 before
    each FC layer in the dropout variant."""
    last = config.blocks[-1]
    return dataclasses.replace(config, blocks=(*config.blocks[:-1], dataclasses.replace(last, channels=last.channels[:-1])),
                               head="fc", fc_hidden=(FC_HIDDEN,), fc_dropout=dropout)


def _conventional(config: ModelConfig, head: str, dropout: float = 0.0) -> ModelConfig:
    """The same depth without the 1x1 layers: each block is its k x k convolution only, widths as NIN's,
    dropout 0.5 between blocks as NIN.

    GAP head: the third convolution outputs the class maps directly. FC head: it keeps its width,
    followed by the FC head above (dropout before the FC layers in the -dropout variant)."""
    blocks = [dataclasses.replace(b, channels=b.channels[:1]) for b in config.blocks]
    if head == "gap":
        blocks[-1] = dataclasses.replace(blocks[-1], channels=(config.num_classes,))
        return dataclasses.replace(config, blocks=tuple(blocks))
    return dataclasses.replace(config, blocks=tuple(blocks), head="fc", fc_hidden=(FC_HIDDEN,), fc_dropout=dropout)


# Maxout networks (Goodfellow et al. 2013), from their pylearn2 files. CIFAR-10: three maxout
# convolution layers (96, 192, 192 units of 2 pieces; kernels 8, 8, 5; max pooling 4, 4, 2 with
# stride 2), a maxout FC layer of 500 units of 5 pieces, softmax; dropout 0.5 on each layer's input.
# MNIST: 48, 48, 24 units of 2, 2, 4 pieces (kernels 8, 8, 5; pools 4, 4, 2), softmax.
# Differences: 'same' padding and stride-2 pools (theirs pad/stride differently), dropout 0.5
# everywhere (they kept 0.8 of the input pixels), and no max-norm constraint.
MAXOUT_CIFAR10 = ModelConfig(
    in_channels=3, num_classes=10, input_size=32, head="fc", fc_hidden=(500,), fc_dropout=0.5, fc_pieces=5,
    blocks=(MlpConvSpec(8, (96,), pool="max", pool_size=4, dropout=0.5, pieces=2),
            MlpConvSpec(8, (192,), pool="max", pool_size=4, dropout=0.5, pieces=2),
            MlpConvSpec(5, (192,), pool="max", pool_size=2, dropout=0.0, pieces=2)))
MAXOUT_MNIST = ModelConfig(
    in_channels=1, num_classes=10, input_size=28, head="fc", fc_hidden=(), fc_dropout=0.5,
    blocks=(MlpConvSpec(8, (48,), pool="max", pool_size=4, dropout=0.5, pieces=2),
            MlpConvSpec(8, (48,), pool="max", pool_size=4, dropout=0.5, pieces=2),
            MlpConvSpec(5, (24,), pool="max", pool_size=2, dropout=0.0, pieces=4)))


def _comparisons(name: str, config: ModelConfig) -> dict[str, ModelConfig]:
    base = name.removeprefix("nin-")
    return {
        f"{name}-fc": _fc_head(config, dropout=0.0),
        f"{name}-fc-dropout": _fc_head(config, dropout=0.5),
        f"{name}-no-dropout": with_dropout(config, 0.0),   # the paper's ablation (NIN has no FC dropout)
        f"cnn-{base}-gap": _conventional(config, "gap"),
        f"cnn-{base}-fc": _conventional(config, "fc"),
        f"cnn-{base}-fc-dropout": _conventional(config, "fc", dropout=0.5),
    }


PRESETS["nin-mnist"] = dataclasses.replace(PRESETS["nin-mnist"], input_size=28)
for _name in ("nin-cifar10", "nin-mnist"):
    PRESETS.update(_comparisons(_name, PRESETS[_name]))
PRESETS.update({"maxout-cifar10": MAXOUT_CIFAR10, "maxout-mnist": MAXOUT_MNIST})


def preset_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of a preset; `num_classes`, `in_channels`, `class_map_relu`, `input_size` may be overridden."""
    if name not in PRESETS:
        raise NinError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    config = PRESETS[name]
    if "num_classes" in overrides and overrides["num_classes"] != config.num_classes and config.head == "gap":
        last = config.blocks[-1]
        last = dataclasses.replace(last, channels=(*last.channels[:-1], overrides["num_classes"]))
        config = dataclasses.replace(config, blocks=(*config.blocks[:-1], last))
    return dataclasses.replace(config, **overrides)


def build_model(name: str, **overrides) -> NIN:
    return NIN(preset_config(name, **overrides))
