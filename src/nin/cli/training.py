"""The commands that train and measure: summary, train, eval, reproduce, bench."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nin.errors import NinError


def _input_shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x32x32, got {text!r}") from None
    if min(c, h, w) < 1:
        raise argparse.ArgumentTypeError(f"every size must be positive, got {text!r}")
    return c, h, w


def cmd_summary(args) -> int:
    from nin.models.registry import build_model
    from nin.models.summary import format_summary, summarize

    model = build_model(args.preset)
    # The size of the data set each preset was made for: 28x28 for MNIST, else 32x32.
    size = model.config.input_size
    shape = args.input or (model.config.in_channels, size, size)
    if shape[0] != model.config.in_channels:
        raise NinError(f"--input {'x'.join(map(str, shape))}: {args.preset} takes {model.config.in_channels} channels")
    if model.config.head == "fc" and shape[1:] != (size, size):
        raise NinError(f"--input {'x'.join(map(str, shape))}: {args.preset} has a fully connected head, "
                       f"which takes {size}x{size} images only")
    print(f"{args.preset}, input {'x'.join(map(str, shape))}")
    print(format_summary(summarize(model, shape), sum(p.numel() for p in model.parameters())))
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def _add_train_args(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, made from the field's type and metadata (nin.config)."""
    from nin.config import FIELDS, field_kind

    for name, field in FIELDS.items():
        meta, kind = field.metadata, field_kind(name)
        listed = isinstance(meta["choices"], tuple)   # a function's long list (presets) is left to its help
        help_text = meta["help"] + (f" ({', '.join(meta['choices'])})" if listed else "")
        if kind == "bool":
            p.add_argument(meta["flag"], dest=name, action="store_false" if field.default else "store_true",
                           default=None, help=help_text)
        else:
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, help=help_text,
                           type={"int": int, "float": float, "list[int]": _int_list}.get(kind, str))
    p.add_argument("--config", type=Path, help="JSON file of config fields; flags override it")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (without it, a folder that holds a run is refused)")


def train_config_from_args(args) -> "TrainConfig":
    from nin.config import FIELDS, TrainConfig, load_config_file
    from nin.rundir import CONFIG_FILE

    values: dict = {}
    if args.resume is not None:
        values.update(load_config_file(args.resume / CONFIG_FILE))
        values["out"] = str(args.resume)
    if args.config is not None:
        values.update(load_config_file(args.config))
    values.update({f: getattr(args, f) for f in FIELDS if getattr(args, f) is not None})
    try:
        return TrainConfig.from_dict(values, source="").resolved()
    except NinError as e:
        # The values are checked once merged, so the message names flags; say where else they came from.
        sources = [str(path) for path in (args.config, args.resume and args.resume / CONFIG_FILE) if path]
        if not sources:
            raise
        raise NinError(f"{e} (settings merged from {' and '.join(sources)})") from None


