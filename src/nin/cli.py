"""`nin`: the command line. A thin layer over the library; all checks end in NinError (exit 2)."""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from nin.errors import NinError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (plus exit code 2), not a usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _input_shape(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CxHxW such as 3x32x32, got {text!r}") from None
    if min(c, h, w) < 1:
        raise argparse.ArgumentTypeError(f"every size must be positive, got {text!r}")
    return c, h, w


# ---------------------------------------------------------------- summary

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


# ---------------------------------------------------------------- train

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


# ---------------------------------------------------------------- maps, predict, report, export, localize

def _load_images(paths: list[Path], trained, native_size: bool) -> tuple[list, list[Path]]:
    """Each readable image as a uint8 tensor (1, C, H, W); one error line per unreadable file."""
    from nin.inference import read_images

    loaded, failed = read_images(paths, trained, native_size)
    for _, error in failed:
        print(f"error: {error}", file=sys.stderr)
    return loaded, [path for path, _ in failed]


def cmd_predict(args) -> int:
    import torch

    from nin.inference import load_trained, model_inputs, top_k
    from nin.train.loop import forward_views

    trained = load_trained(args.checkpoint)
    loaded, failed = _load_images(args.images, trained, args.native_size)
    names = trained.class_names
    results = []
    for path, image in loaded:   # one at a time: sizes may differ with --native-size
        with torch.no_grad():   # as the weights were measured: with their flip averaging, if any
            logits = forward_views(trained.model, model_inputs(trained, image), trained.test_flip)
            probs, classes = top_k(logits, args.top_k)
        ranked = [(names[c], float(p)) for c, p in zip(classes[0], probs[0])]
        results.append({"file": str(path), "top": [{"class": n, "probability": round(p, 6)} for n, p in ranked]})
        print(f"{path}: " + ", ".join(f"{n} {100 * p:.1f}%" for n, p in ranked))
    if args.json:
        from nin.files import atomic_write_json
        atomic_write_json(args.json, {"predictions": results, "failed": [str(p) for p in failed]})
    return 1 if failed else 0


def cmd_maps(args) -> int:
    from nin.inference import load_trained
    from nin.maps.figure import save_figure

    trained = load_trained(args.checkpoint)
    if args.images:
        figure, count, failed = _photo_maps_figure(args, trained)
    else:
        figure, count, failed = _test_maps_figure(args, trained), args.samples, []
    save_figure(figure, args.out)
    print(f"{count} images -> {args.out}")
    return 1 if failed else 0


def _photo_maps_figure(args, trained):
    """Each image file's top classes, their maps laid over the photo at its own resolution."""
    from nin.inference import input_size
    from nin.maps.figure import render_photos
    from nin.maps.photo import PHOTO_TOP_K, explain_photo

    for flag, used in (("--top-fraction", args.top_fraction is not None), ("--boxes", args.boxes != 1)):
        if used:
            raise NinError(f"{flag}: for the grids of test images (no IMAGE); over a photo each map is drawn whole, "
                           "with the predicted class's box")
    input_size(trained, args.native_size)   # refused here, once, for models that take one size only
    photos, failed = [], []
    for path in args.images:
        try:
            photos.append((path.name, explain_photo(trained, path, args.top_k or PHOTO_TOP_K, args.threshold,
                                                    args.native_size)))
        except NinError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(path)
    if not photos:
        raise NinError("none of the images could be read")
    return render_photos(photos), len(photos), failed


def _test_maps_figure(args, trained):
    """--samples random test images of the data set, each with its class maps beside it (the paper's Figure 4)."""
    import torch

    from nin.data.sources import load_raw_test
    from nin.inference import meta_dataset
    from nin.maps.explain import explain
    from nin.maps.figure import render_rows

    name = meta_dataset(trained.meta, args.dataset)
    test = load_raw_test(name, args.data_dir, args.offline)
    if not 0 < args.samples <= len(test.labels):
        raise NinError(f"--samples {args.samples}: expected 1 to {len(test.labels)}")
    index = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(args.seed))[:args.samples]
    rows = explain(trained, test.images[index], test.labels[index].tolist(), args.top_k, args.top_fraction,
                   args.boxes, args.threshold, [f"test #{i}\n" for i in index.tolist()])
    return render_rows(rows, trained.class_names, args.top_fraction)


def cmd_report(args) -> int:
    from nin.report.page import write_report

    print(write_report(args.run_dir))
    return 0


def cmd_export(args) -> int:
    from nin.export import export_onnx, onnx_parity
    from nin.inference import load_trained

    trained = load_trained(args.checkpoint)
    export_onnx(trained, args.onnx)
    size = trained.image_size
    shapes = [(1, size, size), (3, size + 13, size + 7) if trained.model.has_class_maps else (3, size, size)]
    diffs = onnx_parity(trained, args.onnx, shapes)
    for (b, h, w), diff in zip(shapes, diffs):
        print(f"onnxruntime vs PyTorch, input {b}x{trained.model.config.in_channels}x{h}x{w}: "
              f"max abs difference {diff:.2e}")
    print(f"wrote {args.onnx} (dynamic batch, height and width; input 'images', output 'logits')")
    if max(diffs) > args.tolerance:
        raise NinError(f"{args.onnx}: the ONNX model differs from PyTorch by {max(diffs):.2e} > {args.tolerance}")
    return 0


