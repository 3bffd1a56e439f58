"""The page of serve.py in a real browser, and serve.py as a process.

`python serve.py checkpoint=... server.port=0` runs with a tiny checkpoint made here, on a free loopback port
(the line "serving ... on http://..." names it). Headless Chromium, the system's (Debian's `chromium`), driven
by Playwright, loads the page, types an abstract, clicks "titles" and reads the n-best; a screenshot goes to
the test's temporary directory. Skipped, with the reason, without playwright or a chromium binary; .ci/run
installs both.
"""
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import random_abstracts, save_tiny_checkpoint

pytest.importorskip("fastapi", reason="serve.py needs fastapi (pip install -e '.[serve]')")
pytest.importorskip("playwright", reason="the browser test needs playwright (pip install -e '.[test]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium; .ci/run does)"),
              pytest.mark.usefixtures("one_thread")]

import httpx  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 180  # only against a hang: start-up and every answer come long before on any machine
# the checkpoint's own decoding: short titles, re-ranked (the page must say that the scores are not the order)
RUN_DECODE = {"beam_size": 4, "max_len": 5, "rerank": {"rule": 1.0, "len": 0.5}}
RERANKED = (", in the re-ranker's order (decode.rerank); each score is the title's log-probability, not what the "
            "list is ordered by")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("browser"), {"data": {"max_source_len": 40},
                                                                     "decode": RUN_DECODE})


@pytest.fixture(scope="module")
def server_url(ckpt, tmp_path_factory):
    """serve.py's base URL; the process is stopped after the module's tests."""
    log_path = tmp_path_factory.mktemp("serve_log") / "serve.log"
    with open(log_path, "w") as log:  # a file, not a pipe: nobody has to keep reading uvicorn's lines
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / "serve.py"), f"checkpoint={ckpt}",
                                    "server.port=0"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        yield _wait_until_serving(process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_serving(process, log_path: Path) -> str:
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        text = log_path.read_text()
        found = re.search(r"serving .* on (http://\S+/)", text)
        if found and "Application startup complete" in text:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"serve.py ended with status {process.returncode}:\n{text}")
        time.sleep(0.1)
    pytest.fail(f"serve.py did not start within {HANG_GUARD_S} s:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def page(server_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = browser.new_page()
        tab.set_default_timeout(HANG_GUARD_S * 1000)
        tab.goto(server_url)
        yield tab
        browser.close()


def ask_for_titles(page, abstract: str, mode: str, count: int) -> list[tuple[str, str]]:
    page.fill("#abstract", abstract)
    page.select_option("#mode", mode)
    page.fill("#count", str(count))
    page.evaluate("document.getElementById('results').replaceChildren()")
    page.click("#go")
    page.wait_for_selector("#results li")
    page.wait_for_function("!document.getElementById('go').disabled")
    return list(zip(page.locator("#results .title").all_text_contents(),
                     page.locator("#results .score").all_text_contents()))


def test_the_page_shows_the_checkpoints_beam_titles_with_scores(page, api, tmp_path):
    abstract = random_abstracts(1, seed=21)[0]
    shown = ask_for_titles(page, abstract, "beam", 3)
    page.screenshot(path=str(tmp_path / "serve_page.png"), full_page=True)

    expected = api.hypotheses([abstract], num_return=3)[0]  # the page keeps the checkpoint's 4 beams
    assert shown == [(title, f"{round(score, 6):.3f}") for title, score in expected]
    assert page.text_content("#status") == "3 title(s)" + RERANKED
    assert page.locator("#results button.copy").count() == 3
    assert (tmp_path / "serve_page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("mode", ["diverse", "sample"])
def test_diverse_beams_and_sampling_from_the_page(page, mode):
    shown = ask_for_titles(page, random_abstracts(1, seed=22)[0], mode, 2)
    assert len(shown) == 2 and all(title for title, _ in shown)
    assert page.text_content("#status") == "2 title(s)" + RERANKED


def test_an_empty_text_box_is_said_on_the_page(page):
    page.fill("#abstract", "  ")
    page.click("#go")
    assert page.text_content("#status") == "paste an abstract first"


def test_the_process_answers_the_api_as_curl_would(server_url, api):
    abstracts = random_abstracts(2, seed=23)
    answer = httpx.post(server_url + "v1/titles", json={"abstracts": abstracts, "num_return": 2},
                        timeout=HANG_GUARD_S)
    assert answer.status_code == 200, answer.text
    got = [[(h["title"], h["score"]) for h in row] for row in answer.json()["titles"]]
    assert got == [[(t, round(s, 6)) for t, s in row] for row in api.hypotheses(abstracts, num_return=2)]
    assert httpx.get(server_url + "healthz", timeout=HANG_GUARD_S).json()["decode"]["beam_size"] == 4
