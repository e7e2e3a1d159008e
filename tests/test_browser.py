"""End to end: start `python app.py` with the real models, drive Debian's Chromium with Playwright.

Run alone with: pytest -m browser -s   (the first run converts the model once: minutes).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.real]

ROOT = Path(__file__).parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
QUESTION = "By what date is the rare earth deal meant to be finalised?"
START_TIMEOUT_S = 900  # first start: build the index and convert the model once
ANSWER_TIMEOUT_S = 600
EVIL = (
    "<script>alert('pwned')</script> Vault notes\n\n"
    "The vault <img src=x onerror=alert(2)> launch code is 4471."
)

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(
        "/usr/bin/chromium is missing: install it with `make browser` "
        "(apt-get install chromium chromium-driver); in CI this test always runs",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(proc: subprocess.Popen, url: str, log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < START_TIMEOUT_S:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(
        f"app.py did not serve {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
    )


@pytest.fixture()
def server(tmp_path):
    """`python app.py` on a free loopback port over a copy of seeds/; always stopped after."""
    seeds = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", seeds)
    (seeds / "vault <i onclick=alert(3)>notes.txt").write_text(EVIL, encoding="utf-8")
    port = _free_port()
    env = {
        **os.environ,
        "ASSISTANT_SEEDS_DIR": str(seeds),
        "ASSISTANT_INDEX_DIR": str(tmp_path / "index"),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    for name in (
        "ASSISTANT_HOST",
        "ASSISTANT_PORT",
        "ASSISTANT_USERNAME",
        "ASSISTANT_PASSWORD",
        "ASSISTANT_AUTH_FILE",
    ):
        env.pop(name, None)
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        seconds = _wait_until_serving(proc, url, log)
        print(f"\napp.py served after {seconds:.1f} s")
        yield url, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)


def test_question_streams_a_cited_answer_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, log = server
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-gpu",
            ],
        )
        page = None
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            # Example questions about the shipped article on first open.
            page.get_by_text(QUESTION).first.wait_for(timeout=30_000)

            page.fill("#question textarea", QUESTION)
            page.click("#send")
            # Streaming: some answer text shows before the final answer (with its timings).
            bot = page.locator("#chat .bot").last
            bot.wait_for(timeout=ANSWER_TIMEOUT_S * 1000)
            page.wait_for_selector("#chat .timings", timeout=ANSWER_TIMEOUT_S * 1000)
            page.screenshot(path=str(ARTIFACTS / "browser-answer.png"), full_page=True)

            answer = page.locator("#chat .bot").last.inner_text()
            assert "April 26" in answer or "26 April" in answer, answer
            markers = page.locator("#chat a[href^='#src-']")
            assert markers.count() >= 1, answer
            target = markers.first.get_attribute("href")[1:]
            card = page.locator(f"#sources #{target}")
            assert card.count() == 1
            assert "finalize the deal by April 26" in page.locator("#sources").inner_text()
            assert page.locator("#sources mark").count() >= 1

            markers.first.click()
            page.wait_for_selector(f"#sources #{target}.flash", timeout=5_000)

            page.get_by_role("tab", name="Documents").click()
            table = page.locator("#documents")
            table.get_by_text("vault <i onclick=alert(3)>notes.txt").wait_for(timeout=10_000)
            assert page.locator("#documents i").count() == 0
            page.screenshot(path=str(ARTIFACTS / "browser-documents.png"), full_page=True)
        except BaseException:
            if page is not None:
                page.screenshot(path=str(ARTIFACTS / "browser-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert dialogs == [], f"document HTML ran as script: {dialogs}"
    assert "Traceback" not in log.read_text()
