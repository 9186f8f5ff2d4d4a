"""`nin reproduce`: experiment files, the results table, and a short real run."""

import hashlib
import importlib.util
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from nin.config import TrainConfig
from nin.models import PRESETS
from nin.reproduce.experiments import load_experiments
from nin.provenance import REPO, machine_kind, short_commit
from nin.reproduce.results import CARDS_SINCE, CURVES_INTRO, INTRO, kept_histories, load_records, merge
from nin.tables import RESULTS, Block, curves_table, results_table, summarize


def test_every_experiment_file_is_valid_and_uses_a_real_preset():
    experiments = load_experiments()
    for name, exp in experiments.items():
        cfg = TrainConfig.from_dict(exp.train).resolved()
        assert cfg.preset in PRESETS, name
        if exp.group == "paper":
            assert exp.paper_error is not None, name
    # Every row of the paper's results: the five data sets, Table 5, the CNN comparison, the ablation.
    rows = {exp.paper_error for exp in experiments.values() if exp.group == "paper"}
    assert {10.41, 8.81, 35.68, 2.35, 0.47, 11.59, 10.88, 17.56, 15.99, 16.46, 14.51} <= rows


def test_summarize_mean_and_spread():
    assert summarize([0.5]) == "0.50"
    assert summarize([1.0, 2.0, 3.0]) == "2.00 ± 1.00 (n=3)"


def test_table_rows_not_run_and_short_budget():
    experiments = load_experiments()
    record = {"experiment": "mnist-paper", "seed": 0, "test_error": 3.25, "epochs": 0.4, "wall_seconds": 120,
              "short_budget": True, "budget_minutes": 2, "data": "MNIST", "machine": "cpu", "commit": "abcdef123456",
              "command": "nin reproduce mnist-paper --seeds 1 --budget-minutes 2"}
    table = results_table(experiments, [record], {"svhn": "svhn data not found"})
    row = next(line for line in table.splitlines() if line.startswith("| mnist-paper "))
    assert "| 0.47 | 3.25 (short budget: 2 min; paper's error not reached) |" in row and "abcdef12" in row
    assert "| 2 min (budget 2 min) |" in row
    beaten = results_table(experiments, [{**record, "test_error": 0.40, "short_budget": False}], {})
    row = next(line for line in beaten.splitlines() if line.startswith("| mnist-paper "))
    assert "| 0.47 | 0.40 |" in row
    assert "| svhn | SVHN, NIN | 2.35 | not run: svhn data not found |" in table
    mixed = results_table(experiments, [record, {**record, "seed": 1, "budget_minutes": 3, "wall_seconds": 180}], {})
    row = next(line for line in mixed.splitlines() if line.startswith("| mnist-paper "))
    assert "(short budget: 2/3 min; paper's error not reached)" in row and "| 2 min/3 min (budget 2/3 min) |" in row


def test_every_table_shortens_a_commit_the_same_way():
    assert short_commit("abcdef1234567890") == "abcdef12"
    assert short_commit("abcdef1234567890+uncommitted") == "abcdef12 (uncommitted changes)"
    assert short_commit("unknown") == "unknown"


def test_learning_curves_show_every_fifth_and_the_last_epoch_of_comparison_runs():
    experiments = load_experiments()
    rows = [{"epoch": str(e), "train_accuracy": str(10.0 * e), "test_accuracy": str(5.0 * e)} for e in range(1, 8)]
    records = [{"experiment": "cifar10-10k-fc", "seed": 1}, {"experiment": "cifar10-10k-gap", "seed": 0},
               {"experiment": "cifar10-aug", "seed": 0}]   # the last is not a comparison: left out
    histories = {("cifar10-10k-fc", 1): rows, ("cifar10-aug", 0): rows,
                 ("cifar10-10k-gap", 0): [{"epoch": "5", "train_accuracy": "90", "val_accuracy": "70",
                                           "test_accuracy": "0"}]}
    assert curves_table(experiments, records, histories).splitlines() == [
        "| experiment | seed | epoch 5 | epoch 7 |", "|---|---|---:|---:|",
        "| cifar10-10k-fc | 1 | 50.0 / 25.0 | 70.0 / 35.0 |",
        "| cifar10-10k-gap | 0 | 90.0 / 70.0 |  |"]       # validation accuracy where the run had a split
    assert curves_table(experiments, records, {}) == ""


