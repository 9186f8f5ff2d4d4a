"""LSUV init (nin.train.recipes): one forward pass gives what the layer-by-layer definition gives."""

import pytest
import torch
from torch import nn

from nin.models import PRESETS, build_model
from nin.train.recipes import FAST_CLASS_MAP_BIAS, FAST_CLASS_MAP_STD, init_lsuv_


@torch.no_grad()
def lsuv_layer_by_layer(model, sample):
    """LSUV as Mishkin & Matas define it: rescale one layer, run the network again, rescale the next."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for layer in layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    model.eval()
    for layer in layers:
        captured = {}
        handle = layer.register_forward_hook(lambda _m, _i, out: captured.__setitem__("out", out))
        model(sample)
        handle.remove()
        target = FAST_CLASS_MAP_STD if layer is model.output_layer else 1.0
        layer.weight.mul_(target / captured["out"].std().clamp(min=1e-8))
    if model.has_class_maps:
        nn.init.constant_(model.class_map_layer.bias, FAST_CLASS_MAP_BIAS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_one_pass_lsuv_equals_the_layer_by_layer_definition(name):
    one, reference = build_model(name), build_model(name)
    size = one.config.input_size
    sample = torch.randn(4, one.config.in_channels, size, size)
    torch.manual_seed(0)
    init_lsuv_(one, sample)
    torch.manual_seed(0)
    lsuv_layer_by_layer(reference, sample)
    for (key, a), b in zip(one.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=f"{name} {key}")
    assert one.training   # the model is handed back in the mode it came in


def test_lsuv_gives_unit_std_outputs_and_small_positive_class_maps():
    model = build_model("nin-cifar10")
    sample = torch.randn(32, 3, 32, 32)
    init_lsuv_(model, sample)
    model.eval()
    outputs = {}
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles = [layer.register_forward_hook(lambda m, _i, out: outputs.__setitem__(m, out)) for layer in layers]
    with torch.no_grad():
        model(sample)
    for handle in handles:
        handle.remove()
    stds = [outputs[layer].std().item() for layer in layers]
    assert stds[:-1] == pytest.approx([1.0] * (len(layers) - 1), rel=1e-3)
    class_maps = outputs[model.class_map_layer]
    assert class_maps.std().item() == pytest.approx(FAST_CLASS_MAP_STD, rel=1e-3)
    assert class_maps.mean().item() == pytest.approx(FAST_CLASS_MAP_BIAS, abs=0.05)