def cmd_train(args) -> int:
    from nin.train.run import fit

    if args.resume is not None and args.overwrite:
        raise NinError("--resume continues a run and --overwrite replaces it: pass one of them")
    cfg = train_config_from_args(args)
    card = fit(cfg, resume=args.resume is not None, overwrite=args.overwrite)
    if not card:   # a torchrun process other than rank 0: rank 0 reports
        return 0
    flip = f"; with flip TTA {card['test_accuracy_flip']:.2f}%" if "test_accuracy_flip" in card else ""
    print(f"test accuracy {card['test_accuracy']:.2f}% (error {card['test_error']:.2f}%{flip}) after {card['epochs']} "
          f"epochs, {card['wall_seconds']:.0f} s; run folder {cfg.out}")
    if args.report:
        from nin.report.page import write_report
        try:
            print(f"report: {write_report(cfg.out)}")
        except NinError as e:   # the run itself is complete and saved; only the page is missing
            print(f"nin train: warning: no report ({e}); retry with `nin report {cfg.out}`", file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from nin.data.registry import dataset_info
    from nin.evaluate import EvalOptions, evaluate_on_test
    from nin.files import atomic_write_json
    from nin.inference import load_trained

    trained = load_trained(args.weights)
    evaluation = evaluate_on_test(trained, args.dataset, args.data_dir, args.offline, args.test_flip, args.split,
                                  EvalOptions(args.device, args.precision, args.batch_size))
    flip = evaluation.flip
    result, names = evaluation.result, dataset_info(evaluation.dataset).class_names
    print(f"{evaluation.dataset} {evaluation.split} set, {len(evaluation.predicted)} images: error {result.error:.2f}% "
          f"(accuracy {result.accuracy:.2f}%)" + (", each the mean of the image and its mirror" if flip else ""))
    print("per-class accuracy:")
    for cls, acc in zip(names, result.per_class_accuracy()):
        print(f"  {cls:<12} {acc:6.2f}%")
    print("confusion matrix (rows: true class, columns: predicted):")
    for row in result.confusion.tolist():
        print("  " + " ".join(f"{v:5d}" for v in row))
    if args.json:
        atomic_write_json(args.json, {
            "dataset": evaluation.dataset, "weights": str(args.weights), "split": evaluation.split,
            "images": len(evaluation.predicted),
            # the keys keep their names for either split; "split" says which
            "test_error": round(result.error, 4), "test_accuracy": round(result.accuracy, 4),
            "test_loss": round(result.loss, 6), "test_flip": flip, "class_names": list(names),
            "per_class_accuracy": [round(a, 4) for a in result.per_class_accuracy()],
            "confusion_matrix": result.confusion.tolist(),
        })
    return 0


def cmd_reproduce(args) -> int:
    from nin.reproduce.experiments import load_experiments
    from nin.reproduce.runner import Plan, reproduce

    experiments = load_experiments(args.experiments_dir)
    if args.list:
        for name, exp in experiments.items():
            print(f"{name:<24} {exp.group:<10} {exp.description}")
        return 0
    chosen = args.experiments or list(experiments)
    unknown = [n for n in chosen if n not in experiments]
    if unknown:
        raise NinError(f"unknown experiment {', '.join(unknown)}: expected some of {', '.join(experiments)} "
                       "(see `nin reproduce --list`)")
    if args.seeds < 1:
        raise NinError(f"--seeds must be at least 1, got {args.seeds}")
    plan = Plan(args.seeds, args.runs_dir, args.data_dir, args.budget_minutes, args.progress)
    print(reproduce(experiments, chosen, plan, args.results))
    print(f"\nwritten: {args.results / 'README.md'}")
    return 0


def cmd_bench(args) -> int:
    from nin.bench import BENCH_DIR, BenchConfig, format_bench, record_name, run_bench
    from nin.models.registry import build_model
    from nin.files import atomic_write_json

    build_model(args.preset)   # an unknown preset fails here, before any measuring
    results = run_bench(BenchConfig(args.preset, args.batch_size, args.rounds, args.steps, device=args.device,
                                    dropout=args.dropout, small_crop_size=args.small_crop_size))
    print(format_bench(results))
    if args.json:
        atomic_write_json(args.json, results)
    if args.record is not None:   # results/bench/PRESET-KIND.json: this machine kind's record, replaced
        path = args.record / BENCH_DIR / record_name(results)
        atomic_write_json(path, results)
        print(f"recorded: {path}")
        _write_speed_table(args.record / BENCH_DIR, args.record.parent / "docs" / "speed.md")
    return 0


def _write_speed_table(records_dir, doc) -> None:
    """docs/speed.md's table again from every record beside the new one, where that file has the block."""
    import json

    from nin.files import atomic_write_text
    from nin.tables import SPEED, speed_table

    records = [json.loads(path.read_text()) for path in sorted(records_dir.glob("*.json"))]
    spliced = SPEED.splice(doc.read_text(), speed_table(records)) if doc.is_file() else None
    if spliced is not None:
        atomic_write_text(doc, spliced)
        print(f"written: {doc}")


def add_parsers(sub) -> None:
    from nin.config import PRECISIONS
    from nin.models.registry import PRESETS

    p = sub.add_parser("summary", help="layer-by-layer shapes, parameters and multiply-accumulates")
    p.add_argument("preset", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--input", type=_input_shape, help="input CxHxW (default 3x32x32, or 1x28x28 for nin-mnist)")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("train", help="train a model; writes a run folder")
    _add_train_args(p)
    p.add_argument("--no-report", dest="report", action="store_false", help="do not write report.html at the end")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="test error, per-class accuracy and confusion matrix of a trained model")
    p.add_argument("weights", type=Path, help="a run folder, a weights.safetensors file, or a shipped model name")
    p.add_argument("--dataset", help="data set to evaluate on (default: the one it was trained on)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the data set files")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--precision", default="auto", choices=PRECISIONS)
    p.add_argument("--device", default="auto")
    p.add_argument("--test-flip", action=argparse.BooleanOptionalAction, default=False,
                   help="average each image's logits with its mirror image's (flip TTA; default: single view, the "
                   "kind of number the paper reports)")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="test, or val: the paper's validation images, for weights trained with --val-split paper")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("reproduce", help="run the paper's experiments (src/nin/experiments/) and write results/README.md")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help="experiment names (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..S-1 per experiment (default 1)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop each run after this many minutes (the table marks it as a short budget)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the data sets (default $NIN_DATA or ./data, then ../shared/data)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/reproduce"), help="where run folders go")
    p.add_argument("--results", type=Path, default=Path("results"), help="where runs.json and README.md go")
    p.add_argument("--experiments-dir", type=Path, default=None,
                   help="folder of experiment files (default: the package's src/nin/experiments/)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.set_defaults(run=cmd_reproduce)

    p = sub.add_parser("bench", help="matmul peak, training and inference speed vs a plain PyTorch version")
    p.add_argument("--preset", default="nin-cifar10")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; each variant keeps its best")
    p.add_argument("--steps", type=int, default=4, help="steps per round")
    p.add_argument("--device", default="auto")
    p.add_argument("--dropout", type=float, default=None,
                   help="a recipe's dropout rate (default: the preset's 0.5); measure what the recipe runs")
    p.add_argument("--small-crop-size", type=int, default=24,
                   help="side of the crops the epoch loop is also measured on (a recipe's --small-crop-epochs)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    p.add_argument("--record", type=Path, nargs="?", const=Path("results"), metavar="RESULTS",
                   help="also keep the figures as this machine kind's record, RESULTS/bench/PRESET-KIND.json "
                        "(default RESULTS: results), from which docs/speed.md's table is made")
    p.set_defaults(run=cmd_bench)
