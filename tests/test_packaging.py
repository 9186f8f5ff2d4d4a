"""What a user gets from `pip install`: the wheel carries the weights and experiment files, the Python API, torch.hub."""

import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

import nin
from nin.data.datasets import load_raw_test
from nin.errors import NinError
from nin.inference import load_trained, model_inputs
from nin.provenance import REPO


@pytest.fixture(scope="module")
def digits(mnist_dir):
    test = load_raw_test("mnist", mnist_dir, offline=True)
    return test.images[:16], test.labels[:16]


def test_load_pretrained_gives_the_model_and_its_preprocessing(digits):
    images, labels = digits
    model, preprocess = nin.load_pretrained("nin-mnist")
    assert "nin-mnist" in nin.list_pretrained() and not model.training
    batch = preprocess(images)
    torch.testing.assert_close(batch, model_inputs(load_trained("nin-mnist"), images))
    with torch.no_grad():
        assert (model(batch).argmax(1) == labels).float().mean() >= 0.9
    # A PIL image of another size is resized to the training size, as in `nin predict`.
    picture = Image.fromarray(images[0, 0].numpy()).resize((56, 56))
    assert preprocess(picture).shape == (1, 1, 28, 28)
    assert preprocess([picture, picture]).shape == (2, 1, 28, 28)
    with pytest.raises(NinError, match="expected uint8 images"):
        preprocess(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))


def test_weights_carry_their_card_class_names_and_preprocessing(digits):
    """torchvision's shape: a weights entry with meta (the card, class names as "categories") and transforms()."""
    images, labels = digits
    weights = nin.get_weights("nin-fashion-mnist")
    card = json.loads((REPO / "src" / "nin" / "weights" / "nin-fashion-mnist.json").read_text())
    assert weights.meta["categories"][:2] == ["T-shirt/top", "Trouser"] and weights.preset == "nin-mnist"
    assert (weights.meta["test_error"], weights.meta["commit"]) == (card["test_error"], card["commit"])
    mnist = nin.get_weights("nin-mnist")
    model = nin.models.nin_mnist(weights=mnist)
    with torch.no_grad():
        predicted = model(mnist.transforms()(images)).argmax(1)
    assert (predicted == labels).float().mean() >= 0.9
    assert [mnist.meta["categories"][i] for i in labels] == [str(int(label)) for label in labels]


def test_model_builders_take_shipped_weights_of_their_own_architecture():
    untrained = nin.models.nin_mnist()
    trained = nin.models.nin_mnist(weights="nin-mnist")
    assert untrained.config == trained.config
    assert not torch.equal(next(untrained.parameters()), next(trained.parameters()))
    with pytest.raises(NinError, match="weights of nin-mnist, not of nin-cifar10"):
        nin.models.nin_cifar10(weights="nin-mnist")


def test_torch_hub_loads_a_ready_model_from_the_checkout(digits):
    images, labels = digits
    model = torch.hub.load(str(REPO), "nin_mnist", source="local", weights="nin-mnist")
    _, preprocess = nin.load_pretrained("nin-mnist")
    with torch.no_grad():
        assert torch.equal(model(preprocess(images)).argmax(1), nin.models.nin_mnist("nin-mnist")(
            preprocess(images)).argmax(1))
    untrained = torch.hub.load(str(REPO), "nin_cifar10", source="local")
    assert untrained.config == nin.models.nin_cifar10().config and untrained.training   # ready to train


def test_a_wheel_installed_apart_from_the_checkout_predicts_and_lists(tmp_path, digits):
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)], check=True,
                   capture_output=True)
    (wheel,) = wheels.glob("network_in_network-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True)
    Image.fromarray(digits[0][0, 0].numpy()).save(elsewhere / "digit.png")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=elsewhere, env=env, capture_output=True, text=True)

    where = run("-c", "import nin; print(nin.__file__)")
    assert where.stdout.startswith(str(target)), where   # the wheel's copy, not the checkout's
    predicted = run("-m", "nin", "predict", "nin-mnist", "digit.png", "--top-k", "1")
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.startswith(f"digit.png: {int(digits[1][0])} "), predicted.stdout
    listed = run("-m", "nin", "reproduce", "--list")
    assert listed.returncode == 0 and "cifar10-aug" in listed.stdout and "mnist-paper" in listed.stdout, listed
