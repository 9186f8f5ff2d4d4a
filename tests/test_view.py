"""`nin view`: the local page's server, its answers to bad uploads, and the page in headless Chromium."""

import base64
import http.client
import io
import json
import os
import shutil
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from nin.data.datasets import load_raw_test
from nin.view.server import MAX_UPLOAD_BYTES, Viewer, serve


@pytest.fixture(scope="module")
def photo(cifar10_dir, tmp_path_factory) -> bytes:
    """A real CIFAR-10 test image (a cat) enlarged to a 451 x 300 JPEG, as a photo."""
    test = load_raw_test("cifar10", cifar10_dir, offline=True)
    buffer = io.BytesIO()
    Image.fromarray(test.images[0].permute(1, 2, 0).numpy()).resize((451, 300), Image.Resampling.BICUBIC).save(
        buffer, format="JPEG", quality=92)
    path = tmp_path_factory.mktemp("photo") / "cat.jpg"
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(cifar10_dir):
    """`nin view`'s server in a thread, on a free port of 127.0.0.1 (its default address)."""
    started = threading.Event()
    holder = {}

    def ready(s):
        holder["server"] = s
        started.set()

    viewer = Viewer({"nin-cifar10": "nin-cifar10", "nin-mnist": "nin-mnist"}, [cifar10_dir])
    thread = threading.Thread(target=serve, args=(viewer,), kwargs={"port": 0, "ready": ready}, daemon=True)
    thread.start()
    assert started.wait(30)
    yield holder["server"]
    holder["server"].shutdown()


def request(server, method, path, body=None, headers=None):
    """(status, parsed JSON or text) of one request on a new connection."""
    host, port = server.server_address
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(data) if kind.startswith("application/json") else data.decode()


def test_it_listens_on_this_machine_only_by_default(server):
    assert server.server_address[0] == "127.0.0.1"


def test_a_photo_gets_its_classes_and_maps_over_it(server, photo):
    status, answer = request(server, "POST", "/api/explain?model=nin-cifar10&top_k=3&threshold=0.3", photo)
    assert status == 200, answer
    assert len(answer["classes"]) == 3 and answer["photo_size"] == [451, 300] and answer["threshold"] == 0.3
    names = [c["name"] for c in answer["classes"]]
    assert set(names) <= {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    for c in answer["classes"]:   # each map laid over the photo at the photo's size
        data = c["overlay"].removeprefix("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            assert image.size == (451, 300)


def test_test_images_from_the_data_folder(server):
    status, answer = request(server, "GET", "/api/sample?model=nin-cifar10&seed=5&top_k=2")
    assert status == 200 and answer["true_class"] and len(answer["classes"]) == 2
    status, answer = request(server, "GET", "/api/sample?model=nin-mnist&seed=5")
    assert status == 404 and "no mnist test images" in answer["error"]   # only CIFAR-10's folder was given


def tiny_png_claiming(width: int, height: int) -> bytes:
    """A valid 1 x 1 PNG whose header claims width x height: a decompression bomb's first bytes."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data[12:29]   # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize("body, status, words", [
    (b"", 400, "the upload is empty"),
    (b"GIF89a but not really an image", 400, "not an image file"),
    (b"not an image at all", 400, "not an image file"),
    ("truncated", 400, "not a readable image"),
    (tiny_png_claiming(8_000, 8_000), 413, "claims 8000 x 8000 pixels"),    # over this page's limit
    (tiny_png_claiming(100_000, 100_000), 413, "decompression-bomb limit"),   # over Pillow's own
])
def test_bad_uploads_get_one_line_and_the_server_keeps_serving(server, photo, body, status, words):
    body = photo[:2000] if body == "truncated" else body
    got, answer = request(server, "POST", "/api/explain?model=nin-cifar10", body)
    assert got == status and words in answer["error"] and "\n" not in answer["error"], answer
    assert request(server, "GET", "/api/models")[0] == 200


def test_a_huge_upload_is_refused_before_it_is_read(server):
    host, port = server.server_address
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.putrequest("POST", "/api/explain?model=nin-cifar10")
        connection.putheader("Content-Length", str(MAX_UPLOAD_BYTES + 1))
        connection.endheaders()
        connection.send(b"\x89PNG" + b"\0" * 1000)   # the rest never comes: the answer must not wait for it
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413 and "over the 20 MiB limit" in answer["error"]
    assert request(server, "GET", "/api/models")[0] == 200


def test_bad_settings_and_unknown_models_are_one_line(server, photo):
    for query, words in (("model=nope", "no model 'nope'"), ("model=nin-cifar10&top_k=99", "top_k: expected 1 to 10"),
                         ("model=nin-cifar10&threshold=x", "threshold: expected a number")):
        status, answer = request(server, "POST", f"/api/explain?{query}", photo)
        assert 400 <= status < 500 and words in answer["error"], answer


def test_many_requests_at_once_are_answered_or_told_to_retry(server, photo):
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: request(server, "POST", "/api/explain?model=nin-cifar10", photo), range(12)))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 503} and 200 in statuses, statuses
    assert all("try again" in answer["error"] for status, answer in answers if status == 503)
    assert request(server, "POST", "/api/explain?model=nin-cifar10", photo)[0] == 200


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
                    reason="Debian's chromium and chromium-driver are not installed (`make test` installs them)")
def test_the_page_in_headless_chromium(server, photo, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as when
    from selenium.webdriver.support.ui import Select, WebDriverWait

    (tmp_path / "cat.jpg").write_bytes(photo)
    (tmp_path / "notes.txt").write_text("not a picture")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    wait = WebDriverWait(driver, 60)
    try:
        driver.get(f"http://127.0.0.1:{server.server_address[1]}/")
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) == 2)
        driver.find_element(By.ID, "file").send_keys(str(tmp_path / "cat.jpg"))
        wait.until(when.presence_of_element_located((By.CSS_SELECTOR, "figcaption.top")))
        predicted = driver.find_element(By.CSS_SELECTOR, "figcaption.top").text
        pictures = driver.execute_script(
            "return Array.from(document.querySelectorAll('#results img')).map(i => [i.complete, i.naturalWidth])")
        fitted = driver.find_element(By.ID, "fitted").text
        # a file that is not an image: the page says so in one line, and nothing else breaks
        driver.find_element(By.ID, "file").send_keys(str(tmp_path / "notes.txt"))
        wait.until(lambda d: d.find_element(By.ID, "error").text.startswith("error:"))
        error = driver.find_element(By.ID, "error").text
    finally:
        driver.quit()
    assert predicted.startswith("predicted: ") and predicted.split()[1] in {
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}, predicted
    assert len(pictures) == 3 and all(complete and width == 451 for complete, width in pictures), pictures
    assert "451 x 300 photo" in fitted
    assert error == "error: not an image file Pillow knows; choose a PNG, JPEG or other common image file"
