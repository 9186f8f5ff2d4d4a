"""The commands that look at images and maps: predict, maps, report, export, view, localize."""

from __future__ import annotations

import sys
from pathlib import Path

from nin.errors import NinError

WEIGHTS_HELP = "a run folder, a weights.safetensors file, or a shipped model name (nin-mnist, ...)"


def _add_image_args(p) -> None:
    p.add_argument("weights", type=Path, help=WEIGHTS_HELP)
    p.add_argument("images", type=Path, nargs="*", metavar="IMAGE", help="image files (any size; grey or colour)")
    p.add_argument("--native-size", action="store_true",
                   help="feed images at their own size instead of resizing to the training size (GAP allows it)")


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
    from nin.scoring import forward_views

    trained = load_trained(args.weights)
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

    trained = load_trained(args.weights)
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

    from nin.data.datasets import load_raw_test
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

    trained = load_trained(args.weights)
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


def add_parsers(sub) -> None:
    p = sub.add_parser("predict", help="top-k classes of image files")
    _add_image_args(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", type=Path, help="also write the predictions as JSON here")
    p.set_defaults(run=cmd_predict)

    p = sub.add_parser("maps", help="figure of class confidence maps, with boxes located from them")
    _add_image_args(p)
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
    p.add_argument("weights", type=Path, help=WEIGHTS_HELP)
    p.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted difference from PyTorch (fp32)")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("view", help="a page on this machine to see a model's class maps over your photos")
    p.add_argument("--model", action="append", metavar="NAME_OR_PATH",
                   help="a shipped model, run folder or weights file to offer (repeatable; default: every shipped one)")
    p.add_argument("--data-dir", type=Path, action="append", default=[],
                   help="folder with a data set, to browse random test images (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(run=cmd_view)
    _add_localize_parser(sub)


def _add_localize_parser(sub) -> None:
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
