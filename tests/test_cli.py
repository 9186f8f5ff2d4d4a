"""The command line: help, summaries, and one clear line for every user mistake."""

import json
import subprocess
import sys

import pytest

from nin.cli import main

EXPECTED = json.loads((__import__("pathlib").Path(__file__).parent / "expected_complexity.json").read_text())


def run_nin(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "nin", *args], capture_output=True, text=True, **kwargs)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_help_lists_commands():
    result = run_nin("--help")
    assert result.returncode == 0
    for command in ("summary", "train", "eval"):
        assert command in result.stdout


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_summary_totals(preset, capsys):
    assert main(["summary", preset]) == 0
    out = capsys.readouterr().out
    assert f"{EXPECTED[preset]['params']:,} parameters" in out


def test_summary_cifar10_macs(capsys):
    assert main(["summary", "nin-cifar10"]) == 0
    assert "966,986 parameters, 222.5 M multiply-accumulates per image" in capsys.readouterr().out


def test_summary_other_input_size(capsys):
    assert main(["summary", "nin-cifar10", "--input", "3x64x48"]) == 0
    assert "192x16x12" in capsys.readouterr().out


@pytest.mark.parametrize("argv, pattern", [
    (["summary", "nin-foo"], "unknown preset 'nin-foo'"),
    (["summary", "nin-mnist", "--input", "3x28x28"], "nin-mnist takes 1 channels"),
    (["train", "--preset", "nin-foo", "--offline", "--data-dir", "/nonexistent"], "preset (--preset): 'nin-foo' is not one of nin-cifar10"),
    (["train", "--recipe", "slow"], "recipe (--recipe): 'slow' is not one of paper, fast"),
    (["train", "--momentum", "1.5"], "momentum (--momentum): must be below 1, got 1.5"),
    (["train", "--resume", "/nonexistent/run", "--overwrite"], "pass one of them"),
    (["train", "--dataset", "mnist", "--offline", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist"),
    (["eval", "/nonexistent/run"], "no such run folder or weights file"),
])
def test_user_mistakes_give_one_line_and_exit_2(argv, pattern, capsys):
    assert main(argv) == 2
    line = one_error_line(capsys.readouterr().err)
    assert pattern in line


def test_bad_flag_is_one_line():
    result = run_nin("train", "--bogus")
    assert result.returncode == 2
    assert "nin train: error: unrecognized arguments: --bogus" in one_error_line(result.stderr)


def test_bad_flag_value_is_one_line():
    result = run_nin("train", "--epochs", "many")
    assert result.returncode == 2
    assert "invalid int value: 'many'" in one_error_line(result.stderr)


def test_eval_random_bytes_is_refused(tmp_path, capsys):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(bytes(range(256)) * 10)
    assert main(["eval", str(bad)]) == 2
    assert "not a nin weights file" in one_error_line(capsys.readouterr().err)


def test_config_file_with_unknown_key(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"learning_rate": 0.1}')
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown keys learning_rate" in one_error_line(capsys.readouterr().err)


def test_values_that_do_not_go_together_name_the_settings_file_they_came_from(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"anneal_by_time": true}')   # valid alone; refused without --time-budget-minutes
    assert main(["train", "--dataset", "mnist", "--config", str(cfg)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--anneal-by-time: needs --recipe fast and --time-budget-minutes" in line
    assert line.endswith(f"(settings merged from {cfg})")
    assert main(["train", "--dataset", "mnist", "--anneal-by-time"]) == 2   # from the command line alone
    assert "settings merged from" not in one_error_line(capsys.readouterr().err)


def test_a_reader_that_leaves_early_costs_no_traceback_and_no_work(tmp_path, mnist_dir):
    """`nin eval ... | head -1`: the reader closes the pipe; the command still writes its JSON, quietly."""
    process = subprocess.Popen([sys.executable, "-m", "nin", "eval", "nin-mnist", "--data-dir", str(mnist_dir), "--offline",
                                "--json", str(tmp_path / "e.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()   # gone before the first line: every write to standard output meets a closed pipe
    stderr = process.stderr.read().decode()
    assert process.wait() == 0, stderr
    assert stderr == "" and json.loads((tmp_path / "e.json").read_text())["images"] == 10000
