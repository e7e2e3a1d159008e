"""The chat window's handlers, with a hashing embedder and scripted replies (no model weights)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
from fakes import HashingEmbedder, ScriptedGenerator, SilentGenerator, passage_number

import app
from assistant import chat, ingest, library, render, server, ui
from assistant.config import Config, ConfigError
from assistant.generation import GeneratorError
from assistant.rag import Assistant, build_index
from assistant.schema import Answer

SEEDS = Path(__file__).parent.parent / "seeds"
ARTICLE = "rubio-us-mediation-russia-ukraine-talks.txt"
EVIL_NAME = "<img src=x onerror=alert(1)>.txt"
EVIL_TEXT = (
    "<script>alert('pwned')</script> Launch codes\n\n"
    "The vault <b onmouseover=alert(2)>launch code</b> is 4471 and it opens the northern door."
)


pytestmark = pytest.mark.cfg(max_document_bytes=5000)  # the upload test sends 6,000 bytes


def cite(*sentences: tuple[str, str]):
    """A scripted reply of sentences, each citing the passage that holds its needle."""
    return lambda messages: " ".join(
        f"{text} [{passage_number(messages, needle)}]." for text, needle in sentences
    )


def make(cfg: Config, reply) -> Assistant:
    return Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))


def run(assistant, message, history=(), answers=(), stop=None):
    return list(chat.respond(assistant, message, list(history), list(answers), stop))


DEAL = ("The goal is to finalize the deal by April 26", "April 26")


# --- chat ---------------------------------------------------------------------------------


def test_chat_streams_tokens_then_shows_cited_passage(cfg):
    updates = run(make(cfg, cite(DEAL)), "By what date is the rare earth deal meant to be final?")
    bubbles = [h[-1]["content"] for h, _, _, _ in updates if h and h[-1]["role"] == "assistant"]
    lengths = [len(b) for b in bubbles]
    assert len(set(lengths)) >= 5, "the answer should grow token by token"

    history, sources, status, answers = updates[-1]
    assert [m["role"] for m in history] == ["user", "assistant"]
    answer = answers[-1]
    assert not answer.abstained and answer.citations
    n = answer.citations[0].n
    final = history[-1]["content"]
    assert "April 26" in final
    assert f'href="#src-1-{n}"' in final and f">[{n}]</a>" in final
    assert 'class="timings"' in final and "first token" in final
    assert f'id="src-1-{n}"' in sources
    assert (
        f"<mark{render.CITED_MARK}>The goal is to finalize the deal by April 26.</mark>" in sources
    )
    # The card's title is the article's first line, its date the file's (the text has none).
    assert "US Secretary of State Marco Rubio has questioned" in sources
    assert "file date 2" in sources and "paragraph" in sources
    # The timings are folded under the answer, not repeated in the status line.
    assert '<details class="timings"><summary>Timings</summary>retrieval' in final
    assert "total" in final and "tokens/s" in final and status == ""


def test_copy_text_is_rendered_from_the_answer_with_its_sources(cfg):
    history, _, _, answers = run(make(cfg, cite(DEAL)), "When is the rare earth deal final?")[-1]
    answer = answers[-1]
    n = answer.citations[0].n
    text = render.answer_markdown(answer)
    body, sources = text.split("\n\nSources:\n")
    assert body == f"The goal is to finalize the deal by April 26 [{n}]."
    title = answer.passages[n - 1].chunk.title
    assert sources.startswith(f"- [{n}] {title} (file date 2")
    assert f"{ARTICLE}, paragraph" in sources and "<" not in text
    # The bubble carries it, escaped, beside a Copy link (HEAD's script copies it).
    bubble = history[-1]["content"]
    assert 'href="#copy-1"' in bubble
    assert f'<pre class="copy-text" hidden>{render.escape(text)}</pre>' in bubble
    refusal = Answer("Q?", "The documents do not contain the answer.", True, answer.passages)
    assert "Closest passages:\n- [1] " in render.answer_markdown(refusal)


@pytest.mark.parametrize(
    "message, reply",
    [
        ("When is the rare earth deal final?", cite(DEAL)),  # an answer
        ("   ", cite(DEAL)),  # no question
        ("?" * 3000, cite(DEAL)),  # a question it cannot take
        ("When is the rare earth deal final?", lambda m: 1 / 0),  # a failure
    ],
)
def test_only_the_last_update_has_a_status_or_a_new_answer(cfg, message, reply):
    """What the window relies on to turn Send back on with the last update, not after it."""
    updates = run(make(cfg, reply), message)
    assert [chat.is_last(status, new, []) for _, _, status, new in updates] == [False] * (
        len(updates) - 1
    ) + [True]


def test_evidence_is_shown_before_the_answer_and_an_unsupported_sentence_is_cut(cfg):
    reply = cite(DEAL, ("Penguins from Antarctica voted on the treaty in 1850", "April 26"))
    updates = run(make(cfg, reply), "When will the rare earth deal be final?")
    # The first update says it is looking; the next shows the evidence, marked as not yet an
    # answer, with the stage: the model is reading it.
    assert "Finding evidence in the documents" in updates[0][0][-1]["content"]
    history, sources, status, _ = updates[1]
    bubble = history[-1]["content"]
    assert "Evidence found" in bubble and "not an answer yet" in bubble and "April 26" in bubble
    assert re.search(r"Reading \d+ sentences? from \d+ passages?", bubble)
    assert 'class="pulse"' in bubble and 'class="elapsed">0 s<' in bubble
    assert 'class="context"' in sources and "For answer 1: <q>When will" in sources
    history, _, _, answers = updates[-1]
    assert [s.supported for s in answers[-1].sentences] == [True]
    final = history[-1]["content"]
    assert "April 26" in final and "Evidence found" not in final
    # The cut sentence is named, struck through in a fold, with the reason in words.
    answer_part, note = final.split('<details class="note dropped">')
    assert "Penguins" not in answer_part and "Left out 1 sentence of the model" in note
    assert (
        "<s>Penguins from Antarctica voted on the treaty in 1850.</s>: no passage states it" in note
    )
    assert "Penguins" not in render.answer_markdown(answers[-1])


def test_document_html_is_escaped_everywhere(cfg):
    (Path(cfg.seeds_dir) / EVIL_NAME).write_text(EVIL_TEXT, encoding="utf-8")
    assistant = make(cfg, cite(("The vault launch code is 4471", "4471")))
    assistant.rebuild()
    question = "What is the <b>launch code</b> of the vault?"
    history, sources, _, answers = run(assistant, question)[-1]
    assert "4471" in sources and not answers[-1].abstained
    rendered = [sources, render.render_documents(assistant.documents())]
    rendered += [m["content"] for m in history]
    for page in rendered:
        assert "<script" not in page and "<img" not in page and "<b " not in page
        assert "<b>launch" not in page
    assert "&lt;script&gt;" in sources
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in rendered[1]
    assert history[0]["content"] == "What is the &lt;b&gt;launch code&lt;/b&gt; of the vault?"


def test_follow_up_gets_plain_history(cfg):
    answer = cite(DEAL)

    def reply(messages):
        if "Follow-up" in messages[-1]["content"]:
            return "Who hinted at the rare earth minerals deal?"
        return answer(messages)

    assistant = make(cfg, reply)
    first = run(assistant, "By what date is the rare earth deal meant to be final?")[-1]
    history, _, _, answers = first
    second = run(assistant, "And who hinted at it?", history, answers)[-1]
    assert len(second[0]) == 4 and len(second[3]) == 2
    prompts = assistant.generator.prompts
    rewrite = [p for p in prompts if "Follow-up" in p[-1]["content"]]
    assert rewrite, "the follow-up should be rewritten with the conversation"
    convo = rewrite[0][-1]["content"]
    assert "By what date is the rare earth deal" in convo and "<" not in convo
    # The bubble says how the follow-up was read, while it is written and once it is done; a
    # question that stands alone does not.
    assert "Read as: Who hinted at the rare earth minerals deal?" in second[0][-1]["content"]
    streamed = run(assistant, "And who hinted at it?", history, answers)
    assert any("Read as: Who hinted" in u[0][-1]["content"] for u in streamed[:-1])
    assert "Read as" not in first[0][-1]["content"]
    # Markers of the second answer point at the second answer's cards.
    assert 'href="#src-2-' in second[0][-1]["content"]
    assert 'id="src-2-' in second[1] and "Sources of answer 1" in second[1]


def test_follow_up_history_comes_from_the_answers_not_the_page(cfg):
    """The model sees the Answers kept in state, whatever the chat shows (HTML, lists of parts)."""

    def reply(messages):
        if "Follow-up" in messages[-1]["content"]:
            return "Who hinted at the rare earth minerals deal?"
        return cite(DEAL)(messages)

    earlier = Answer("When is the deal?", "Deal by April 26 [1]. A <b> tag & more.", False)
    shown = [
        {"role": "user", "content": [{"type": "text", "text": "<i>shown</i> question"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<b>shown</b>"}]},
    ]
    assistant = make(cfg, reply)
    history, _, _, answers = run(assistant, "And who hinted at it?", shown, [earlier])[-1]
    assert len(history) == 4 and answers[0] is earlier and len(answers) == 2
    (rewrite,) = [p for p in assistant.generator.prompts if "Follow-up" in p[-1]["content"]]
    convo = rewrite[-1]["content"]
    assert "User: When is the deal?\nAssistant: Deal by April 26" in convo
    assert "shown" not in convo and "&" not in convo


def test_stop_ends_generation(cfg):
    stop = threading.Event()
    sentences = " ".join(["The goal is to finalize the deal by April 26."] * 40)
    assistant = make(cfg, lambda m: f"[{passage_number(m, 'April 26')}] {sentences}")
    updates = []
    for update in chat.respond(assistant, "When is the deal final?", [], [], stop):
        updates.append(update)
        if len(updates) == 4:
            stop.set()
    history, _, status, answers = updates[-1]
    assert len(updates) < 20
    assert status.startswith("Stopped")
    assert len(answers[-1].text) < 200 or answers[-1].abstained


def test_two_sessions_stream_at_once_and_stop_is_per_session(cfg):
    long_reply = " ".join(["The goal is to finalize the deal by April 26."] * 30)
    assistant = make(cfg, lambda m: f"[{passage_number(m, 'April 26')}] {long_reply}")
    signals = chat.StopSignals()
    results: dict[str, list] = {}

    def session(name: str, stop_after: int | None) -> None:
        event = signals.start(name)
        updates = []
        try:
            for update in chat.respond(assistant, "When is the deal final?", [], [], event):
                updates.append(update)
                if stop_after is not None and len(updates) == stop_after:
                    signals.stop(name)
        finally:
            signals.finish(name, event)
        results[name] = updates

    threads = [
        threading.Thread(target=session, args=("a", 5)),
        threading.Thread(target=session, args=("b", None)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    stopped, full = results["a"][-1], results["b"][-1]
    assert stopped[2].startswith("Stopped") and full[2] == ""
    assert full[3][-1].text.count("April 26") >= 20
    assert len(stopped[3][-1].text) < len(full[3][-1].text)


def test_progress_ticks_through_the_stages_while_the_model_is_silent(cfg, monkeypatch):
    monkeypatch.setattr(chat, "TICK_S", 0.05)
    assistant = Assistant(cfg, HashingEmbedder(), SilentGenerator(cite(DEAL), delay_s=1.2))
    updates = run(assistant, "When is the rare earth deal final?")
    bubbles = [h[-1]["content"] for h, _, _, _ in updates[:-1]]
    stages = [re.search(r'class="stage">([^<]*)<', b).group(1) for b in bubbles]
    seconds = [int(re.search(r'class="elapsed">(\d+) s<', b).group(1)) for b in bubbles]
    kinds = list(dict.fromkeys(s.split(" ")[0] for s in stages))
    assert kinds == ["Finding", "Reading", "Writing"], stages
    reading = [b for b, s in zip(bubbles, stages) if s.startswith("Reading")]
    assert len(reading) >= 10, "the clock should tick while the model is silent"
    assert seconds == sorted(seconds) and seconds[-1] >= 1
    assert 'class="progress"' not in updates[-1][0][-1]["content"]


def test_a_question_waits_its_turn_and_says_how_many_are_ahead(cfg, monkeypatch):
    monkeypatch.setattr(chat, "TICK_S", 0.05)
    line = chat.Line()
    first, second = line.join(), line.join()  # two questions already waiting
    assistant = make(cfg, cite(DEAL))
    updates = chat.respond(assistant, "When is the rare earth deal final?", [], [], None, line)
    seen = [next(updates)[0][-1]["content"] for _ in range(3)]
    assert all("Queued: 2 questions ahead of yours" in b for b in seen)
    line.leave(first)
    while "2 questions" in (bubble := next(updates)[0][-1]["content"]):
        pass
    assert "Queued: 1 question ahead of yours" in bubble
    line.leave(second)
    history, _, status, answers = list(updates)[-1]
    assert "April 26" in history[-1]["content"] and len(answers) == 1 and status == ""
    assert line.ahead(line.join()) == 0  # the answered question left the line


def test_an_api_question_being_answered_is_counted_ahead_in_the_window(cfg, monkeypatch):
    from fakes import SilentGenerator

    from assistant.api import ChatAPI, ChatRequest

    monkeypatch.setattr(chat, "TICK_S", 0.05)
    assistant = Assistant(cfg, HashingEmbedder(), SilentGenerator(cite(DEAL), 1.0))
    by_api = threading.Thread(
        target=ChatAPI(assistant)._answer,
        args=(ChatRequest("When is the deal final?"), threading.Event()),
    )
    by_api.start()
    deadline = time.monotonic() + 10
    while assistant.line.ahead(probe := assistant.line.join()) == 0:  # until the API is in
        assistant.line.leave(probe)
        assert time.monotonic() < deadline, "the API's question never joined the line"
        time.sleep(0.01)
    assistant.line.leave(probe)
    updates = chat.respond(assistant, "When is the rare earth deal final?", [], [])
    assert "Queued: 1 question ahead of yours" in next(updates)[0][-1]["content"]
    history, *_ = list(updates)[-1]
    by_api.join()
    assert "April 26" in history[-1]["content"]


def test_stop_while_queued_withdraws_the_question(cfg, monkeypatch):
    monkeypatch.setattr(chat, "TICK_S", 0.05)
    line, stop = chat.Line(), threading.Event()
    line.join()  # someone else is being answered
    updates = chat.respond(make(cfg, cite(DEAL)), "When is the deal final?", [], [], stop, line)
    assert "Queued" in next(updates)[0][-1]["content"]
    stop.set()
    history, _, status, answers = list(updates)[-1]
    assert "Stopped before the answer was started" in history[-1]["content"]
    assert answers == [] and status == "Stopped."


def test_bad_question_gives_a_readable_message(cfg):
    assistant = make(cfg, "x")
    history, _, status, answers = run(assistant, "   ")[-1]
    assert history == [] and "type a question" in status
    history, _, status, answers = run(assistant, "?" * 3000)[-1]
    assert history == [] and answers == [] and status.startswith("⚠")
    assert "Traceback" not in status


def test_failure_is_shown_without_traceback(cfg):
    def boom(messages):  # the real generators raise GeneratorError when generating fails
        raise GeneratorError("the model ran out of memory")

    history, _, status, _ = run(make(cfg, boom), "When is the rare earth deal final?")[-1]
    assert "ran out of memory" in history[-1]["content"] and "Traceback" not in status


def test_show_in_document_gives_the_whole_document_with_the_passage_marked(cfg):
    assistant = make(cfg, cite(DEAL))
    _, sources, _, answers = run(assistant, "When is the rare earth deal final?")[-1]
    n = answers[-1].citations[0].n
    assert f'href="#doc-1-{n}"' in sources and "Show in document" in sources
    view = ui.document_view(assistant, answers, f"1-{n}-1712345678")  # a nonce after the key
    article = (Path(cfg.seeds_dir) / ARTICLE).read_text(encoding="utf-8")
    first, last = article.splitlines()[0], article.strip().splitlines()[-1]
    assert render.escape(first) in view and render.escape(last[-40:]) in view  # all of it
    passage = view.split('<span class="doc-passage" id="doc-passage">')[1].split("</span>")[0]
    assert f"<mark{render.CITED_MARK}>The goal is to finalize the deal by April 26.</mark>" in (
        passage
    )
    assert "file date" in view and "paragraph" in view
    # Asked too early, for nothing, or after the file changed: it says so.
    assert "still being written" in ui.document_view(assistant, answers, f"2-{n}")
    assert "No passage" in ui.document_view(assistant, answers, "")
    (Path(cfg.seeds_dir) / ARTICLE).write_text("A new first line.\n\n" + article, "utf-8")
    changed = ui.document_view(assistant, answers, f"1-{n}")
    assert "changed since it was indexed" in changed and "doc-passage" not in changed
    (Path(cfg.seeds_dir) / ARTICLE).unlink()
    assert "no longer in the documents folder" in ui.document_view(assistant, answers, f"1-{n}")


def test_selecting_a_source_shows_that_passage(cfg):
    _, sources, _, answers = run(make(cfg, cite(DEAL)), "What about the deal and guarantees?")[-1]
    choices = render.passage_choices(answers[-1])
    # The cited passage first, then the other passages the evidence came from.
    assert choices[0][1] == answers[-1].citations[0].n and len(choices) >= 2
    n = choices[1][1]
    selected = render.render_sources(answers, n)
    assert f'class="src-card selected" id="src-1-{n}"' in selected
    assert selected.index(f'id="src-1-{n}"') < selected.index(f'id="src-1-{choices[0][1]}"')


# --- documents ----------------------------------------------------------------------------


def test_upload_is_sanitised_and_stays_in_seeds(cfg, tmp_path):
    src = tmp_path / "upload"
    src.mkdir()
    small, big, bad = src / "small.txt", src / "big.txt", src / "tool.exe"
    small.write_text("Ferries to Roscoff were cancelled on Sunday.", encoding="utf-8")
    big.write_text("x" * 6000, encoding="utf-8")
    bad.write_bytes(b"MZ")
    before = {p for p in tmp_path.rglob("*") if "seeds" not in p.parts}
    saved, refused = library.save_uploads(
        cfg,
        [
            ("../escape.txt", small),
            ("/etc/cron.d/evil.txt", small),
            ("sub/../../up.txt", small),
            ("C:\\Windows\\x.txt", small),
            ("nested/dir/file.txt", small),
            ("tool.exe", bad),
            ("big.txt", big),
            (".hidden notes.txt", small),
            ("ferries <b>.md", small),
        ],
    )
    reasons = dict(refused)
    assert "traversal" in reasons["../escape.txt"]
    assert "absolute" in reasons["/etc/cron.d/evil.txt"]
    assert "traversal" in reasons["sub/../../up.txt"]
    assert "absolute" in reasons["C:\\Windows\\x.txt"]
    assert "folder" in reasons["nested/dir/file.txt"]
    assert ".exe is not allowed" in reasons["tool.exe"]
    assert "too large" in reasons["big.txt"]
    assert saved == ["hidden notes.txt", "ferries _b_.md"]
    seeds = Path(cfg.seeds_dir)
    assert (seeds / "hidden notes.txt").read_text(encoding="utf-8").startswith("Ferries")
    assert {p for p in tmp_path.rglob("*") if "seeds" not in p.parts} == before
    assert not list(seeds.glob(".upload-*"))


def test_remove_only_inside_seeds(cfg, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me", encoding="utf-8")
    removed, refused = library.remove_documents(
        cfg, [ARTICLE, "../outside.txt", str(outside), "nope"]
    )
    assert removed == [ARTICLE]
    assert not (Path(cfg.seeds_dir) / ARTICLE).exists()
    assert outside.read_text(encoding="utf-8") == "keep me"
    assert {name for name, _ in refused} == {"../outside.txt", str(outside), "nope"}


def test_documents_tab_offers_what_the_index_reads(cfg):
    """The removal list is the scan's: files the build passes over are not offered."""
    seeds = Path(cfg.seeds_dir)
    (seeds / "README.md").write_text("# About this folder\n", encoding="utf-8")
    (seeds / "~$draft.md").write_text("An editor's lock file.", encoding="utf-8")
    (seeds / "sub").mkdir()
    (seeds / "sub" / "README.md").write_text("# Ferries\n\nRoscoff sailings.", encoding="utf-8")
    assistant = make(cfg, "x")
    assistant.rebuild()
    indexed = [d["id"] for d in assistant.documents()]
    assert indexed == [ARTICLE, "sub/README.md"]
    assert library.seed_files(cfg) == indexed
    removed, refused = library.remove_documents(cfg, ["README.md", "~$draft.md"])
    assert removed == [] and len(refused) == 2
    assert (seeds / "README.md").exists() and (seeds / "~$draft.md").exists()


