"""Training end to end on the real MNIST (../shared/data/mnist), through the CLI and the library."""

import csv
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from conftest import SMALL_MNIST
from nin.config import TrainConfig
from nin.errors import NinError
from nin.rundir import untimed_metrics
from nin.train.run import fit

CARD_KEYS = {"preset", "recipe", "dataset", "epochs", "test_error", "wall_seconds"}


def nin(*args):
    result = subprocess.run([sys.executable, "-m", "nin", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.long
def test_fast_recipe_reaches_97_percent_in_300_steps(mnist_run_300):
    card = json.loads((mnist_run_300 / "card.json").read_text())
    assert CARD_KEYS <= set(card)
    assert card["test_error"] <= 3.0, card


def test_run_folder_contents(mnist_run):
    config = json.loads((mnist_run / "config.json").read_text())
    assert config["recipe"] == "fast" and config["lr"] == 0.2 and config["init"] == "lsuv"
    rows = list(csv.DictReader((mnist_run / "metrics.csv").open()))
    assert len(rows) == 1
    assert {"epoch", "lr", "train_loss", "train_accuracy", "test_accuracy", "images_per_second"} <= set(rows[0])
    assert float(rows[0]["images_per_second"]) > 0
    # the time as the card counts it, evaluation included: at least the steps' time, at most the card's
    card = json.loads((mnist_run / "card.json").read_text())
    assert float(rows[0]["epoch_seconds"]) < float(rows[0]["elapsed_seconds"]) <= card["wall_seconds"]
    from nin.models import build_model
    assert set(load_file(mnist_run / "weights.safetensors")) == set(build_model("nin-mnist").state_dict())


def test_eval_matches_the_card(mnist_run, mnist_small_dir, tmp_path):
    report = tmp_path / "eval.json"
    result = nin("eval", str(mnist_run), "--data-dir", str(mnist_small_dir), "--offline", "--json", str(report))
    evaluation = json.loads(report.read_text())
    card = json.loads((mnist_run / "card.json").read_text())
    assert evaluation["test_error"] == card["test_error"]
    assert sum(map(sum, evaluation["confusion_matrix"])) == SMALL_MNIST["test"]
    assert len(evaluation["per_class_accuracy"]) == 10
    assert f"error {card['test_error']:.2f}%" in result.stdout


def test_eval_on_the_validation_split_of_weights_that_trained_on_it_is_refused(mnist_dir):
    result = subprocess.run([sys.executable, "-m", "nin", "eval", "nin-mnist", "--split", "val", "--data-dir",
                             str(mnist_dir), "--offline"], capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "--split val" in line and "--val-split none" in line


def small_config(tmp_path, mnist_dir, name, **overrides) -> TrainConfig:
    values = dict(dataset="mnist", data_dir=str(mnist_dir), offline=True, train_subset=512, batch_size=64,
                  epochs=2, progress=False, out=str(tmp_path / name))
    values.update(overrides)
    return TrainConfig(**values).resolved()


def test_the_default_preset_is_the_papers_model_for_the_data_set():
    assert TrainConfig(dataset="cifar10").resolved().preset == "nin-cifar10"
    assert TrainConfig(dataset="svhn").resolved().preset == "nin-svhn"
    assert TrainConfig(dataset="fashion-mnist").resolved().preset == "nin-mnist"
    assert TrainConfig(dataset="cifar10", preset="nin-cifar10-fc").resolved().preset == "nin-cifar10-fc"
    with pytest.raises(NinError, match="is not one of mnist"):
        TrainConfig(dataset="imagenet").resolved()


def weights(run_dir):
    return load_file(run_dir / "weights.safetensors")


def test_same_seed_gives_identical_weights(tmp_path, mnist_small_dir):
    fit(small_config(tmp_path, mnist_small_dir, "a"), log=lambda *_: None)
    fit(small_config(tmp_path, mnist_small_dir, "b"), log=lambda *_: None)
    fit(small_config(tmp_path, mnist_small_dir, "c", seed=1), log=lambda *_: None)
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


class Interrupted(Exception):
    pass


def stop_after(epochs):
    def on_epoch_end(epoch):
        if epoch + 1 == epochs:
            raise Interrupted
    return on_epoch_end


def test_resume_continues_the_same_run(tmp_path, mnist_small_dir):
    fit(small_config(tmp_path, mnist_small_dir, "whole", epochs=3), log=lambda *_: None)
    with pytest.raises(Interrupted):
        fit(small_config(tmp_path, mnist_small_dir, "split", epochs=3), log=lambda *_: None, on_epoch_end=stop_after(1))
    assert not (tmp_path / "split" / "weights.safetensors").exists()
    fit(small_config(tmp_path, mnist_small_dir, "split", epochs=3), resume=True, log=lambda *_: None)
    whole, split = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    assert len(untimed_metrics(tmp_path / "whole")) == 3
    assert untimed_metrics(tmp_path / "whole") == untimed_metrics(tmp_path / "split")


def test_ema_saves_the_moving_average_of_every_steps_weights_and_resumes_it(tmp_path, mnist_small_dir, monkeypatch):
    from torch.optim.swa_utils import AveragedModel

    decay, seen = 0.75, []
    update = AveragedModel.update_parameters

    def recording(self, model):   # the weights after each optimizer step, as the average is given them
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        update(self, model)

    monkeypatch.setattr(AveragedModel, "update_parameters", recording)
    fit(small_config(tmp_path, mnist_small_dir, "whole", epochs=3, ema_decay=decay), log=lambda *_: None)
    assert len(seen) == 3 * 512 // 64   # once per step
    average = dict(seen[0])
    for step in seen[1:]:
        average = {k: decay * average[k] + (1 - decay) * step[k] for k in average}
    whole = weights(tmp_path / "whole")
    assert set(whole) == set(average)
    assert all(torch.allclose(whole[k], average[k], rtol=1e-5, atol=1e-6) for k in whole)
    assert not all(torch.allclose(whole[k], seen[-1][k]) for k in whole)   # not the last step's weights
    # An interrupted run continues the average from its checkpoint: the same weights as in one go.
    monkeypatch.setattr(AveragedModel, "update_parameters", update)
    with pytest.raises(Interrupted):
        fit(small_config(tmp_path, mnist_small_dir, "split", epochs=3, ema_decay=decay), log=lambda *_: None,
            on_epoch_end=stop_after(1))
    fit(small_config(tmp_path, mnist_small_dir, "split", epochs=3, ema_decay=decay), resume=True, log=lambda *_: None)
    split = weights(tmp_path / "split")
    assert all(torch.equal(whole[k], split[k]) for k in whole)
    assert untimed_metrics(tmp_path / "whole") == untimed_metrics(tmp_path / "split")


def test_paper_recipe_divides_lr_twice_then_stops(tmp_path, mnist_small_dir):
    # min_delta 100 points: only the first epoch "improves" (on nothing), so with patience 1
    # every later epoch is a plateau: LR 0.05, 0.05, then /10 twice, then stop.
    cfg = small_config(tmp_path, mnist_small_dir, "paper", recipe="paper", epochs=10, patience=1, min_delta=100.0,
                       init="lsuv", lr=0.05)
    card = fit(cfg, log=lambda *_: None)
    rows = list(csv.DictReader((tmp_path / "paper" / "metrics.csv").open()))
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.05, 0.05, 0.005, 0.0005])
    assert card["epochs"] == 4


def test_non_finite_loss_stops_with_exit_code_3(tmp_path, mnist_dir):
    out = tmp_path / "nan"
    result = subprocess.run(
        [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--offline",
         "--recipe", "paper", "--init", "lsuv", "--lr", "1e6", "--warmup-epochs", "0", "--train-subset", "1024",
         "--epochs", "1", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "the training loss became" in line and "in epoch 1 at step" in line and "Traceback" not in result.stderr
    assert not (out / "weights.safetensors").exists()


def test_sigterm_stops_training_keeping_the_last_checkpoint(tmp_path, mnist_small_dir):
    import signal
    import time

    out = tmp_path / "term"
    process = subprocess.Popen(
        [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline",
         "--train-subset", "640", "--batch-size", "64", "--epochs", "50", "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; the last checkpoint is in" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []
    from nin.files import load_checkpoint
    state = load_checkpoint(out / "checkpoint.pt")
    # Saved at the step the signal arrived after (or at the epoch's end): never before the first epoch's.
    assert state["epoch"] >= 1


def test_small_crop_epochs_train_the_first_epochs_on_smaller_crops(tmp_path, mnist_small_dir, monkeypatch):
    import nin.train.run as run

    seen, augments = [], []
    original, make_augment = run.train_one_epoch, run.make_augment

    def spy(model, batches, num_batches, optimizer, lr_at, step, *rest, **kw):
        out = step.augment(torch.ones(64, 1, 28, 28)) if step.augment else None
        seen.append((tuple(out.shape[2:]), bool((out == 0).any())) if step.augment else None)
        return original(model, batches, num_batches, optimizer, lr_at, step, *rest, **kw)

    monkeypatch.setattr(run, "train_one_epoch", spy)
    monkeypatch.setattr(run, "make_augment", lambda *a, **kw: (augments.append(kw), make_augment(*a, **kw))[1])
    card = fit(small_config(tmp_path, mnist_small_dir, "crops", epochs=3, augment=True, small_crop_epochs=2,
                            small_crop_size=20, cutout=14))
    # Crops of ones hold no zeros but the cutout holes; then the full size, with the usual translation.
    assert seen == [((20, 20), True), ((20, 20), True), ((28, 28), True)]
    assert sorted((kw.get("crop") or 28, kw["cutout"]) for kw in augments) == [(20, 10), (28, 14)]  # same share
    # The 24 steps are too few to say how well it learns; what must hold is that every test image was scored
    # at full size after the small-crop epochs.
    assert card["epochs"] == 3 and sum(map(sum, card["confusion_matrix"])) == SMALL_MNIST["test"]


def test_cutout_needs_augment():
    with pytest.raises(NinError, match="--cutout: needs --augment"):
        TrainConfig(dataset="cifar10", cutout=16).resolved()
    assert TrainConfig(dataset="cifar10", augment=True, cutout=16).resolved().cutout == 16


def test_anneal_by_time_brings_the_rate_down_by_the_budgets_end(tmp_path, mnist_small_dir, monkeypatch):
    import nin.train.loop as loop

    rates = []
    original = loop.set_lr
    monkeypatch.setattr(loop, "set_lr", lambda optimizer, lr: (rates.append(lr), original(optimizer, lr))[1])
    # Short epochs (4 batches, then 1,000 test images) so that several fit in the budget on a loaded machine:
    # 2,048 images an epoch in 9 s left room for 0.72 of one when CI shared the cores with a training run;
    # these gave 2.6 epochs in 9 s beside a training run and a 2-thread matrix product.
    card = fit(small_config(tmp_path, mnist_small_dir, "timed", epochs=1000, train_subset=512,
                            time_budget_minutes=0.25, anneal_by_time=True, warmup_epochs=0.5), log=lambda *_: None)
    assert card["stopped_by_time_budget"] and 1 < card["epochs"] < 1000
    peak = max(rates)
    after_warmup = rates[rates.index(peak):]
    assert all(b <= a for a, b in zip(after_warmup, after_warmup[1:]))   # the cosine only comes down
    assert rates[-1] < 0.25 * peak   # near zero at the end, which --epochs 1000 alone would not give


def test_anneal_by_time_needs_a_budget_and_the_fast_recipe():
    with pytest.raises(NinError, match="--time-budget-minutes"):
        TrainConfig(dataset="mnist", anneal_by_time=True).resolved()
    with pytest.raises(NinError, match="--recipe fast"):
        TrainConfig(dataset="mnist", recipe="paper", anneal_by_time=True, time_budget_minutes=5.0).resolved()


def test_forward_views_averages_an_image_and_its_mirror():
    from nin.scoring import forward_views

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.LazyLinear(4))
    x = torch.randn(5, 1, 8, 8)
    both = forward_views(model, x, flip=True)
    torch.testing.assert_close(both, (model(x) + model(x.flip(3))) / 2)
    torch.testing.assert_close(forward_views(model, x), model(x))
    symmetric = x + x.flip(3)   # a mirror-symmetric image looks the same both ways
    torch.testing.assert_close(forward_views(model, symmetric, flip=True), model(symmetric))


def test_test_flip_is_kept_with_the_weights_and_reported_apart_from_single_view(tmp_path, fashion_small_dir):
    """test_error is single view, the paper's kind of number, in the card and every epoch's curve; flip TTA has
    fields of its own. Both are what `nin eval` gives for the saved weights, without and with --test-flip."""
    out = tmp_path / "flip"
    nin("train", "--dataset", "fashion-mnist", "--data-dir", str(fashion_small_dir), "--offline",
        "--train-subset", "2048", "--epochs", "2", "--augment", "--test-flip", "--out", str(out), "--no-progress",
        "--no-report")
    card = json.loads((out / "card.json").read_text())
    assert card["test_flip"] is True and card["test_error"] != card["test_error_flip"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert float(rows[-1]["test_accuracy"]) == card["test_accuracy"]   # the curve is single view too
    # The run scored its own preprocessed batches; eval reads the files again: a few images may differ.
    evaluated = {}
    for flip in ("--no-test-flip", "--test-flip"):
        nin("eval", str(out), "--data-dir", str(fashion_small_dir), "--offline", "--precision", "fp32", flip,
            "--json", str(tmp_path / f"{flip}.json"))
        evaluated[flip] = json.loads((tmp_path / f"{flip}.json").read_text())
    assert evaluated["--no-test-flip"]["test_flip"] is False and evaluated["--test-flip"]["test_flip"] is True
    assert evaluated["--no-test-flip"]["test_error"] == pytest.approx(card["test_error"], abs=0.5)
    assert evaluated["--test-flip"]["test_error"] == pytest.approx(card["test_error_flip"], abs=0.5)
    # The two views by hand: the mean of the logits of each test image and of its mirror.
    from nin.data.batches import normalize
    from nin.data.datasets import load_raw_test
    from nin.inference import load_trained

    trained = load_trained(out)
    assert trained.test_flip   # the weights remember it: `nin predict` averages with the mirror image
    test = load_raw_test("fashion-mnist", fashion_small_dir, offline=True)
    x = normalize(test.images, torch.tensor(trained.meta["mean"]), torch.tensor(trained.meta["std"]))
    with torch.no_grad():   # in batches: all the test images in one forward pass take gigabytes and longer
        logits = torch.cat([trained.model(batch) + trained.model(batch.flip(3)) for batch in x.split(500)])
    by_hand = 100.0 * (logits.argmax(1) != test.labels).float().mean().item()
    assert by_hand == pytest.approx(evaluated["--test-flip"]["test_error"], abs=0.05)   # both fp32


def test_test_flip_is_refused_for_digits():
    with pytest.raises(NinError, match="--test-flip: mnist"):
        TrainConfig(dataset="mnist", test_flip=True).resolved()
