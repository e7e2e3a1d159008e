"""The watched seeds folder: files copied in become answerable, removed ones stop being cited.

The watcher is the real one (watchfiles on a temporary seeds folder) with a short quiet delay;
the models are fakes. Waits poll with a deadline, so the tests take as long as the rebuilds.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator

import gradio as gr
import pytest
from fakes import HashingEmbedder, ScriptedGenerator

from assistant import cli, ui, watch
from assistant.config import Config
from assistant.indexing import build_lock
from assistant.rag import Assistant
from assistant.store import current_version
from assistant.watch import SeedsWatcher

DELAY_S = 0.2
DEADLINE_S = 30.0
ZORBLAT = (
    "Zorblat festival notes\n\n"
    "The zorblat festival takes place in the town of Quenton every March. "
    "Visitors bring lanterns made of blue paper."
)


def reply(messages: list[dict[str, str]]) -> str:
    """Cites the zorblat unit when the evidence has it, else "not found"."""
    for line in messages[-1]["content"].splitlines():
        if line.startswith("[") and "zorblat festival takes place" in line:
            return f"The zorblat festival takes place in Quenton [{line[1 : line.index(']')]}]."
    return "not found"


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        time.sleep(0.05)


def indexed(assistant: Assistant) -> set[str]:
    return {d["id"] for d in assistant.documents()}


class GatedEmbedder(HashingEmbedder):
    """The hashing embedder, held at `gate` while it embeds passages holding `word`."""

    def __init__(self, word: str) -> None:
        super().__init__()
        self.word = word
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def embed(self, texts, progress=False):
        if any(self.word in t for t in texts):
            self.waiting.set()
            assert self.gate.wait(DEADLINE_S)
        return super().embed(texts, progress)


@pytest.fixture()
def watched(cfg) -> Iterator[tuple[Assistant, SeedsWatcher]]:
    """An Assistant on cfg and its watcher, started (its first check done); stopped after."""
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))
    watcher = SeedsWatcher(assistant, delay_s=DELAY_S)
    watcher.start()
    wait_for(lambda: watcher.rebuilds >= 1, "the first check")
    yield assistant, watcher
    watcher.stop()


def test_a_copied_file_becomes_answerable_and_a_removed_one_stops_being_cited(watched, tmp_path):
    assistant, watcher = watched
    question = "Where does the zorblat festival take place?"
    assert assistant.ask(question).abstained
    source = tmp_path / "zorblat.txt"
    source.write_text(ZORBLAT, encoding="utf-8")
    shutil.copy(source, assistant.cfg.seeds_dir / "zorblat.txt")
    wait_for(lambda: "zorblat.txt" in indexed(assistant), "zorblat.txt indexed")
    answer = assistant.ask(question)
    assert not answer.abstained and "Quenton" in answer.text
    assert [c.doc_id for c in answer.citations] == ["zorblat.txt"]
    assert "1 added" in watcher.status

    (assistant.cfg.seeds_dir / "zorblat.txt").unlink()
    wait_for(lambda: "zorblat.txt" not in indexed(assistant), "zorblat.txt dropped")
    answer = assistant.ask(question)
    assert answer.abstained and "zorblat.txt" not in {c.doc_id for c in answer.citations}
    assert "1 removed" in watcher.status


def test_a_burst_of_changes_makes_one_rebuild_and_quiet_makes_none(watched):
    assistant, watcher = watched
    before = watcher.rebuilds
    for i in range(5):
        (assistant.cfg.seeds_dir / f"note-{i}.md").write_text(
            f"# Note {i}\n\nThe quarterly note number {i} lists the harbour repairs.",
            encoding="utf-8",
        )
    wait_for(lambda: {f"note-{i}.md" for i in range(5)} <= indexed(assistant), "5 notes")
    assert watcher.rebuilds == before + 1 and "5 added" in watcher.status
    time.sleep(3 * DELAY_S)  # the rebuild read the files: reading is not a change
    assert watcher.rebuilds == before + 1
    # Hidden and temporary files are not documents: they start no rebuild.
    (assistant.cfg.seeds_dir / ".draft.txt").write_text("x", encoding="utf-8")
    (assistant.cfg.seeds_dir / "note.txt~").write_text("x", encoding="utf-8")
    time.sleep(3 * DELAY_S)
    assert watcher.rebuilds == before + 1


def test_questions_use_the_old_index_while_the_rebuild_runs(cfg):
    embedder = GatedEmbedder("zorblat")
    assistant = Assistant(cfg, embedder, ScriptedGenerator(reply))
    watcher = SeedsWatcher(assistant, delay_s=DELAY_S)
    watcher.start()
    try:
        wait_for(lambda: watcher.rebuilds >= 1, "the first check")
        (cfg.seeds_dir / "zorblat.txt").write_text(ZORBLAT, encoding="utf-8")
        assert embedder.waiting.wait(DEADLINE_S)
        assert watcher.status == "Updating the index: 1 change (zorblat.txt)…"
        answer = assistant.ask("When is the rare earth deal due?")  # the old index answers
        assert answer.passages and "zorblat.txt" not in indexed(assistant)
        embedder.gate.set()
        wait_for(lambda: "zorblat.txt" in indexed(assistant), "zorblat.txt swapped in")
        assert watcher.status.startswith("Index updated at") and "1 added" in watcher.status
    finally:
        embedder.gate.set()
        watcher.stop()


def test_a_change_during_another_build_is_indexed_after_it(watched, monkeypatch):
    monkeypatch.setattr(watch, "BUSY_RETRY_S", 0.1)
    assistant, watcher = watched
    with build_lock(assistant.cfg.index_dir):  # the window's Rebuild button, say
        (assistant.cfg.seeds_dir / "zorblat.txt").write_text(ZORBLAT, encoding="utf-8")
        wait_for(lambda: "Another index build is running" in watcher.status, "it waits")
    wait_for(lambda: "zorblat.txt" in indexed(assistant), "zorblat.txt indexed after")


def test_the_window_shows_the_watchers_line(cfg):
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))
    demo = ui.build_app(assistant, cfg, watch_status=lambda: "Updating the index: [x](y)…")
    blocks = demo.blocks.values()
    [line] = [b for b in blocks if getattr(b, "elem_id", None) == "watch-status"]
    assert "Updating the index" in line.value and "[x](y)" not in line.value  # text, no link
    assert any(isinstance(b, gr.Timer) for b in blocks)
    assert not any(isinstance(b, gr.Timer) for b in ui.build_app(assistant, cfg).blocks.values())


def test_the_documents_tab_follows_an_index_the_watcher_rebuilt(cfg):
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))
    demo = ui.build_app(assistant, cfg, watch_status=lambda: "Index updated")
    [tick] = [f.fn for f in demo.fns.values() if getattr(f.fn, "__name__", "") == "on_tick"]

    def unchanged(update) -> bool:  # gr.skip(): the component keeps what it shows
        return update == gr.skip()

    shown = str(current_version(cfg.index_dir))
    line, same, *tab = tick(shown)
    assert line == "Index updated" and same == shown and all(map(unchanged, tab))
    (cfg.seeds_dir / "zorblat.txt").write_text(ZORBLAT, encoding="utf-8")
    assistant.rebuild()  # as the watcher does, behind the page's back
    _, newer, docs, choices, _ = tick(shown)
    assert newer != shown and "Zorblat festival notes" in docs
    assert "zorblat.txt" in str(choices["choices"])
    assert all(map(unchanged, tick(newer)[2:]))  # the next poll leaves the tab as it is


@pytest.mark.parametrize("watch", [True, False])
def test_serve_starts_the_watcher_unless_turned_off(cfg, fake_models, monkeypatch, watch):
    monkeypatch.setenv("ASSISTANT_WATCH_SEEDS", str(watch))
    seen = {}

    def launch(self, **kwargs):
        seen["threads"] = {t.name for t in threading.enumerate()}

    monkeypatch.setattr(gr.Blocks, "launch", launch)
    cli.serve(Config.from_env())
    assert ("seeds-watcher" in seen["threads"]) is watch
    assert "seeds-watcher" not in {t.name for t in threading.enumerate()}  # stopped on exit