def test_a_dropped_file_is_added_and_indexed_in_one_step_and_removed_the_same_way(cfg, tmp_path):
    assistant = make(cfg, cite(("Ferries between Roscoff and Plymouth were cancelled", "Roscoff")))
    assert [d["id"] for d in assistant.documents()] == [ARTICLE]
    upload, bad = tmp_path / "storm.md", tmp_path / "tool.exe"
    upload.write_text(
        "# Storm warning\n\nFerries between Roscoff and Plymouth were cancelled.", encoding="utf-8"
    )
    bad.write_bytes(b"MZ")
    steps = []
    report = ui.add_documents(
        assistant, [("storm.md", str(upload)), ("tool.exe", str(bad))], lambda f, m: steps.append(f)
    )
    # Only what happened: the refusal, what was indexed, and the totals, with plurals right.
    assert report.splitlines() == [
        "Refused tool.exe: file type .exe is not allowed (allowed: "
        + " ".join(ingest.SUFFIXES)
        + ")",
        "Indexed: storm.md",
        f"2 documents, {sum(d['passages'] for d in assistant.documents())} passages in the index.",
    ]
    assert steps and steps[-1] == 1.0
    assert [d["id"] for d in assistant.documents()] == [ARTICLE, "storm.md"]
    table = render.render_documents(assistant.documents())
    assert "Storm warning" in table and "US Secretary of State" in table and "file date" in table
    assert "2 documents indexed." in table
    assert "1 document indexed." in render.render_documents(assistant.documents()[:1])
    _, sources, _, _ = run(assistant, "Which ferries were cancelled?")[-1]
    assert "Roscoff" in sources
    # The same file again: nothing to index, and the report says just that.
    again = ui.add_documents(assistant, [("storm.md", str(upload))])
    assert again.splitlines()[0] == "Already indexed with the same content: storm.md"

    assert "**storm.md**" in ui.confirm_text(["storm.md"]) and "from disk" in ui.confirm_text(["x"])
    report = ui.delete_documents(assistant, ["storm.md"])
    assert report.splitlines()[:2] == [
        "Deleted from the documents folder: storm.md",
        "Out of the index: storm.md",
    ]
    assert report.splitlines()[-1].startswith("1 document, ")
    assert [d["id"] for d in assistant.documents()] == [ARTICLE]
    assert ui.rebuild_index(assistant).startswith("Nothing changed")


