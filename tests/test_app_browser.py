"""The app in a real browser: `python -m open_r1.app` on a free local port with the tiny model and a demo
evaluation run, driven by headless Chromium (playwright over the system's browser, which `setup.sh --dev`
installs): upload a photo and read the answer and its map, refuse a text file on the page, open the run, count
its markers, click one to its record, filter to the parse failures. Screenshots go to the test's tmp folder (and
to $GEO_R_SCREENSHOTS when set, as the README's were made)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright: bash setup.sh --dev installs it")
expect = sync_api.expect
pytest.importorskip("gradio", reason="the app extra: bash setup.sh --app (or --dev)")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WAIT_MS = 120_000  # for the page's answers, on a busy 2-core machine


def browser_binary() -> str | None:
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    with sync_api.sync_playwright() as playwright:  # a browser playwright downloaded itself, where it could
        path = playwright.chromium.executable_path
    return path if Path(path).is_file() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tiny_model_dir, demo_eval_run, tmp_path_factory):
    """The app started as a user starts it; its URL once it answers."""
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "open_r1.app", "--model_name_or_path", str(tiny_model_dir), "--run",
             str(demo_eval_run), "--server_port", str(port), "--max_new_tokens", "8", "--num_guesses", "2",
             "--max_pixels", "12544"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:  # until it answers or dies; a hung start is left to the CI's own time limit
            if process.poll() is not None:
                pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(app_url):
    binary = browser_binary()
    if binary is None:
        pytest.skip("no Chromium on this machine (bash setup.sh --dev installs it with apt-get as root; or "
                    "apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1280, "height": 1000})
        tab.set_default_timeout(WAIT_MS)
        expect.set_options(timeout=WAIT_MS)
        tab.goto(app_url)
        tab.wait_for_load_state("networkidle")  # Gradio builds the page in the browser after the load event
        tab.locator("#ask-button").wait_for()
        yield tab
        browser.close()


def upload(page, path: Path) -> None:
    """Choose a file in the upload box and wait until the page lists it. A file chosen before the page's scripts
    took hold of the box is dropped silently (seen once on a cold first start), so it is chosen again."""
    for attempt in range(3):
        page.set_input_files("#upload input[type=file]", str(path))
        try:
            page.get_by_text(path.name).first.wait_for(timeout=20_000)
            return
        except sync_api.TimeoutError:
            if attempt == 2:
                raise


def save_screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if folder := os.environ.get("GEO_R_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_ask_a_photo_in_the_browser(page, demo_data, tmp_path):
    photo = demo_data[2] / "lisbon" / "lisbon-test-0.jpg"
    upload(page, photo)
    page.click("#ask-button")
    page.get_by_text("Answered for 1 photo(s).").wait_for()
    answer = page.inner_text("#answer")
    # the tiny model's weights are random: its answer is words, with coordinates or (mostly) without
    assert "No coordinates could be read" in answer or "guess(es)" in answer
    expect(page.locator("#ask-map svg.geo-map path.land")).to_have_count(1)
    guesses = page.locator("#ask-map circle.marker.guess")
    if "No coordinates could be read" in answer:
        expect(page.locator("#ask-map .geo-caption")).to_have_text("No guess to show: the answer held no coordinates.")
        expect(guesses).to_have_count(0)
    else:
        guesses.first.wait_for()
    assert page.input_value("#reasoning textarea") != ""
    save_screenshot(page, tmp_path, "app-ask.png")

    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.click("#upload button[aria-label='Clear']")
    page.get_by_text("lisbon-test-0.jpg").first.wait_for(state="detached")
    upload(page, notes)
    page.click("#ask-button")
    page.get_by_text("notes.txt is not an image this app can read").wait_for()


def test_browse_a_demo_run_in_the_browser(page, demo_eval_run, tmp_path):
    records = [json.loads(line) for line in (demo_eval_run / "predictions.jsonl").read_text().splitlines()]
    parsed = [r for r in records if r["parsed"]]
    page.get_by_role("tab", name="Browse an evaluation").click()
    page.locator("#run-map circle.marker.truth").first.wait_for()
    expect(page.locator("#run-map circle.marker.truth")).to_have_count(len(parsed))
    expect(page.locator("#run-map circle.marker.guess")).to_have_count(len(parsed))
    expect(page.locator("#run-map circle.marker.failed")).to_have_count(len(records) - len(parsed))
    assert page.locator("#run-map path.arc").count() >= 1
    headline = page.inner_text("#headline")
    assert "demo-model" in headline and "median error" in headline and "parse failures" in headline
    assert f"{len(records)} predictions in" in page.inner_text("#run-message")

    # one click from a marker to its record: the topmost marker, so no other covers it
    marker = page.locator("#run-map circle.marker").last
    record_id = marker.get_attribute("data-id")
    marker.click()
    page.locator("#record h3").filter(has_text=f"{record_id}: error").wait_for()
    assert "Reasoning" in page.inner_text("#record")
    page.locator("#photos img").first.wait_for()
    save_screenshot(page, tmp_path, "app-run.png")

    page.click("#failures input[type=checkbox]")
    page.get_by_text(f"{len(records) - len(parsed)} match the filters").wait_for()
    expect(page.locator("#run-map circle.marker.guess")).to_have_count(0)
    expect(page.locator("#run-map circle.marker.failed")).to_have_count(len(records) - len(parsed))
