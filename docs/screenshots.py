"""Takes the README's screenshots of the live view: the fake Binance and
the exporter (in stream mode), each its own process as ``make demo`` runs
them, and Debian's Chromium, headless, on their pages.

    .venv/bin/python docs/screenshots.py

Writes docs/overview.png, docs/book.png, docs/book-dark.png and
docs/book-phone.png.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from test.browser import chromium  # noqa: E402  # pylint: disable=wrong-import-position
from test.helpers import free_port, http_get, wait_for  # noqa: E402  # pylint: disable=wrong-import-position

SYMBOL = "ETHBTC"


def live(driver) -> bool:
    return driver.execute_script("return document.getElementById('status').dataset.state") == "live"


def main() -> int:
    """Runs both processes, takes the screenshots, stops them."""
    sim_port, stream_port, port = free_port(), free_port(), free_port()
    simulator = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped in the finally below
        [sys.executable, "-m", "binance_exporter.fake.simulator", "--port", str(sim_port)]
        + ["--stream-port", str(stream_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    exporter = None
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{sim_port}/api/v3/ping")[0] == 200)
        exporter = subprocess.Popen(  # pylint: disable=consider-using-with  # stopped below
            [sys.executable, "-m", "binance_exporter", "--source", "stream", "--port", str(port)]
            + ["--address", "127.0.0.1", "--base-url", f"http://127.0.0.1:{sim_port}"]
            + ["--stream-url", f"ws://127.0.0.1:{stream_port}", "--update-interval", "1", "--loglevel", "WARNING"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        with chromium(1280, 1000) as driver:
            driver.get(url + "/")
            wait_for(lambda: live(driver) and "of" in driver.find_element("id", "books-in-sync").text, timeout=60)
            time.sleep(3)  # a few cycles: spreads with their last change
            driver.save_screenshot(str(ROOT / "docs/overview.png"))
            driver.set_window_size(1280, 1700)  # the whole ladder
            driver.get(f"{url}/book/{SYMBOL}")
            wait_for(lambda: live(driver), timeout=30)
            time.sleep(2)  # some trades
            driver.save_screenshot(str(ROOT / "docs/book.png"))
            driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
            )
            driver.save_screenshot(str(ROOT / "docs/book-dark.png"))
            phone = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
            time.sleep(0.5)
            driver.save_screenshot(str(ROOT / "docs/book-phone.png"))
    finally:
        for process in (exporter, simulator):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
