"""torch.hub entry points: the package's own builders, re-exported.

    model = torch.hub.load("path/to/network-in-network", "nin_cifar10", source="local", weights="nin-cifar10")

Each builder takes `weights`: a shipped name (`nin.list_pretrained()`), a run folder or a weights file; without
it, the untrained paper architecture. `nin.get_weights(name)` gives the card (class names in
meta["categories"]) and the preprocessing (`.transforms()`) that go with the weights.
"""

import os
import sys

dependencies = ["torch", "numpy", "safetensors", "PIL"]

# A plain checkout, without `pip install`: the package is in src/.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from nin.models import nin_cifar10, nin_cifar100, nin_mnist, nin_svhn  # noqa: E402,F401
