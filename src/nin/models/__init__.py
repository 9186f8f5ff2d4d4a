from nin.models.blocks import MLPConv
from nin.models.nin import NIN, MlpConvSpec, ModelConfig, global_average_pool
from nin.models.registry import PRESETS, build_model, preset_config

__all__ = ["MLPConv", "NIN", "MlpConvSpec", "ModelConfig", "global_average_pool", "PRESETS", "build_model",
           "preset_config", "nin_mnist", "nin_cifar10", "nin_cifar100", "nin_svhn"]


def _paper_model(preset: str, weights) -> NIN:
    from nin.pretrained import build_preset   # here: nin.pretrained imports this package
    return build_preset(preset, weights)


def nin_mnist(weights=None) -> NIN:
    """The paper's MNIST network. `weights`: a shipped name (nin-mnist, nin-mnist-paper, nin-fashion-mnist), a
    nin.get_weights(...) entry, a run folder or a weights file; None: untrained, ready to train."""
    return _paper_model("nin-mnist", weights)


def nin_cifar10(weights=None) -> NIN:
    """The paper's CIFAR-10 network; `weights` as for nin_mnist (shipped: nin-cifar10)."""
    return _paper_model("nin-cifar10", weights)


def nin_cifar100(weights=None) -> NIN:
    """The paper's CIFAR-100 network; `weights` as for nin_mnist (shipped: nin-cifar100)."""
    return _paper_model("nin-cifar100", weights)


def nin_svhn(weights=None) -> NIN:
    """The paper's SVHN network; `weights` as for nin_mnist (none shipped: SVHN is not available here)."""
    return _paper_model("nin-svhn", weights)
