"""The web page in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium.

Used by tests/test_web_demo.py and, run as a script, to take the screenshot of docs/inference.md:

    python tests/browser.py --out docs/web_demo.png --video V.mp4 --classes "a, b, c" -- WEB_DEMO_ARGS ...

starts `tools/web_demo.py WEB_DEMO_ARGS` on a free local port, classifies V.mp4 in the page exactly as the test
does, saves the screenshot and stops the server. Only the system's browser and driver are used (no download).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_COMMAND = "apt-get install chromium chromium-driver (or: make browser)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_browser() -> Optional[tuple[str, str]]:
    """(browser, driver) executables of the system's Chromium, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def open_browser(width: int = 1280, height: int = 900):
    """A headless Chromium that stays off the network except for the pages it is sent to."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--lang=en-US"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def classify_in_browser(driver, url: str, video: str, classes: str, top_k: int, screenshot: str, timeout: float = 600) -> str:
    """Open the page, upload `video`, type `classes` and `top_k`, press Classify, wait for the answer, save a
    screenshot of the whole page to `screenshot` and return the top class as the page shows it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video input[type=file]"))[0].send_keys(os.path.abspath(video))
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video video"))  # uploaded: the player shows it
    for selector, text in (("#classes textarea", classes), ("#top-k input", str(top_k))):
        field = driver.find_element(By.CSS_SELECTOR, selector)
        field.clear()
        field.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "button#run").click()
    top = wait.until(lambda d: _shown_top_class(d))
    wait.until(lambda d: d.execute_script(
        "const v = document.querySelector('#annotated video'); return v !== null && v.readyState >= 2"))
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".progress-text, .eta-bar"))
    _save_whole_page(driver, screenshot)
    return top


def _save_whole_page(driver, path: str) -> None:
    """A screenshot of the whole page, not only of the window (headless Chromium keeps the window's height)."""
    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _shown_top_class(driver) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "#probabilities [data-testid='label-output-value']")
    return found[0].text.strip() if found and found[0].text.strip() else ""


def resources_elsewhere(driver, url: str) -> list[str]:
    """Every resource the page loaded from anywhere but `url`'s server."""
    origin = url.rstrip("/")
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not n.startswith(origin) and not n.startswith(("data:", "blob:"))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--video", required=True, help="video to classify in the page")
    p.add_argument("--classes", required=True, help="class names to type")
    p.add_argument("--top-k", type=int, default=3, help="top-k to type (default %(default)s)")
    p.add_argument("web_demo_args", nargs=argparse.REMAINDER, help="-- then the arguments of tools/web_demo.py")
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from slowfast.cli import web_demo

    if find_browser() is None:
        raise SystemExit(f"needs Chromium and its driver: {INSTALL_COMMAND}")
    rest = [a for a in args.web_demo_args if a != "--"]
    server = web_demo.start(web_demo.build_parser().parse_args(["--host", "127.0.0.1", "--port", str(free_port())] + rest))
    driver = open_browser()
    try:
        print("top class in the page:", classify_in_browser(driver, server.url, args.video, args.classes, args.top_k, args.out))
    finally:
        driver.quit()
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
