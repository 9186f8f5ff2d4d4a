"""The benchmark's comparison model and its JSON contract (speed itself is measured by `nin bench`, not here)."""

import json
import subprocess
import sys

import pytest
import torch

from nin.bench import BENCH_DIR, matmul_peak, plain_model, record_name
from nin.tables import MEMORY, SPEED, memory_table, speed_table
from nin.models import build_model
from nin.provenance import REPO, cpu_has_bf16, machine, machine_kind
from nin.train.device import autocast


@pytest.mark.skipif(torch.cuda.is_available(), reason="names the GPU instead")
def test_machine_names_the_cpus_vector_instructions_and_bf16():
    # Two machines here both call themselves "AMD EPYC": one with AVX-512 BF16, one with AVX2 only.
    expected = torch.backends.cpu.get_cpu_capability() + (" with bf16" if cpu_has_bf16() else "")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert machine().endswith(f"({expected}), 1 thread")     # not "1 threads", as the one-thread trials said
        torch.set_num_threads(2)
        assert machine().endswith(f"({expected}), 2 threads")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["nin-cifar10", "nin-mnist"])
def test_plain_model_is_the_same_network(name):
    model = build_model(name).eval()
    plain = plain_model(model).eval()
    c, size = model.config.in_channels, model.config.input_size
    x = torch.randn(4, c, size, size)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_fast_path_matches_plain_within_bf16_tolerance():
    model = build_model("nin-cifar10").eval()
    plain = plain_model(model).eval()
    fast = model.to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        expected = plain(x)
        with autocast(torch.device("cpu"), True):
            got = fast(x.contiguous(memory_format=torch.channels_last)).float()
    # bf16 keeps 8 bits of mantissa: errors of a few parts in a hundred of the logits' scale.
    assert (got - expected).abs().max() <= 0.03 * expected.abs().max() + 1e-3


def test_matmul_peak_is_in_gflops_of_this_cpu():
    # 2 x 256^3 FLOPs a product: a 2-core CPU does 1 to 10,000 GFLOP/s; a wrong unit (FLOP/s, TFLOP/s) or a
    # FLOP count of n^2 lands orders of magnitude outside that.
    assert 1 < matmul_peak(torch.float32, size=256, repeats=2) < 10_000


def test_bench_json_has_the_promised_keys(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "nin", "bench", "--preset", "nin-mnist", "--batch-size", "32",
                             "--rounds", "2", "--steps", "2", "--dropout", "0.25", "--json", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["dropout"] == 0.25   # measured with the recipe's dropout, not the preset's
    for key in ("train_speedup_vs_plain", "infer_speedup_vs_plain", "small_crop_speedup"):
        assert figures[key] > 0, key
    # The figures hold together: the share of the peak is the step's GFLOP/s over that peak, no step beats the
    # matmul peak it is measured against, and the epoch loop cannot outrun the pure step it wraps (two rounds
    # of two steps each are noisy: 20% allowed).
    peak = figures[f"peak_gflops_{figures['mfu_peak']}"]
    assert figures["train_mfu"] == pytest.approx(figures["train_gflops"] / peak, rel=0.01, abs=1e-3)
    assert 0 < figures["train_mfu"] <= 1
    assert 0 < figures["end_to_end_fraction"] <= 1.2
    assert 0.1 < figures["peak_rss_gb"] < 24   # this machine's memory
    assert "train step (nin)" in result.stdout and "peak resident memory" in result.stdout
    assert figures["small_crop_size"] == 24 and "on 24 x 24 crops" in result.stdout
    assert figures["machine"] and len(figures["commit"]) >= 7 and figures["date"][:2] == "20"   # provenance


def test_bench_unknown_preset_is_one_line():
    result = subprocess.run([sys.executable, "-m", "nin", "bench", "--preset", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_the_speed_table_in_the_docs_is_made_from_one_record_per_machine_kind():
    records = {path.name: json.loads(path.read_text()) for path in (REPO / "results" / BENCH_DIR).glob("*.json")}
    assert records
    assert all(record_name(record) == name for name, record in records.items())   # one file per preset and kind
    text = (REPO / "docs" / "speed.md").read_text()
    block = SPEED.read(text)
    assert block == speed_table(list(records.values()))
    assert len(block.splitlines()) == 2 + len(records)   # a header, a rule, a row each
    assert machine_kind("AMD EPYC (AVX2), 2 threads") == "amd-epyc-avx2" != machine_kind("AMD EPYC (AVX512 with bf16), 1 thread")
    assert machine_kind("Intel(R) Xeon(R) Processor, 2 threads") == "intel-xeon"


def test_the_memory_table_in_the_docs_is_made_from_the_memory_record():
    record = json.loads((REPO / "results" / "memory-cifar.json").read_text())
    text = (REPO / "docs" / "speed.md").read_text()
    assert MEMORY.read(text) == memory_table(record)
    assert {run["experiment"] for run in record["runs"]} == {"cifar10-aug", "cifar100"}
    over = {**record, "runs": [{**record["runs"][0], "peak_memory_gb": 4.5}]}
    assert "(not met)" in memory_table(over)


def test_step_profile_runs_the_loops_own_step():
    """benchmarks/step_profile.py profiles nin.train.loop.training_step: its report names the step's ops."""
    script = REPO / "benchmarks" / "step_profile.py"
    result = subprocess.run([sys.executable, str(script), "--size", "8", "--steps", "1", "--rows", "500"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ms a step" in result.stdout and "GB/s read + written" in result.stdout
    # A whole step: the backward pass, the gradient clipping's norm and the optimizer's update.
    assert all(op in result.stdout for op in ("aten::convolution_backward", "aten::linalg_vector_norm",
                                              "Optimizer.step#SGD.step"))
