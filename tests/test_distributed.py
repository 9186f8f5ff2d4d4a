"""Training under torchrun with two CPU processes (gloo) on a real MNIST subset."""

import json
import os
import subprocess
import sys

import pytest

from conftest import SMALL_MNIST


@pytest.mark.long
def test_torchrun_two_processes_agree_and_evaluation_counts_each_image_once(mnist_small_dir, tmp_path):
    out = tmp_path / "ddp"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "nin",
            "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline", "--train-subset", "9600",
            "--batch-size", "128", "--epochs", "2", "--checkpoint-every", "25", "--device", "cpu", "--out", str(out),
            "--no-progress", "--no-report"]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((out / "card.json").read_text())
    assert card["processes"] == 2 and card["ranks_identical"] is True
    assert card["test_accuracy"] > 50, card["test_accuracy"]    # 150 steps of the fast recipe learn
    # Rank 0 alone wrote the files: one metrics row per epoch, and one line of results printed.
    assert (out / "metrics.csv").read_text().count("\n") == 3
    assert result.stdout.count("test accuracy") == 1
    # The sharded evaluation counted every test image once: a single process agrees exactly.
    confusion = card["confusion_matrix"]
    assert sum(map(sum, confusion)) == SMALL_MNIST["test"]
    evaluation = subprocess.run([sys.executable, "-m", "nin", "eval", str(out), "--data-dir", str(mnist_small_dir),
                                 "--offline", "--json", str(tmp_path / "e.json")], capture_output=True, text=True)
    assert evaluation.returncode == 0, evaluation.stderr
    single = json.loads((tmp_path / "e.json").read_text())
    assert single["test_accuracy"] == card["test_accuracy"]
    assert single["confusion_matrix"] == confusion


def test_batch_size_must_split_over_processes(mnist_small_dir, tmp_path):
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "nin",
            "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline", "--train-subset", "512",
            "--batch-size", "127", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "x"), "--no-progress"]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0
    assert "does not split evenly over 2 processes" in result.stderr


def test_under_torchrun_nin_exits_without_finalizing_the_interpreter():
    """torch 2.14's DDP leaves gloo worker threads running past destroy_process_group, and one that
    finishes with a collective during interpreter finalization aborts the process (CI, 2026-12-02).
    Under torchrun (WORLD_SIZE > 1) `python -m nin` therefore ends with os._exit, keeping its exit code."""
    probe = ("import atexit, runpy, sys; atexit.register(print, 'finalized'); "
             "sys.argv = ['nin', 'eval', '/nonexistent-run']; runpy.run_module('nin', run_name='__main__')")
    for world, finalized in (("1", True), ("2", False)):
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, "WORLD_SIZE": world})
        assert result.returncode == 2, result.stderr
        assert "no such run folder" in result.stderr    # the error was printed (flushed) before leaving
        assert ("finalized" in result.stdout) is finalized, (world, result.stdout)
