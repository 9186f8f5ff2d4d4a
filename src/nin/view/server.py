"""`nin view`: a page on this machine to see a model's class maps over a photo.

The standard library's threaded HTTP server, bound to 127.0.0.1 unless told otherwise. Uploads are held
in memory and never written to disk. What a bad upload gets is a 4xx with a one-line JSON error, and the
server goes on serving: a body over the size limit is refused before it is read, an image that claims more
pixels than the limit is refused before it is decoded, an unreadable or truncated image is refused when
decoded, and requests beyond the few that compute at once are told to retry (503).
"""

from __future__ import annotations

import io
import json
import random
import threading
import warnings
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from PIL import Image, UnidentifiedImageError

from nin.errors import NinError

MAX_UPLOAD_BYTES = 20 * 2 ** 20       # larger bodies are refused unread
MAX_PIXELS = 40_000_000               # an image claiming more (a decompression bomb) is refused undecoded
DISPLAY_SIDE = 1024                   # photos larger than this are shown (and mapped) at this longest side
COMPUTING_AT_ONCE = 2                 # the cores here; more requests at once are told to retry
SOCKET_TIMEOUT_S = 20                 # a client that stops sending mid-request is dropped


class BadRequest(Exception):
    """A client's mistake: answered with `status` and a one-line message."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def read_photo(data: bytes) -> Image.Image:
    """An uploaded file as a decoded PIL image, or BadRequest saying in one line why not."""
    if not data:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the upload is empty; choose an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size   # from the header, before any pixel is decoded
            if width * height > MAX_PIXELS:
                raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                 f"the image claims {width} x {height} pixels, more than the {MAX_PIXELS:,} this "
                                 "page decodes; resize it first")
            image.load()
    except BadRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the image is larger than Pillow's decompression-bomb "
                         "limit; resize it first") from None
    except UnidentifiedImageError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "not an image file Pillow knows; choose a PNG, JPEG or other common "
                         "image file") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:   # a known format, broken or cut short
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"not a readable image ({reason}); choose a PNG, JPEG or other "
                         "common image file") from None
    if max(image.size) > DISPLAY_SIDE:
        image.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.LANCZOS)
    return image


@dataclass
class Viewer:
    """The models the page offers and the data it can draw test images from; models load on first use."""
    models: dict[str, str]                   # name shown -> shipped name, run folder or weights file
    data_dirs: list[Path] = field(default_factory=list)   # looked in, in order, for a model's test images
    loaded: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    computing: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(COMPUTING_AT_ONCE))

    def trained(self, name: str):
        from nin.inference import load_trained

        if name not in self.models:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no model {name!r} here; choose one of {', '.join(self.models)}")
        with self.lock:
            if name not in self.loaded:
                self.loaded[name] = load_trained(self.models[name])
            return self.loaded[name]

    def describe(self) -> dict:
        return {"models": list(self.models), "samples": bool(self.data_dirs)}

    def explain(self, name: str, image, top_k: int, threshold: float, true_class: int | None = None) -> dict:
        from nin.maps.photo import explain_photo
        from nin.view.pictures import array_png, overlay_png, png_data_url

        from nin.maps.explain import require_class_maps

        trained = self.trained(name)
        require_class_maps(trained)   # a NinError: a 400 with its line
        if not self.computing.acquire(blocking=False):
            raise BadRequest(HTTPStatus.SERVICE_UNAVAILABLE, "busy with other pictures; try again in a moment")
        try:
            seen = explain_photo(trained, image, top_k, threshold)
            overlays = [overlay_png(seen, k) for k in range(len(seen.classes))]
        finally:
            self.computing.release()
        height, width = seen.photo.shape[:2]
        return {"model": name, "photo_size": [width, height], "fitted": seen.fitted, "box": list(seen.box),
                "threshold": threshold, "true_class": None if true_class is None else trained.class_names[true_class],
                "classes": [{"name": n, "probability": round(p, 6), "overlay": png_data_url(png)}
                            for n, p, png in zip(seen.names, seen.probabilities, overlays)],
                "model_input": png_data_url(array_png(seen.model_input))}

    def sample(self, name: str, seed: int | None) -> tuple:
        """A random test image of the model's data set (uint8 array, H x W or H x W x 3) and its label."""
        from nin.data.datasets import load_raw_test
        from nin.maps.explain import channels_last

        if not self.data_dirs:
            raise BadRequest(HTTPStatus.NOT_FOUND, "no test images here: start `nin view` with --data-dir")
        dataset = self.trained(name).meta["dataset"]
        for folder in self.data_dirs:
            try:
                test = load_raw_test(dataset, folder, offline=True)
                break
            except NinError:
                continue
        else:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no {dataset} test images in {', '.join(map(str, self.data_dirs))}")
        i = random.Random(seed).randrange(len(test.labels))
        return channels_last(test.images[i].numpy()), int(test.labels[i])


