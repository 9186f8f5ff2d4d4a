"""A run folder belongs to one run: no silent overwrite, one process at a time, resumes that keep the result."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nin.errors import NinError
from nin.config import check_resume
from nin.reproduce.curves import minutes_axis, minutes_to_reach, time_to_accuracy
from nin.rundir import RunFolderLock, read_metrics, write_metrics


def train_argv(mnist_small_dir, out, *extra):
    return [sys.executable, "-m", "nin", "train", "--dataset", "mnist", "--data-dir", str(mnist_small_dir), "--offline",
            "--train-subset", "256", "--batch-size", "64", "--epochs", "1", "--out", str(out), "--no-progress",
            "--no-report", *extra]


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def one_line_exit_2(result, *needles):
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


@pytest.fixture(scope="module")
def finished_once(mnist_small_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    subprocess.run(train_argv(mnist_small_dir, out), check=True, capture_output=True)
    return out


@pytest.fixture
def finished(finished_once, tmp_path):
    """A finished run folder of this test's own (a copy: one training serves the module)."""
    return Path(shutil.copytree(finished_once, tmp_path / "run"))


def snapshot(run_dir):
    return {name: (run_dir / name).read_bytes() for name in ("weights.safetensors", "card.json", "config.json")}


def test_a_second_run_into_a_finished_folder_is_refused_and_changes_nothing(mnist_small_dir, finished):
    before = snapshot(finished)
    result = subprocess.run(train_argv(mnist_small_dir, finished, "--seed", "1"), capture_output=True, text=True)
    one_line_exit_2(result, f"{finished}: holds a finished run", "--overwrite", "another --out")
    assert snapshot(finished) == before


def test_overwrite_replaces_the_whole_run(mnist_small_dir, finished):
    before = snapshot(finished)
    (finished / "report.html").write_text("the old run's report")
    result = subprocess.run(train_argv(mnist_small_dir, finished, "--seed", "1", "--overwrite"), capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    after = snapshot(finished)
    assert all(after[name] != before[name] for name in after)   # config, card and weights all from the new run
    assert json.loads(after["config.json"])["seed"] == json.loads(after["card.json"])["seed"] == 1
    assert not (finished / "report.html").exists()               # nothing of the old run is left to mix in


def test_two_concurrent_runs_into_one_folder_one_is_refused(mnist_small_dir, tmp_path, finished):
    # Into a finished folder: both refused, the weights untouched.
    before = snapshot(finished)
    both = [subprocess.Popen(train_argv(mnist_small_dir, finished), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    for process in both:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2 and stderr.count("\n") == 1, stderr
    assert snapshot(finished) == before
    # Into a new folder: the second, started while the first trains, is refused; the first finishes alone.
    out = tmp_path / "new"
    first = subprocess.Popen(train_argv(mnist_small_dir, out, "--epochs", "2", "--train-subset", "2048"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: (out / "config.json").exists())
    second = subprocess.run(train_argv(mnist_small_dir, out), capture_output=True, text=True)
    one_line_exit_2(second, f"{out}: in use by another nin process (pid {first.pid})")
    _, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert json.loads((out / "card.json").read_text())["epochs"] == 2


def test_a_killed_run_leaves_its_folder_unlocked(mnist_small_dir, tmp_path):
    out = tmp_path / "run"
    argv = train_argv(mnist_small_dir, out, "--epochs", "20", "--train-subset", "1024", "--checkpoint-every", "2")
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: (out / "checkpoint.pt").exists())
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = subprocess.run([*argv, "--resume", str(out), "--epochs", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_resume_refuses_changed_results_and_records_a_longer_run(mnist_small_dir, finished):
    result = subprocess.run(train_argv(mnist_small_dir, finished, "--resume", str(finished), "--seed", "1", "--lr", "0.3"),
                            capture_output=True, text=True)
    one_line_exit_2(result, "--resume would change settings that change the result", "lr: 0.2 -> 0.3",
                    "seed: 0 -> 1")
    # Continued on another thread count, as a run moved to another machine: the card says so, since its one
    # `machine` field now names only the second part.
    before = json.loads((finished / "card.json").read_text())["machine"]
    threads = "2" if before.endswith(" 1 thread") else "1"
    longer = subprocess.run(train_argv(mnist_small_dir, finished, "--resume", str(finished), "--epochs", "2"),
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": threads})
    assert longer.returncode == 0, longer.stderr
    card = json.loads((finished / "card.json").read_text())
    assert card["machine"] != before and card["machine"].endswith(f" {threads} thread" + "s" * (threads == "2"))
    assert card["epochs"] == 2 and card["resumes"] == [
        {"at": "epoch 2", "changed": {"epochs": [1, 2], "machine": [before, card["machine"]]}}]
    assert json.loads((finished / "config.json").read_text())["epochs"] == 2


def test_check_resume_allows_only_length_and_location_changes(tmp_path):
    saved = {"epochs": 5, "seed": 0, "dataset": "mnist", "data_dir": "a", "time_budget_minutes": None}
    assert check_resume(saved, {**saved, "epochs": 9, "data_dir": "b", "time_budget_minutes": 30.0}, tmp_path) == {
        "epochs": (5, 9), "data_dir": ("a", "b"), "time_budget_minutes": (None, 30.0)}
    with pytest.raises(NinError, match=r"dataset: 'mnist' -> 'cifar10'; seed: 0 -> 2"):
        check_resume(saved, {**saved, "dataset": "cifar10", "seed": 2}, tmp_path)


def test_the_lock_is_exclusive_between_processes_and_released_on_close(tmp_path):
    lock = RunFolderLock(tmp_path)
    lock.acquire()
    probe = [sys.executable, "-c", "import sys; from nin.rundir import RunFolderLock; "
             "RunFolderLock(sys.argv[1]).acquire()", str(tmp_path)]
    held = subprocess.run(probe, capture_output=True, text=True)
    assert held.returncode != 0 and "in use by another nin process" in held.stderr
    lock.release()
    assert subprocess.run(probe, capture_output=True, text=True).returncode == 0


def test_metrics_gain_a_column_mid_run_when_an_older_run_is_resumed(tmp_path):
    """Rows from before elapsed_seconds existed keep it empty; the curves use it only where it is."""
    rows = [{"epoch": 1, "test_accuracy": 50.0, "epoch_seconds": 60.0},
            {"epoch": 2, "test_accuracy": 60.0, "epoch_seconds": 60.0, "elapsed_seconds": 130.0}]
    write_metrics(tmp_path / "metrics.csv", rows)
    assert (tmp_path / "metrics.csv").read_text().splitlines()[:2] == ["epoch,test_accuracy,epoch_seconds,elapsed_seconds",
                                                                      "1,50.0,60.0,"]
    back = read_metrics(tmp_path / "metrics.csv")
    assert back == [{k: float(v) for k, v in row.items()} for row in rows]
    assert time_to_accuracy(back) == [{"epoch": 1, "minutes": 1.0, "test_accuracy": 50.0},
                                      {"epoch": 2, "minutes": 2.0, "test_accuracy": 60.0, "wall_minutes": 2.17}]
    # one axis for every curve of a figure: the card's minutes only where all of them have those
    points = time_to_accuracy(back)
    assert minutes_axis([points]) == "minutes" and minutes_axis([points[1:]]) == "wall_minutes"
    assert minutes_to_reach(points, 55.0) == 2.0 and minutes_to_reach(points[1:], 55.0, "wall_minutes") == 2.17
