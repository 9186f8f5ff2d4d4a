"""Every Markdown table the docs carry, each made from its records by a pure function, and the marked
blocks of the files that hold them.

A table sits in its file between two HTML comments (a `Block`). `nin reproduce`, `nin bench --record`
and the tools write it with `Block.splice`; the tests compare `Block.read` with the function's output, so
no number in a table is typed by hand.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from nin.data.registry import dataset_info
from nin.provenance import short_commit
from nin.recipe import RECIPES, Recipe


@dataclass(frozen=True)
class Block:
    """The lines between `begin` and `end` in a file: where one table lives."""
    begin: str
    end: str

    def read(self, text: str) -> str:
        """The table in `text`, stripped (ValueError if the markers are missing)."""
        return text[text.index(self.begin) + len(self.begin):text.index(self.end)].strip()

    def splice(self, text: str, table: str) -> str | None:
        """`text` with the block's lines replaced by `table`; None without both markers in order."""
        begin, end = text.find(self.begin), text.find(self.end)
        if begin < 0 or end < begin:
            return None
        return f"{text[:begin]}{self.begin}\n{table}\n{text[end:]}"


def _marked(what: str, source: str) -> Block:
    return Block(f"<!-- {what} table: {source}; do not edit by hand -->", f"<!-- end of {what} table -->")


RESULTS = _marked("results", "written by `nin reproduce` from results/runs.json")              # README, results/
PRETRAINED = _marked("pretrained", "written by tools/ship_weights.py from src/nin/weights/*.json")  # README
SPEED = _marked("speed", "made from results/bench/*.json by nin.tables.speed_table")            # docs/speed.md
MEMORY = _marked("memory", "made from results/memory-cifar.json by nin.tables.memory_table")    # docs/speed.md
LOCALISATION = _marked("localisation", "made from results/localization.json by nin.tables.localisation_table")
RECIPES_BLOCK = _marked("recipes", "nin.tables.recipes_table()")                                # docs/recipes.md


def summarize(errors: list[float]) -> str:
    """'mean ± sample std (n)' of test errors in percent."""
    if len(errors) == 1:
        return f"{errors[0]:.2f}"
    return f"{statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f} (n={len(errors)})"


