"""Never lose a run: SIGKILL at random moments (one of them inside a checkpoint write), resume, same result."""

import os
import random
import signal
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nin.files import load_checkpoint
from nin.rundir import untimed_metrics


def train_argv(mnist_small_dir, out, *extra):
    # 12 steps per epoch, 3 epochs, a checkpoint every 2 steps; augmentation and dropout use the RNG.
    return [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline",
            "--train-subset", "768", "--batch-size", "64", "--epochs", "3", "--checkpoint-every", "2", "--augment",
            "--out", str(out), "--no-progress", "--no-report", *extra]


def wait_for(condition, timeout=120.0, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def checkpoint_stamp(run_dir: Path):
    """What changes each time a checkpoint is written (a new file renamed over the old one)."""
    try:
        stat = (run_dir / "checkpoint.pt").stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


@pytest.mark.long
def test_sigkill_at_random_points_then_resume_equals_uninterrupted(mnist_small_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    whole = tmp_path / "whole"
    subprocess.run(train_argv(mnist_small_dir, whole), check=True, capture_output=True, env=env)

    split = tmp_path / "split"
    rng = random.Random(1234)
    kills = 0
    # One kill inside a checkpoint write: fault_injection/sitecustomize.py slows the writes so that a
    # half-written temporary file is there long enough to be seen; the kill lands then.
    slow = {**env, "NIN_TEST_SLOW_WRITE_SECONDS": "0.5", "PYTHONPATH": str(Path(__file__).parent / "fault_injection")}
    process = subprocess.Popen(train_argv(mnist_small_dir, split), env=slow, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    assert wait_for(lambda: any(p.name.startswith(".checkpoint.pt.") for p in split.glob(".*.tmp")))
    process.send_signal(signal.SIGKILL)
    process.wait()
    kills += 1
    # Then kills at random moments of later runs, each resuming where the last one left off: after 0 to 2
    # new checkpoints and a random part of the next step. Counted in checkpoints, not seconds, so a fast
    # machine cannot finish a run before its kill (36 steps make 18 checkpoints; five runs write at most 15).
    for _ in range(5):
        argv = train_argv(mnist_small_dir, split, *(["--resume", str(split)] if (split / "checkpoint.pt").exists() else []))
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(rng.randint(0, 2)):
            before = checkpoint_stamp(split)
            assert wait_for(lambda: checkpoint_stamp(split) != before or process.poll() is not None)
        time.sleep(rng.uniform(0.0, 0.1))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        # The checkpoint on disk is always a whole one (or there is none yet).
        if (split / "checkpoint.pt").exists():
            load_checkpoint(split / "checkpoint.pt")
    assert kills >= 5
    argv = train_argv(mnist_small_dir, split, *(["--resume", str(split)] if (split / "checkpoint.pt").exists() else []))
    result = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr

    a, b = load_file(whole / "weights.safetensors"), load_file(split / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert untimed_metrics(whole) == untimed_metrics(split)
    assert list(split.glob(".*.tmp")) == []


@pytest.mark.long
def test_sigint_saves_a_mid_epoch_checkpoint_and_resume_finishes_identically(mnist_small_dir, tmp_path):
    # data.json is written once the data and model are ready, just before the first step. 4,800 images: about 4 s
    # an epoch on the AVX-512 Xeon kind (12,800 took about 10 s), longer elsewhere, so a signal 1.5 s in lands mid-epoch.
    whole, split = tmp_path / "whole", tmp_path / "split"
    argv = lambda out, *extra: [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir",
                                str(mnist_small_dir), "--offline", "--train-subset", "4800", "--batch-size", "64",
                                "--epochs", "1", "--out", str(out), "--no-progress", "--no-report", *extra]
    subprocess.run(argv(whole), check=True, capture_output=True)
    process = subprocess.Popen(argv(split), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (split / "data.json").exists())
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal arrived (machine too fast for this timing)")
    assert process.returncode == 130 and "interrupted; the last checkpoint is in" in stderr, stderr
    state = load_checkpoint(split / "checkpoint.pt")
    assert state["epoch"] == 0 and state["epoch_progress"]["batches_done"] > 0   # saved mid-epoch, no flag needed
    subprocess.run(argv(split, "--resume", str(split)), check=True, capture_output=True)
    a, b = load_file(whole / "weights.safetensors"), load_file(split / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert untimed_metrics(whole) == untimed_metrics(split)


def test_nan_after_a_checkpoint_exits_3_and_leaves_that_checkpoint_as_it_was(mnist_small_dir, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline",
            "--train-subset", "512", "--batch-size", "64", "--out", str(out), "--no-progress", "--no-report"]
    subprocess.run([*base, "--epochs", "1"], check=True, capture_output=True)
    before = (out / "checkpoint.pt").read_bytes()
    # Injected divergence: an absurd learning rate in the run's own config (a resume may not change it).
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "lr": 1e12, "warmup_epochs": 0, "clip_grad_norm": 0}))
    result = subprocess.run([*base, "--resume", str(out), "--epochs", "3"], capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "the training loss became" in result.stderr and "in epoch 2 at step" in result.stderr
    assert (out / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_resume_from_a_truncated_checkpoint_is_one_line_exit_2(mnist_small_dir, tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline",
            "--train-subset", "256", "--batch-size", "64", "--epochs", "1", "--out", str(out), "--no-progress",
            "--no-report"]
    subprocess.run(base, check=True, capture_output=True)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[:len(data) // 3])
    result = subprocess.run([*base, "--resume", str(out), "--epochs", "2"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a valid nin checkpoint" in result.stderr


def test_unwritable_output_folder_is_one_line_exit_2(mnist_small_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder's parent should be")
    result = subprocess.run([sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir),
                             "--offline", "--train-subset", "256", "--epochs", "1", "--out", str(blocker / "run"),
                             "--no-progress"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot write there" in result.stderr