def test_merge_replaces_same_experiment_and_seed():
    old = [{"experiment": "a", "seed": 0, "v": 1}, {"experiment": "a", "seed": 1, "v": 1}]
    assert merge(old, [{"experiment": "a", "seed": 0, "v": 2}]) == [{"experiment": "a", "seed": 0, "v": 2},
                                                                    {"experiment": "a", "seed": 1, "v": 1}]


def test_an_experiment_marked_per_machine_kind_keeps_one_record_per_kind():
    fast = {"experiment": "a", "seed": 0, "machine_kind": "intel-xeon", "v": 1}
    slow = {"experiment": "a", "seed": 0, "machine_kind": "amd-epyc-avx2", "v": 1}
    assert merge([fast], [slow]) == [slow, fast]                       # another kind: kept beside
    assert merge([fast, slow], [{**slow, "v": 2}]) == [{**slow, "v": 2}, fast]   # the same kind: replaced
    experiments = load_experiments()
    for record in load_records(REPO / "results"):
        per_kind = record["experiment"] in experiments and experiments[record["experiment"]].per_machine_kind
        assert ("machine_kind" in record) == per_kind, record["experiment"]
        assert record.get("machine_kind", machine_kind(record["machine"])) == machine_kind(record["machine"])
    rows = results_table({"a": SimpleNamespace(paper_row="-", paper_error=None, group="ours")},
                         [{**r, "test_error": 9.0, "wall_seconds": 60, "epochs": 3, "data": "d", "machine": r["machine_kind"],
                           "command": "c", "commit": "0" * 40} for r in (fast, slow)], {}).splitlines()[2:]
    assert [row.split(" | ")[9] for row in rows] == ["amd-epyc-avx2", "intel-xeon"]   # a row each, not a mean


def test_a_block_splices_and_reads_only_its_marked_lines():
    block = Block("<!-- a -->", "<!-- end of a -->")
    text = f"intro\n{block.begin}\nold | table\n{block.end}\noutro\n"
    assert block.splice(text, "new | table") == f"intro\n{block.begin}\nnew | table\n{block.end}\noutro\n"
    assert block.read(block.splice(text, "new | table")) == "new | table"
    assert block.splice("no markers here", "new") is None
    assert block.splice(f"{block.end}\n{block.begin}", "new") is None   # markers out of order: leave the file alone
    with pytest.raises(ValueError):
        block.read("no markers here")


def test_committed_tables_match_the_committed_records():
    """results/README.md and the README's block are exactly what `nin reproduce` writes from runs.json and the
    cards (no hand edits, no row missing or left over). Only the reasons of rows not run come from the committed
    table: they name what this machine's data folders hold."""
    experiments, records = load_experiments(), load_records(REPO / "results")
    assert records, "results/runs.json is empty"
    readme = (REPO / "README.md").read_text()
    block = RESULTS.read(readme)
    not_run = {cells[1].strip(): cells[4].strip().removeprefix("not run: ")
               for cells in (line.split("|") for line in block.splitlines()) if "not run: " in cells[4]}
    assert block == results_table(experiments, records, not_run)
    curves = curves_table(experiments, records, kept_histories(REPO / "results", records))
    # results/README.md: the introduction, the same table, the curves, then results/notes.md as it is now
    assert (REPO / "results" / "README.md").read_text() == \
        f"{INTRO}\n{block}\n\n{CURVES_INTRO}\n{curves}\n\n{(REPO / 'results' / 'notes.md').read_text()}"