def test_rebuild_while_another_runs_says_so(cfg):
    from assistant.indexing import build_lock

    assistant = make(cfg, "x")
    with build_lock(Path(cfg.index_dir)):
        message = ui.rebuild_index(assistant)
    assert message.startswith("Not rebuilt") and "another build" in message


def test_empty_index_shows_how_to_add_documents(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    c = Config(seeds_dir=seeds, index_dir=tmp_path / "index", cache_dir=tmp_path / "cache")
    build_index(c, HashingEmbedder())
    assistant = make(c, "x")
    history, _, _, _ = run(assistant, "Anything?")[-1]
    assert "Documents" in history[-1]["content"] and "indexed at once" in history[-1]["content"]
    assert "No documents are indexed yet" in render.render_documents([])
    placeholder, examples, banner = ui._chat_view(assistant)
    assert placeholder == render.ADD_DOCUMENTS_HELP and examples is None and banner == ""
    assert isinstance(ui.build_app(assistant, c), gr.Blocks)


def test_examples_come_from_the_titles_of_the_newest_documents(cfg, tmp_path):
    assistant = make(cfg, "x")
    _, examples, _ = ui._chat_view(assistant)
    # The shipped article's title asks a question of its own.
    assert examples[0] == {"text": "What does Washington expect from Moscow and Kiev?"}
    upload = tmp_path / "ferries.md"
    upload.write_text("# Ferry timetable for the winter\n\nSailings twice a day.", "utf-8")
    later = time.time() + 86400 * 2  # a day newer than the article, whatever the clock says
    os.utime(upload, (later, later))
    shutil.copy2(upload, Path(cfg.seeds_dir) / "ferries.md")
    assistant.rebuild()
    _, examples, _ = ui._chat_view(assistant)
    assert [e["text"] for e in examples][:2] == [
        "What is “Ferry timetable for the winter” about?",
        "What does Washington expect from Moscow and Kiev?",
    ]


# --- serving ------------------------------------------------------------------------------


def test_auth_is_required_off_loopback(tmp_path):
    assert server.resolve_auth(Config(host="127.0.0.1"), env={}) is None
    assert all(server.is_loopback(h) for h in ("localhost", "::1", "127.0.0.2"))
    assert not server.is_loopback("0.0.0.0") and not server.is_loopback("example.org")
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0 without a login"):
        server.resolve_auth(Config(host="0.0.0.0"), env={})
    env = {"ASSISTANT_USERNAME": "ann", "ASSISTANT_PASSWORD": "s3cret"}
    assert server.resolve_auth(Config(host="0.0.0.0"), env=env) == [("ann", "s3cret")]
    with pytest.raises(ConfigError, match="both"):
        server.resolve_auth(Config(host="0.0.0.0"), env={"ASSISTANT_USERNAME": "ann"})
    logins = tmp_path / "logins"
    logins.write_text("# who may log in\nbob:pa:ss\n\ncarol:x\n", encoding="utf-8")
    env = {"ASSISTANT_AUTH_FILE": str(logins)}
    assert server.resolve_auth(Config(host="192.168.1.5"), env=env) == [
        ("bob", "pa:ss"),
        ("carol", "x"),
    ]
    logins.write_text("bob\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1"):
        server.resolve_auth(Config(host="0.0.0.0"), env=env)


def test_app_refuses_public_host_without_login(monkeypatch, capsys):
    for name in ("ASSISTANT_USERNAME", "ASSISTANT_PASSWORD", "ASSISTANT_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert app.main(["--host", "0.0.0.0", "--port", "7999"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to serve on 0.0.0.0") and "Traceback" not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_serves_chat_over_http(cfg):
    """The wiring: launch the Blocks on loopback and ask through the HTTP API."""
    from gradio_client import Client

    assistant = make(cfg, cite(DEAL))
    served = Config(**{**cfg.__dict__, "port": _free_port()})
    demo = ui.build_app(assistant, served)
    server.launch(demo, served, None, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{served.port}/", verbose=False)
        result = client.predict("When is the rare earth deal final?", [], api_name="/on_ask")
        question, history, sources, status = result[:4]
        assert question == ""
        assert "April 26" in str(history[-1]["content"])
        assert "<mark " in sources and "total" in str(history[-1]["content"]) and status == ""
    finally:
        demo.close()
