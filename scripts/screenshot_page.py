"""serve.py's page in headless Chromium: start the server on a free loopback port, paste an abstract, ask for
titles, save a PNG of the page, stop the server.

    python scripts/screenshot_page.py CHECKPOINT ABSTRACT_FILE --out docs/serve_page.png [--mode beam] [--count 3]

ABSTRACT_FILE holds one abstract (text, UTF-8). Needs playwright (the test extra), the system's chromium and a
CJK font (apt-get install chromium fonts-wqy-zenhei: without the font Chinese shows as boxes). Prints the titles
shown, so the caption can quote them.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300


def wait_until_serving(process: subprocess.Popen, log_path: Path) -> str:
    """The base URL once serve.py says it is serving; an error if it ends or does not start in time."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        found = re.search(r"serving .* on (http://\S+/)", text)
        if found and "Application startup complete" in text:
            return found.group(1)
        if process.poll() is not None:
            raise SystemExit(f"error: serve.py ended with status {process.returncode}: {text.strip().splitlines()[-1:]}")
        time.sleep(0.2)
    raise SystemExit(f"error: serve.py did not start within {START_TIMEOUT_S} s (log: {log_path})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("abstract_file", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--mode", choices=("beam", "diverse", "sample"), default="beam")
    ap.add_argument("--count", type=int, default=3)
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: no chromium binary (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from seq2seq_rdrop.atomic_files import replacing

    abstract = args.abstract_file.read_text(encoding="utf-8").strip()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "serve.log"
        with open(log_path, "w") as log:
            server = subprocess.Popen([sys.executable, str(REPO / "serve.py"), f"checkpoint={args.checkpoint}",
                                       "server.port=0"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                      env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            url = wait_until_serving(server, log_path)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1000, "height": 800})
                page.set_default_timeout(START_TIMEOUT_S * 1000)
                page.goto(url)
                page.fill("#abstract", abstract)
                page.select_option("#mode", args.mode)
                page.fill("#count", str(args.count))
                page.click("#go")
                page.wait_for_selector("#results li")
                page.wait_for_function("!document.getElementById('go').disabled")
                for title in page.locator("#results .title").all_text_contents():
                    print(title)
                with replacing(args.out) as (tmp_png,):
                    page.screenshot(path=str(tmp_png), full_page=True)
                browser.close()
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