def cmd_view(args) -> int:
    from nin.inference import load_trained, shipped_names
    from nin.view.server import Viewer, serve

    names = args.model or shipped_names()
    for name in names:
        load_trained(name)   # a missing or tampered model is one line now, not an error on the page later
    viewer = Viewer({str(name): str(name) for name in names}, args.data_dir)
    shown = "localhost" if args.host == "127.0.0.1" else args.host

    def ready(server):
        print(f"nin view: http://{shown}:{server.server_address[1]}/ ({len(names)} models; Ctrl-C stops)", flush=True)

    try:
        serve(viewer, args.host, args.port, ready)
    except OSError as e:
        raise NinError(f"--host {args.host} --port {args.port}: cannot listen there ({e.strerror}); choose another "
                       "--port") from None
    except KeyboardInterrupt:
        pass
    return 0


def cmd_localize(args) -> int:
    from nin.localization.benchmark import THRESHOLDS, LocalizeConfig, format_results, run_benchmark
    from nin.files import atomic_write_json

    cfg = LocalizeConfig(data_dir=args.data_dir, offline=args.offline, train_count=args.train_count,
                         val_count=args.val_count, test_count=args.test_count, size=args.size, clutter=args.clutter,
                         epochs=args.epochs, thresholds=tuple(args.thresholds or THRESHOLDS),
                         init_weights=None if args.from_scratch else args.init_weights,
                         seed=args.seed, progress=args.progress)
    results = run_benchmark(cfg)
    print(format_results(results))
    if args.json:
        atomic_write_json(args.json, results)
    return 0


# ---------------------------------------------------------------- eval

def cmd_eval(args) -> int:
    from nin.data.registry import dataset_info
    from nin.evaluate import evaluate_on_test
    from nin.files import atomic_write_json
    from nin.inference import load_trained

    trained = load_trained(args.checkpoint)
    evaluation = evaluate_on_test(trained, args.dataset, args.data_dir, args.offline, args.device, args.precision,
                                  args.batch_size, args.test_flip, args.split)
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
            "dataset": evaluation.dataset, "checkpoint": str(args.checkpoint), "split": evaluation.split,
            "images": len(evaluation.predicted),
            # the keys keep their names for either split; "split" says which
            "test_error": round(result.error, 4), "test_accuracy": round(result.accuracy, 4),
            "test_loss": round(result.loss, 6), "test_flip": flip, "class_names": list(names),
            "per_class_accuracy": [round(a, 4) for a in result.per_class_accuracy()],
            "confusion_matrix": result.confusion.tolist(),
        })
    return 0


# ---------------------------------------------------------------- reproduce

def cmd_reproduce(args) -> int:
    from nin.reproduce.experiments import load_experiments
    from nin.reproduce.runner import reproduce

    experiments = load_experiments(args.configs)
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
    print(reproduce(experiments, chosen, args.seeds, args.runs_dir, args.data_dir, args.budget_minutes, args.results,
                    args.progress))
    print(f"\nwritten: {args.results / 'README.md'}")
    return 0


# ---------------------------------------------------------------- bench

def cmd_bench(args) -> int:
    from nin.bench import BenchConfig, format_bench, run_bench
    from nin.models.registry import build_model
    from nin.files import atomic_write_json

    build_model(args.preset)   # an unknown preset fails here, before any measuring
    results = run_bench(BenchConfig(args.preset, args.batch_size, args.rounds, args.steps, device=args.device,
                                    dropout=args.dropout, small_crop_size=args.small_crop_size))
    print(format_bench(results))
    if args.json:
        atomic_write_json(args.json, results)
    return 0