def test_every_recent_record_matches_its_committed_card():
    """A record's numbers are its card's: the card is committed beside runs.json with its sha256."""
    for record in load_records(REPO / "results"):
        if record["date"] < CARDS_SINCE:
            assert "card" not in record or (REPO / "results" / record["card"]).is_file()
            continue
        path = REPO / "results" / record["card"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["card_sha256"], path
        card = json.loads(path.read_text())
        assert (record["epochs"], record["wall_seconds"], record["commit"]) == \
            (card["epochs"], card["wall_seconds"], card["commit"]), path
        if card.get("test_flip") and "test_error_flip" not in card:
            # A card from before single view: its test_error is flip TTA. The record's single view, if any, is
            # the shipped file of the same weights measured again (tests/test_shipped_weights.py ties the two).
            assert record["test_error_flip"] == card["test_error"], path
            assert record["test_error"] is None or "shipped" in record["test_error_from"], path
        else:
            assert (record["test_error"], record.get("test_error_flip")) == \
                (card["test_error"], card.get("test_error_flip")), path


def test_every_time_to_accuracy_figure_is_made_from_the_kept_cards():
    """results/time-to-accuracy*.json, recomputed by tools/time_to_accuracy.py from runs.json and the cards."""
    spec = importlib.util.spec_from_file_location("time_to_accuracy", REPO / "tools" / "time_to_accuracy.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    figures = sorted((REPO / "results").glob("time-to-accuracy*.json"))
    assert figures
    readme = (REPO / "README.md").read_text()
    for path in figures:
        figure = json.loads(path.read_text())
        again = tool.build([run["experiment"] for run in figure["runs"]], figure["target_experiments"],
                           figure["budget_minutes"])
        assert again == figure, path
        assert path.with_suffix(".png").is_file() and f"results/{path.stem}.png" in readme, path


def test_reproduce_help():
    result = subprocess.run([sys.executable, "-m", "nin", "reproduce", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--budget-minutes" in result.stdout and "--seeds" in result.stdout


def test_unknown_experiment_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nin", "reproduce", "no-such", "--results", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_reproduce_mnist_paper_short_budget_end_to_end(mnist_dir, tmp_path):
    argv = [sys.executable, "-m", "nin", "reproduce", "mnist-paper", "svhn", "--budget-minutes", "0.1",
            "--data-dir", str(mnist_dir.parent), "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    readme = (tmp_path / "res" / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| mnist-paper "))
    assert "short budget: 0.1 min" in row and "MNIST (official pixels)" in row
    assert "| svhn | SVHN, NIN | 2.35 | not run: svhn data not found" in readme
    (record,) = json.loads((tmp_path / "res" / "runs.json").read_text())
    card = json.loads((tmp_path / "runs" / "mnist-paper" / "seed-0" / "card.json").read_text())
    assert record["test_error"] == card["test_error"] and card["stopped_by_time_budget"] is True
    assert 0.2 < card["peak_memory_gb"] < 8   # torch alone takes ~0.3 GB; MNIST training well under 8
    kept = tmp_path / "res" / record["card"]   # the card travels with the results, checked by its sha256
    assert record["card"] == "cards/mnist-paper/seed-0/card.json" and json.loads(kept.read_text()) == card
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == record["card_sha256"]
    assert (kept.parent / "metrics.csv").read_text() == (tmp_path / "runs" / "mnist-paper" / "seed-0" / "metrics.csv").read_text()
    assert 0 < record["epochs"] < 1 and record["date"] == card["finished"]
    # A second call finds the finished run and reuses it, keeping the day the run finished.
    card_path = tmp_path / "runs" / "mnist-paper" / "seed-0" / "card.json"
    card_path.write_text(json.dumps({**card, "finished": "2020-01-02"}))
    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 0 and "reusing it" in again.stdout
    (reused,) = json.loads((tmp_path / "res" / "runs.json").read_text())
    assert reused["date"] == "2020-01-02" and reused["test_error"] == record["test_error"]


def test_a_recipe_annealed_over_its_budget_keeps_it_unless_one_is_given(tmp_path):
    from nin.reproduce.experiments import Experiment
    from nin.reproduce.runner import Plan, run_config

    exp = Experiment("timed", "", "ours", "-", None, {"dataset": "cifar10", "recipe": "fast", "epochs": 200,
                                                       "anneal_by_time": True, "time_budget_minutes": 150})
    assert run_config(exp, 0, Plan(runs_dir=tmp_path), tmp_path).time_budget_minutes == 150
    assert run_config(exp, 0, Plan(runs_dir=tmp_path, budget_minutes=20), tmp_path).time_budget_minutes == 20


def test_make_run_trains_the_experiment_whose_record_the_readme_quotes():
    """`make run`'s flags and the experiment fashion-mnist-make-run give the same settings."""
    import re
    import shlex

    from nin.cli import build_parser
    from nin.cli.training import train_config_from_args
    from nin.config import LOCATION_FIELDS
    from nin.reproduce.runner import Plan, run_config

    makefile = (REPO / "Makefile").read_text()
    defaults = dict(re.findall(r"^(\w+) \?= (.+)$", makefile, re.M))
    (line,) = [line for line in makefile.splitlines() if line.startswith("\t$(BIN)/nin train")]
    argv = shlex.split(re.sub(r"\$\((\w+)\)", lambda m: defaults.get(m.group(1), m.group(0)), line))
    made = train_config_from_args(build_parser().parse_args(argv[1:])).to_dict()
    exp = load_experiments()["fashion-mnist-make-run"]
    recorded = run_config(exp, 0, Plan(), REPO).to_dict()
    differ = {k: (made[k], recorded[k]) for k in made if k not in LOCATION_FIELDS and made[k] != recorded[k]}
    assert not differ, differ
