"""torch.hub entry points for the shipped NIN models.

    model = torch.hub.load("path/to/network-in-network", "nin_mnist", source="local", pretrained=True)

Each takes `pretrained`: True loads the shipped weights and returns the model in eval mode; False
(the default) returns the untrained paper architecture. `nin.load_pretrained(name)` also gives the
preprocessing that goes with the weights.
"""

import os
import sys

dependencies = ["torch", "numpy", "safetensors", "PIL"]

# A plain checkout, without `pip install`: the package is in src/.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from nin.pretrained import build_preset  # noqa: E402


def nin_mnist(pretrained: bool = False):
    """NIN for MNIST (349,674 parameters); pretrained: the shipped nin-mnist (0.44% test error)."""
    return build_preset("nin-mnist", "nin-mnist" if pretrained else None)


def nin_mnist_paper(pretrained: bool = False):
    """NIN for MNIST trained with the paper's recipe; pretrained: the shipped nin-mnist-paper."""
    return build_preset("nin-mnist", "nin-mnist-paper" if pretrained else None)


def nin_fashion_mnist(pretrained: bool = False):
    """NIN-MNIST's architecture for Fashion-MNIST; pretrained: the shipped nin-fashion-mnist."""
    return build_preset("nin-mnist", "nin-fashion-mnist" if pretrained else None)


def nin_cifar10(pretrained: bool = False):
    """NIN for CIFAR-10 (966,986 parameters); pretrained: the shipped nin-cifar10 (see its card)."""
    return build_preset("nin-cifar10", "nin-cifar10" if pretrained else None)


def nin_cifar100(pretrained: bool = False):
    """NIN for CIFAR-100 (984,356 parameters); pretrained: the shipped nin-cifar100 (see its card)."""
    return build_preset("nin-cifar100", "nin-cifar100" if pretrained else None)
