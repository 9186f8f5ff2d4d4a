"""The prepared device scripts (benchmarks/gpu_*.sh): their whole path, run on the CPU on a tiny budget."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from nin.provenance import REPO


def dry_run(script: str, work: Path, **env) -> subprocess.CompletedProcess:
    """The dry run of benchmarks/SCRIPT, required to finish."""
    result = run_script(script, work, **env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "total:" in result.stdout
    return result


def run_script(script: str, work: Path, **env) -> subprocess.CompletedProcess:
    """`bash benchmarks/SCRIPT --dry-run` with python3 this venv's, as on the device machine it is the
    image's (the scripts install nothing), and `env` added to the environment."""
    env = {**os.environ, "NIN_GPU_WORK": str(work), "OUT": str(work / "out"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **env}
    return subprocess.run(["bash", str(REPO / "benchmarks" / script), "--dry-run"], capture_output=True, text=True,
                          env=env)


@pytest.mark.long
def test_gpu_check_dry_run_completes_on_the_cpu(tmp_path):
    """gpu_check.sh: setup, data, train, table."""
    result = dry_run("gpu_check.sh", tmp_path)
    table = result.stdout[result.stdout.index("epoch  img/s  epoch_s  test_acc"):].splitlines()
    epochs = [line.split() for line in table[1:] if line[:1].isdigit()]
    assert [row[0] for row in epochs] == ["1", "2"]
    # The table is the run's own record, not numbers of the script's: each row is metrics.csv's epoch, and the
    # last epoch's test accuracy is the card's.
    with (tmp_path / "out" / "gpu-check" / "metrics.csv").open() as f:
        metrics = list(csv.DictReader(f))
    assert epochs == [[r["epoch"], r["images_per_second"], r["epoch_seconds"], r["test_accuracy"]] for r in metrics]
    assert all(float(row[1]) > 0 for row in epochs)
    # The dry run evaluated the first 1,000 test images only, each once per epoch.
    card = json.loads((tmp_path / "out" / "gpu-check" / "card.json").read_text())
    assert sum(map(sum, card["confusion_matrix"])) == 1000
    assert float(epochs[-1][3]) == card["test_accuracy"]


@pytest.mark.long
def test_gpu_paper_rows_dry_run_records_the_three_rows(tmp_path):
    """gpu_paper_rows.sh: both packs, the three paper-recipe rows at once, one record of them in $OUT."""
    # A call of 360 s: the rows train until 100 s before its end, from the script's start.
    dry_run("gpu_paper_rows.sh", tmp_path, NIN_GPU_CALL_SECONDS="360")
    with tarfile.open(tmp_path / "out" / "paper-rows.tar.gz") as archive:
        archive.extractall(tmp_path / "rows", filter="data")
    records = json.loads((tmp_path / "rows" / "runs.json").read_text())
    assert sorted(r["experiment"] for r in records) == [
        "cifar10-aug-paper-recipe", "cifar10-paper-recipe", "cifar100-paper-recipe"]
    for record in records:
        assert 0 < record["budget_minutes"] <= (360 - 100) / 60   # what was left after the data
        card = json.loads((tmp_path / "rows" / record["card"]).read_text())
        assert card["recipe"] == "paper" and card["epochs"] == 1
        assert sum(map(sum, card["confusion_matrix"])) == 1000   # the dry run's first 1,000 test images
    table = (tmp_path / "rows" / "README.md").read_text()
    assert "| cifar100-paper-recipe |" in table and "| mnist-paper |" not in table   # these rows only


def test_gpu_paper_rows_refuses_a_call_length_too_short_to_train_or_not_in_seconds(tmp_path):
    result = run_script("gpu_paper_rows.sh", tmp_path, NIN_GPU_CALL_SECONDS="150")
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert "NIN_GPU_CALL_SECONDS=150 leaves 50 s to train" in line
    result = run_script("gpu_paper_rows.sh", tmp_path, NIN_GPU_CALL_SECONDS="9m")
    assert result.returncode == 2 and "NIN_GPU_CALL_SECONDS=9m: expected" in result.stderr


def test_data_parts_hold_each_pack_file_once_within_the_part_size(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_data_parts", REPO / "benchmarks" / "gpu_data_parts.py")
    parts_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parts_module)
    pack = parts_module.SHARED / "data" / "cifar10"
    part_bytes = 20 * 2**20
    parts = parts_module.lay_out(["cifar10"], tmp_path / "gpu-data", part_bytes)
    assert len(parts) > 1 and (parts[0] / "make_cifar_batches.py").is_file()
    laid_out = sorted(path.name for part in parts for path in (part / "cifar10").iterdir())
    assert laid_out == sorted(path.name for path in pack.iterdir())
    assert all(sum(f.stat().st_size for f in (part / "cifar10").iterdir()) <= part_bytes for part in parts)
