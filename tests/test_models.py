import json
import math
from pathlib import Path

import pytest
import torch

from nin.errors import NinError
from nin.models import NIN, PRESETS, MLPConv, build_model, global_average_pool, preset_config
from nin.models.registry import with_dropout
from nin.models.summary import forward_macs

EXPECTED = json.loads((Path(__file__).parent / "expected_complexity.json").read_text())


AUTHORS_PRESETS = ["nin-cifar10", "nin-cifar100", "nin-svhn", "nin-mnist"]   # from the authors' layer files


def test_every_authors_preset_has_expected_numbers():
    assert set(EXPECTED) == set(AUTHORS_PRESETS) and set(AUTHORS_PRESETS) <= set(PRESETS)


@pytest.mark.parametrize("name", AUTHORS_PRESETS)
def test_preset_parameters_macs_and_output_shape(name):
    model = build_model(name).eval()
    expected = EXPECTED[name]
    assert sum(p.numel() for p in model.parameters()) == expected["params"]
    assert forward_macs(model, tuple(expected["input"])) == expected["macs"]
    out = model(torch.randn(2, *expected["input"]))
    assert out.shape == (2, model.config.num_classes)


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if build_model(n).has_class_maps))
def test_pooled_output_is_mean_of_confidence_maps(name):
    model = build_model(name).eval()
    c = model.config.in_channels
    x = torch.randn(3, c, 32, 32)
    maps = model.forward_maps(x)
    assert maps.shape == (3, model.config.num_classes, 8, 8)
    torch.testing.assert_close(model(x), maps.mean(dim=(2, 3)))
    torch.testing.assert_close(global_average_pool(maps), maps.mean(dim=(2, 3)))


@pytest.mark.parametrize("size", [(17, 23), (9, 9), (45, 31), (64, 64)])
def test_odd_input_sizes(size):
    model = build_model("nin-cifar10").eval()
    x = torch.randn(2, 3, *size)
    maps = model.forward_maps(x)
    # Each 3x3/2 pooling with padding 1 gives ceil(n / 2).
    h, w = (math.ceil(math.ceil(n / 2) / 2) for n in size)
    assert maps.shape == (2, 10, h, w)
    assert model(x).shape == (2, 10)


def test_class_maps_have_relu_by_default_and_option_removes_it():
    x = torch.randn(4, 1, 28, 28)
    with_relu = build_model("nin-mnist").eval()
    assert (with_relu.forward_maps(x) >= 0).all()
    without = build_model("nin-mnist", class_map_relu=False).eval()
    torch.nn.init.constant_(without.class_map_layer.bias, -5.0)
    assert (without.forward_maps(x) < 0).any()


def test_mlpconv_1x1_layers_act_per_pixel():
    block = MLPConv(4, (6, 5, 3), kernel=3).eval()
    x = torch.randn(1, 4, 7, 7)
    y = block(x)
    assert y.shape == (1, 3, 7, 7)
    # Changing one input pixel changes outputs only within the 3x3 neighbourhood.
    x2 = x.clone()
    x2[0, :, 3, 3] += 1.0
    changed = (block(x2) - y).abs().sum(dim=1)[0] > 0
    assert not changed[:2].any() and not changed[5:].any()
    assert not changed[:, :2].any() and not changed[:, 5:].any()
    assert [c.kernel_size for c in block.convs] == [(3, 3), (1, 1), (1, 1)]


def test_checkpoint_key_names_are_stable():
    keys = list(build_model("nin-mnist").state_dict())
    assert keys[:2] == ["blocks.0.convs.0.weight", "blocks.0.convs.0.bias"]
    assert keys[-1] == "blocks.2.convs.2.bias"


def test_num_classes_override_changes_class_map_layer():
    model = build_model("nin-cifar10", num_classes=7)
    assert model.class_map_layer.out_channels == 7


def test_unknown_preset_is_a_user_error():
    with pytest.raises(NinError, match="unknown preset 'nin-foo'"):
        build_model("nin-foo")


# ------------------------------------------------------------------ the paper's comparison models

def test_maxout_takes_the_max_of_consecutive_pieces():
    from nin.models.blocks import maxout
    x = torch.tensor([[1.0, 5.0, -2.0, -1.0, 3.0, 0.0]]).view(1, 6, 1, 1)
    assert maxout(x, 2).flatten().tolist() == [5.0, -1.0, 3.0]
    assert maxout(x, 3).flatten().tolist() == [5.0, 3.0]


@pytest.mark.parametrize("name, params, maps", [
    # FC head: 96 x 7 x 7 -> 512 -> 10 on MNIST; 192 x 8 x 8 -> 512 -> 10 on CIFAR-10.
    ("nin-mnist-fc", 349_674 - (96 * 10 + 10) + (96 * 49 * 512 + 512) + (512 * 10 + 10), False),
    ("nin-cifar10-fc", 966_986 - (192 * 10 + 10) + (192 * 64 * 512 + 512) + (512 * 10 + 10), False),
    ("nin-cifar10-no-dropout", 966_986, True),
    # Conventional CNN, GAP head: 5x5 192, 5x5 192, 3x3 10 convolutions.
    ("cnn-cifar10-gap", (3 * 25 * 192 + 192) + (192 * 25 * 192 + 192) + (192 * 9 * 10 + 10), True),
    # Maxout MNIST: 48x2, 48x2, 24x4 units; 24 x 3 x 3 features -> softmax.
    ("maxout-mnist", (1 * 64 * 96 + 96) + (48 * 64 * 96 + 96) + (48 * 25 * 96 + 96) + (24 * 9 * 10 + 10), False),
])
def test_comparison_presets(name, params, maps):
    model = build_model(name).eval()
    c = model.config
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.has_class_maps is maps
    assert model(torch.randn(3, c.in_channels, c.input_size, c.input_size)).shape == (3, 10)


def test_no_dropout_ablation_differs_only_in_dropout():
    base, ablated = build_model("nin-cifar10").config, build_model("nin-cifar10-no-dropout").config
    assert [b.dropout for b in base.blocks] == [0.5, 0.5, 0.0]
    assert [b.dropout for b in ablated.blocks] == [0.0, 0.0, 0.0]
    assert [b.channels for b in base.blocks] == [b.channels for b in ablated.blocks]


def test_dropout_override_changes_the_rates_only():
    base = preset_config("nin-mnist")
    lighter = with_dropout(base, 0.2)
    assert [b.dropout for b in lighter.blocks] == [0.2, 0.2, 0.0]
    assert with_dropout(preset_config("nin-mnist-fc-dropout"), 0.3).fc_dropout == 0.3
    assert with_dropout(preset_config("nin-mnist-fc"), 0.3).fc_dropout == 0.0   # adds none where there was none
    off = NIN(with_dropout(base, 0.0))
    x = torch.randn(4, 1, 28, 28)
    off.train()
    assert torch.equal(off(x), off(x))   # no dropout left
    assert NIN(base).state_dict().keys() == off.state_dict().keys()   # the same weights file either way
    with pytest.raises(NinError, match="dropout rate"):
        with_dropout(base, 1.0)


def test_fc_dropout_variant_drops_in_training_only():
    model = build_model("nin-mnist-fc-dropout")
    x = torch.randn(4, 1, 28, 28)
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_fc_head_model_has_no_maps_and_round_trips_its_config():
    from nin.models.nin import ModelConfig
    model = build_model("cnn-mnist-fc")
    with pytest.raises(ValueError, match="no class confidence maps"):
        model.forward_maps(torch.zeros(1, 1, 28, 28))
    assert ModelConfig.from_dict(model.config.to_dict()) == model.config