# ---------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    from nin.models.registry import PRESETS

    parser = _Parser(prog="nin", description="Network In Network (Lin, Chen & Yan, 2013): train, evaluate, inspect.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("summary", help="layer-by-layer shapes, parameters and multiply-accumulates")
    p.add_argument("preset", help=f"one of {', '.join(PRESETS)}")
    p.add_argument("--input", type=_input_shape, help="input CxHxW (default 3x32x32, or 1x28x28 for nin-mnist)")
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("train", help="train a model; writes a run folder")
    _add_train_args(p)
    p.add_argument("--no-report", dest="report", action="store_false", help="do not write report.html at the end")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="test error, per-class accuracy and confusion matrix of a trained model")
    p.add_argument("checkpoint", type=Path, help="a run folder or a weights.safetensors file")
    p.add_argument("--dataset", help="data set to evaluate on (default: the one it was trained on)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the data set files")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--device", default="auto")
    p.add_argument("--test-flip", action=argparse.BooleanOptionalAction, default=False,
                   help="average each image's logits with its mirror image's (flip TTA; default: single view, the "
                   "kind of number the paper reports)")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="test, or val: the paper's validation images, for weights trained with --val-split paper")
    p.set_defaults(run=cmd_eval)

    def add_image_args(p):
        p.add_argument("checkpoint", type=Path, help=checkpoint_help)
        p.add_argument("images", type=Path, nargs="*", metavar="IMAGE", help="image files (any size; grey or colour)")
        p.add_argument("--native-size", action="store_true",
                       help="feed images at their own size instead of resizing to the training size (GAP allows it)")

    checkpoint_help = "a run folder, a weights.safetensors file, or a shipped model name (nin-mnist, ...)"
    p = sub.add_parser("predict", help="top-k classes of image files")
    add_image_args(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the predictions as JSON here")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("maps", help="figure of class confidence maps, with boxes located from them")
    add_image_args(p)
    p.add_argument("--dataset", help="with no IMAGE: draw test images of this data set (default: the trained one)")
    p.add_argument("--samples", type=int, default=8, help="with no IMAGE: how many random test images")
    p.add_argument("--seed", type=int, default=0, help="which random test images")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the data set files")
    p.add_argument("--offline", action="store_true", help="never touch the network")
    p.add_argument("--top-k", type=int, default=None,
                   help="draw only the k most likely classes' maps (default: all for test images, 3 over photos)")
    p.add_argument("--top-fraction", type=float, default=None,
                   help="show only each map's top fraction of activations (the paper's figure: 0.1)")
    p.add_argument("--boxes", type=int, default=1, help="locate the top this-many predicted classes (default 1)")
    p.add_argument("--threshold", type=float, default=0.2, help="box: region at or above this fraction of the map's max")
    p.add_argument("--out", type=Path, default=Path("maps.png"), help="PNG file to write (default maps.png)")
    p.set_defaults(run=cmd_maps)

    p = sub.add_parser("report", help="write RUN_DIR/report.html: curves, confusion matrix, maps")
    p.add_argument("run_dir", type=Path)
    p.set_defaults(run=cmd_report)

    p = sub.add_parser("export", help="export to ONNX (dynamic batch and size), checked with onnxruntime")
    p.add_argument("checkpoint", type=Path, help=checkpoint_help)
    p.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted difference from PyTorch (fp32)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("reproduce", help="run the paper's experiments (src/nin/configs/) and write results/README.md")
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT", help="experiment names (default: all; see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..S-1 per experiment (default 1)")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop each run after this many minutes (the table marks it as a short budget)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the data sets (default $NIN_DATA or ./data, then ../shared/data)")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/reproduce"), help="where run folders go")
    p.add_argument("--results", type=Path, default=Path("results"), help="where runs.json and README.md go")
    p.add_argument("--configs", type=Path, default=None, help="folder of experiment files (default: the package's src/nin/configs/)")
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
    p.set_defaults(run=cmd_bench)

    p = sub.add_parser("view", help="a page on this machine to see a model's class maps over your photos")
    p.add_argument("--model", action="append", metavar="NAME_OR_PATH",
                   help="a shipped model, run folder or weights file to offer (repeatable; default: every shipped one)")
    p.add_argument("--data-dir", type=Path, action="append", default=[],
                   help="folder with a data set, to browse random test images (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(run=cmd_view)

    p = sub.add_parser("localize", help="benchmark: locate translated MNIST digits from the maps (IoU >= 0.5)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the MNIST files")
    p.add_argument("--offline", action="store_true")
    p.add_argument("--train-count", type=int, default=20_000)
    p.add_argument("--val-count", type=int, default=1_000, help="canvases the thresholds are chosen on")
    p.add_argument("--test-count", type=int, default=2_000)
    p.add_argument("--size", type=int, default=64, help="canvas side in pixels")
    p.add_argument("--clutter", type=int, default=4, help="fragments of other digits per canvas")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--thresholds", type=float, nargs="+", metavar="T",
                   help="heat-map thresholds (fractions of the maximum) to choose from on the validation canvases "
                        "(default 0.1, 0.2, ..., 0.9)")
    p.add_argument("--init-weights", metavar="NAME_OR_FILE", default="nin-mnist",
                   help="weights to start from (default: the shipped nin-mnist, trained on centred digits); "
                        "the canvases' boxes are never seen either way")
    p.add_argument("--from-scratch", action="store_true", help="start from a fresh LSUV-initialised nin-mnist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    p.set_defaults(run=cmd_localize)
    return parser


class _QuietWhenReaderLeaves:
    """Standard output that goes quiet when its reader leaves (`nin eval RUN | head -1`) instead of raising
    BrokenPipeError in the middle of a command: the command still finishes its work (the JSON, the run)."""

    def __init__(self, stream):
        self._stream = stream

    def _discard(self) -> None:
        # What is still buffered, and all that follows, goes to /dev/null; flushing at exit then succeeds.
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._discard()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._discard()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    if type(sys.stdout) is io.TextIOWrapper:   # the real standard output, not a capture or a wrapper already
        sys.stdout = _QuietWhenReaderLeaves(sys.stdout)
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        print(f"nin {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
              f"(see 'nin {args.command} --help')", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except NinError as e:
        print(f"nin {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"nin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
