"""docs/view.png: the `nin view` page in headless Chromium, after uploading a CIFAR-10 test image enlarged to a photo.

    python tools/view_screenshot.py --data-dir data     # data: a folder with CIFAR-10 (official binary layout)

Needs Debian's chromium and chromium-driver (`make browser`) and the test extra (selenium).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
from pathlib import Path

from PIL import Image

from nin.data.datasets import load_raw_test
from nin.view.server import Viewer, serve

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--index", type=int, default=0, help="which CIFAR-10 test image (default 0, a cat)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "view.png")
    args = parser.parse_args()

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as when
    from selenium.webdriver.support.ui import WebDriverWait

    test = load_raw_test("cifar10", args.data_dir, offline=True)
    started, holder = threading.Event(), {}
    viewer = Viewer({"nin-cifar10": "nin-cifar10", "nin-cifar100": "nin-cifar100"}, [args.data_dir])
    threading.Thread(target=serve, args=(viewer,), daemon=True,
                     kwargs={"port": 0, "ready": lambda s: (holder.update(server=s), started.set())}).start()
    started.wait(30)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    with tempfile.TemporaryDirectory() as folder:
        photo = Path(folder) / "photo.jpg"
        image = Image.fromarray(test.images[args.index].permute(1, 2, 0).numpy())
        image.resize((451, 300), Image.Resampling.BICUBIC).save(photo, quality=92)
        try:
            driver.get(f"http://127.0.0.1:{holder['server'].server_address[1]}/")
            driver.find_element(By.ID, "file").send_keys(str(photo))
            WebDriverWait(driver, 60).until(when.presence_of_element_located((By.CSS_SELECTOR, "figcaption.top")))
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
            holder["server"].shutdown()
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
