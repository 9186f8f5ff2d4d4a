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


def preset_config(name: str, **overrides) -> ModelConfig:
    """The ModelConfig of a preset; `num_classes`, `in_channels`, `class_map_relu` may be overridden."""
    if name not in PRESETS:
        raise NinError(f"unknown preset {name!r}: expected one of {', '.join(PRESETS)}")
    config = PRESETS[name]
    if "num_classes" in overrides and overrides["num_classes"] != config.num_classes:
        last = config.blocks[-1]
        last = dataclasses.replace(last, channels=(*last.channels[:-1], overrides["num_classes"]))
        config = dataclasses.replace(config, blocks=(*config.blocks[:-1], last))
    return dataclasses.replace(config, **overrides)


def build_model(name: str, **overrides) -> NIN:
    return NIN(preset_config(name, **overrides))