def results_table(experiments: dict, records: list[dict], not_run: dict[str, str]) -> str:
    """One row per experiment (name -> nin.reproduce.experiments.Experiment): the paper's error beside ours
    (mean ± std over seeds), or why it was not run."""
    header = ("| experiment | paper row | paper error % | our error %, single view | with flip TTA % | seeds | data | "
              "epochs | wall time | machine | command | commit |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, exp in experiments.items():
        rows = sorted((r for r in records if r["experiment"] == name), key=lambda r: r["seed"])
        paper = f"{exp.paper_error:.2f}" if exp.paper_error is not None else "-"
        if not rows:
            reason = not_run.get(name, "not run yet on this machine")
            lines.append(f"| {name} | {exp.paper_row} | {paper} | not run: {reason} | | | | | | | | |")
        # a row per machine kind where records are kept per kind (time-budget runs), else one for all seeds
        for kind in sorted({r.get("machine_kind", "") for r in rows}):
            lines.append(f"| {name} | {exp.paper_row} | {paper} | "
                         f"{_results_cells(exp, [r for r in rows if r.get('machine_kind', '') == kind])} |")
    return "\n".join(lines)


def _results_cells(exp, rows: list[dict]) -> str:
    # Single view is what the paper reports; a run measured only with flip TTA has no single-view number.
    errors = [r["test_error"] for r in rows if r["test_error"] is not None]
    flips = [r["test_error_flip"] for r in rows if r.get("test_error_flip") is not None]
    # Seeds run with different budgets show them all, in the remark and the wall-time cell alike.
    budget = "/".join(f"{b:g}" for b in sorted({r["budget_minutes"] for r in rows if r.get("budget_minutes") is not None}))
    remarks = []
    if any(r.get("short_budget") for r in rows):
        remarks.append(f"short budget: {budget} min")
    if exp.group == "paper" and exp.paper_error is not None and errors and statistics.mean(errors) > exp.paper_error:
        remarks.append("paper's error not reached")   # a missed target says so in its own row
    ours = (summarize(errors) if errors else "not measured: flip TTA only") + (f" ({'; '.join(remarks)})" if remarks else "")
    if len(errors) < len(rows) and errors:
        ours += f" ({len(rows) - len(errors)} seed(s) measured with flip TTA only)"
    wall = "/".join(f"{r['wall_seconds'] / 60:.0f} min" for r in rows) + (f" (budget {budget} min)" if budget else "")
    commits = sorted({short_commit(r["commit"]) for r in rows})
    return (f"{ours} | {summarize(flips) if flips else ''} | {', '.join(str(r['seed']) for r in rows)} | "
            f"{rows[0]['data']} | {'/'.join(str(r['epochs']) for r in rows)} | {wall} | {rows[0]['machine']} | "
            f"`{rows[0]['command']}` | {', '.join(commits)}")


def _held_out_accuracy(row: dict) -> float:
    """The epoch's accuracy on the held-out split it was evaluated on (validation if the run had one, else test)."""
    return float(row["val_accuracy"] if "val_accuracy" in row else row["test_accuracy"])


def curves_table(experiments: dict, records: list[dict], histories: dict[tuple[str, int], list[dict]],
                 group: str = "comparison") -> str:
    """Training against held-out accuracy every 5 epochs (and at the last) for each run of `group` whose
    per-epoch metrics were kept (histories: (experiment, seed) -> metrics.csv rows); '' if there are none."""
    runs = [(r["experiment"], r["seed"]) for r in records
            if r["experiment"] in experiments and experiments[r["experiment"]].group == group
            and (r["experiment"], r["seed"]) in histories]
    if not runs:
        return ""
    by_epoch = {run: {int(float(row["epoch"])): row for row in histories[run]} for run in runs}
    every_fifth = {e for rows in by_epoch.values() for e in rows if e % 5 == 0}
    columns = sorted(every_fifth | {max(rows) for rows in by_epoch.values()})
    lines = ["| experiment | seed | " + " | ".join(f"epoch {e}" for e in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for run in runs:
        cells = [f"{float(row['train_accuracy']):.1f} / {_held_out_accuracy(row):.1f}" if (row := by_epoch[run].get(e))
                 else "" for e in columns]
        lines.append(f"| {run[0]} | {run[1]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}%"


def _recipe_cell(card: dict) -> str:
    config = card.get("config", {})
    return card["recipe"] + (", augmented" if card.get("augment") else "") + \
        (f", dropout {config['dropout']:g}" if config.get("dropout") is not None else "") + \
        (f", {config['small_crop_epochs']} epochs at {config.get('small_crop_size', 24)} px first"
         if config.get("small_crop_epochs") else "") + \
        (f", cutout {config['cutout']}" if config.get("cutout") else "") + \
        (f", EMA {config['ema_decay']:g}" if config.get("ema_decay") else "")


def pretrained_table(cards: list[dict]) -> str:
    """The README's table of shipped models, made from their cards (src/nin/weights/*.json) alone."""
    lines = ["| name | experiment | data | recipe | epochs | test error, single view | with flip TTA | training time | "
             "size | command |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for card in sorted(cards, key=lambda c: c["name"]):
        experiment = f"`{card['experiment']}`"
        if card.get("superseded_by"):   # the shipping rule's fallback: a later run's weights were not kept
            experiment += f" (until a run of `{card['superseded_by']['experiment']}` replaces it)"
        commit = f" (commit {short_commit(card['commit'])})" if card.get("commit") else ""
        lines.append(f"| {card['name']} | {experiment} | {card.get('data') or dataset_info(card['dataset']).display_name} | "
                     f"{_recipe_cell(card)} | {card['epochs']:g} | {card['test_error']:.2f}% | "
                     f"{_percent(card.get('test_error_flip'))} | {card['train_wall_seconds'] / 60:.0f} min | "
                     f"{card['bytes'] / 1e6:.1f} MB | `{card['command']}`{commit} |")
    return "\n".join(lines)


def speed_table(records: list[dict]) -> str:
    """One row per machine kind of `nin bench --json` records, as docs/speed.md carries them."""
    lines = ["| machine | measured | matmul peak fp32 / bf16 | training step | share of that peak | vs plain fp32 | "
             "inference vs plain | epoch loop / step | on small crops | peak memory |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(records, key=lambda r: r["machine"]):
        lines.append(
            f"| {r['machine']} | {r['date']}, commit {short_commit(r['commit'])}, dropout {r['dropout']} | "
            f"{r['peak_gflops_fp32']:.0f} / {r['peak_gflops_bf16']:.0f} GFLOP/s | "
            f"{r['train_images_per_s']:.0f} img/s, {r['precision']} | **{100 * r['train_mfu']:.1f}%** of {r['mfu_peak']} | "
            f"{r['train_speedup_vs_plain']:.2f}x | {r['infer_speedup_vs_plain']:.2f}x | "
            f"{100 * r['end_to_end_fraction']:.1f}% | {r['small_crop_speedup']:.2f}x at {r['small_crop_size']} px | "
            f"{r['peak_rss_gb']:.2f} GB |")
    return "\n".join(lines)


def memory_table(r: dict) -> str:
    """A benchmarks/train_memory.py record as the Markdown table docs/speed.md carries, beside issue 16's target."""
    rows = [f"| `{run['experiment']}` | {run['cache']} | **{run['peak_memory_gb']:.2f} GB** | under "
            f"{r['target_gb']:g} GB ({'met' if run['peak_memory_gb'] < r['target_gb'] else 'not met'}) |"
            for run in r["runs"]]
    return "\n".join(["| recipe | cache | peak resident memory | target (issue 16) |", "|---|---|---:|---:|", *rows])


LOCATOR_NAMES = {"cam": "NIN class map (CAM)", "saliency": "gradient saliency of the same model",
                 "centred": "centred box of the mean true size"}


def localisation_table(results: dict) -> str:
    """`nin localize`'s results (results/localization.json) as the README and docs/maps.md carry them."""
    n_all = results["locators"]["cam"]["all"]["count"]
    n_right = results["locators"]["cam"]["correctly_classified"]["count"]
    lines = [f"| locator | threshold | IoU >= 0.5 (all {n_all:,}) | mean IoU | "
             f"IoU >= 0.5 (correctly classified, {n_right:,}) |", "|---|---:|---:|---:|---:|"]
    for name in LOCATOR_NAMES:
        r, threshold = results["locators"][name], results["chosen_thresholds"].get(name)
        lines.append(f"| {LOCATOR_NAMES[name]} | {'-' if threshold is None else f'{threshold:g}'} | "
                     f"{100 * r['all']['hit_rate']:.2f}% | {r['all']['mean_iou']:.3f} | "
                     f"{100 * r['correctly_classified']['hit_rate']:.2f}% |")
    true_map = results["diagnosis"]["true_class_map"]
    lines.append(f"| (diagnosis) the true class's map | {results['chosen_thresholds']['cam']:g} | "
                 f"{100 * true_map['hit_rate']:.2f}% | {true_map['mean_iou']:.3f} | |")
    lines.append(f"\n- Classifier on the test canvases: {results['test_accuracy']:.2f}% accuracy (validation "
                 f"{results['validation_accuracy']:.2f}%), after {results['train_seconds']:,.0f} s of training; "
                 f"maps of {results['map_size'][0]}x{results['map_size'][1]} for "
                 f"{results['config']['size']}x{results['config']['size']} canvases; thresholds chosen on "
                 f"{results['config']['val_count']:,} validation canvases.")
    for name in ("cam", "saliency"):
        rates = ", ".join(f"{t}: {100 * rate:.1f}%" for t, rate in results["validation_sweep"][name].items())
        lines.append(f"- Validation hit rate by threshold, {LOCATOR_NAMES[name]}: {rates}.")
    return "\n".join(lines)


def recipes_table() -> str:
    """The recipes (nin.recipe.RECIPES) side by side, field by field, as docs/recipes.md shows them."""
    names = [f.name for f in dataclasses.fields(Recipe) if f.name != "name"]
    lines = ["| field | " + " | ".join(f"`{r.name}`" for r in RECIPES.values()) + " |",
             "|---|" + "---|" * len(RECIPES)]
    lines += [f"| {field} | " + " | ".join(f"{getattr(r, field)}" for r in RECIPES.values()) + " |" for field in names]
    return "\n".join(lines)