def _number(query: dict, key: str, kind, default, low, high):
    try:
        value = kind(query.get(key, [default])[0])
    except ValueError:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{key}: expected a number, got {query[key][0]!r}") from None
    if not low <= value <= high:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{key}: expected {low} to {high}, got {value}")
    return value


class Handler(BaseHTTPRequestHandler):
    """One request of the page: the page itself, the list of models, a test image, or a photo to explain."""
    viewer: Viewer   # set by make_handler
    page: bytes
    timeout = SOCKET_TIMEOUT_S
    server_version = "nin-view"

    def log_message(self, format, *args):   # quiet: the terminal shows only what `nin view` prints
        pass

    def send_json(self, status: HTTPStatus, body: dict):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def answer(self, work):
        try:
            self.send_json(HTTPStatus.OK, work())
        except BadRequest as e:
            self.close_connection = True   # an unread body must not be taken for the next request
            self.send_json(e.status, {"error": str(e)})
        except NinError as e:
            self.send_json(HTTPStatus.BAD_REQUEST, {"error": str(e)})

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/":
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(self.page)))
            self.end_headers()
            self.wfile.write(self.page)
        elif url.path == "/api/models":
            self.answer(self.viewer.describe)
        elif url.path == "/api/sample":
            self.answer(lambda: self.sample(query))
        else:
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path}"})

    def do_POST(self):
        url = urlparse(self.path)
        if url.path != "/api/explain":
            self.close_connection = True
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path}"})
            return
        self.answer(lambda: self.explain_upload(parse_qs(url.query)))

    def options(self, query: dict) -> tuple[str, int, float]:
        name = query.get("model", [next(iter(self.viewer.models))])[0]
        return name, _number(query, "top_k", int, 3, 1, 10), _number(query, "threshold", float, 0.2, 0.0, 1.0)

    def explain_upload(self, query: dict) -> dict:
        name, top_k, threshold = self.options(query)   # checked before the body is read
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "send the image with its Content-Length")
        if int(length) > MAX_UPLOAD_BYTES:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"the upload is {int(length) / 2 ** 20:.1f} MiB, over the "
                             f"{MAX_UPLOAD_BYTES / 2 ** 20:.0f} MiB limit; choose a smaller image")
        data = self.rfile.read(int(length))
        if len(data) < int(length):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the upload ended early; send it again")
        return self.viewer.explain(name, read_photo(data), top_k, threshold)

    def sample(self, query: dict) -> dict:
        name, top_k, threshold = self.options(query)
        seed = query.get("seed", [None])[0]
        image, label = self.viewer.sample(name, None if seed is None else _number(query, "seed", int, 0, 0, 2 ** 31))
        return self.viewer.explain(name, image, top_k, threshold, true_class=label)


def make_handler(viewer: Viewer, page: bytes) -> type[Handler]:
    """Handler bound to one viewer and page (the server makes one instance a request)."""
    return type("BoundHandler", (Handler,), {"viewer": viewer, "page": page})


def page_html() -> bytes:
    return (resources.files("nin.view") / "page.html").read_bytes()


def serve(viewer: Viewer, host: str = "127.0.0.1", port: int = 8000, ready=None) -> None:
    """Serve until interrupted. `ready(server)`: called once the socket listens (tests read the port there)."""
    server = ThreadingHTTPServer((host, port), make_handler(viewer, page_html()))
    server.daemon_threads = True
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
