"""The chat window: a Gradio Blocks app with a chat panel, a sources panel and a documents tab.

`build_app(assistant, cfg)` builds the Blocks without launching them (server.launch does); the
handlers are plain functions that tests call directly: chat.respond for a chat turn, and here
add_documents, delete_documents, rebuild_index, document_view and mark_answer. The HTML comes
from `render`, escaped: a document's markup is shown, never run, and the chat shows it as HTML,
never as Markdown. window.css and window.js style the page and carry its few scripts (theme
switch, copy, marker clicks, the document view).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from .chat import StopSignals, is_last, respond
from .config import Config
from .errors import AssistantError, explain
from .feedback import save_verdict
from .indexing import BuildBusyError
from .ingest import SUFFIXES
from .library import open_document, remove_documents, save_uploads, seed_files
from .render import (
    ADD_DOCUMENTS_HELP,
    HEADER,
    build_report,
    escape_markdown,
    passage_choices,
    passage_quotes,
    plural,
    render_document,
    render_documents,
    render_note,
    render_sources,
)
from .schema import Answer, IndexedDocument
from .store import current_version

if TYPE_CHECKING:
    from gradio.components.chatbot import ExampleMessage

    from .indexing import BuildReport
    from .rag import Assistant

Progress = Callable[[float, str], None]

# Chat streams Gradio serves at once: one is answered, the others wait in the assistant's line,
# where they show their place; beyond this they wait in Gradio's queue.
CHAT_CONCURRENCY = 16
BUSY = "An answer is still being written: wait for it, or press Stop first."
STATUS_POLL_S = 2.0  # how often the page shows the latest background status (seeds watcher)
STOP_GRACE_S = 3.0  # after Stop, how long the stream may take to finish before it is cancelled


# --- documents ------------------------------------------------------------------------------


def rebuild_index(
    assistant: Assistant,
    progress: Progress | None = None,
    saved: Sequence[str] = (),
    refused: Sequence[tuple[str, str]] = (),
    deleted: Sequence[str] = (),
) -> str:
    """Run the incremental build; what it did (and what this step saved or deleted before it),
    or why it could not run."""
    try:
        report: BuildReport = assistant.rebuild(progress=progress)
    except Exception as e:  # noqa: BLE001 - one line for the page; a bug's traceback to the log
        lines = [f"Refused {name}: {reason}" for name, reason in refused]
        if saved:
            lines.append(f"Saved to the documents folder: {', '.join(saved)}")
        if deleted:
            lines.append(f"Deleted from the documents folder: {', '.join(deleted)}")
        if isinstance(e, BuildBusyError):
            lines.append(f"Not rebuilt: {e}")
        else:
            lines.append(f"Rebuild failed: {explain(e, 'rebuild')}")
        return "\n".join(lines)
    return build_report(report, saved, refused, deleted)


def add_documents(
    assistant: Assistant, files: Sequence[tuple[str, str]], progress: Progress | None = None
) -> str:
    """Save uploaded (name, temp path) files into the documents folder and index them: one step."""
    saved, refused = save_uploads(assistant.cfg, files)
    if not saved:
        return "\n".join(f"Refused {name}: {reason}" for name, reason in refused) or "No files."
    return rebuild_index(assistant, progress, saved=saved, refused=refused)


def delete_documents(
    assistant: Assistant, doc_ids: Sequence[str], progress: Progress | None = None
) -> str:
    """Delete documents from the folder (after the window asked) and take them out of the index."""
    deleted, refused = remove_documents(assistant.cfg, doc_ids)
    if not deleted:
        lines = [f"Not deleted {name}: {reason}" for name, reason in refused]
        return "\n".join(lines) or "No document was picked."
    return rebuild_index(assistant, progress, refused=refused, deleted=deleted)


def document_view(assistant: Assistant, answers: Sequence[Answer], request: str) -> str:
    """The whole document around passage n of answer t, for a "t-n" request from a source card
    (window.js sends it; anything after a further "-" is ignored); or why it cannot be shown."""
    try:
        turn, n = (int(part) for part in request.split("-")[:2])
    except ValueError:
        return render_note("No passage was asked for.")
    if not 1 <= turn <= len(answers):
        return render_note("The answer is still being written: open its passages when it is done.")
    answer = answers[turn - 1]
    if not 1 <= n <= len(answer.passages):
        return render_note("That answer has no such passage.")
    hit = answer.passages[n - 1]
    try:
        doc = open_document(assistant.cfg, hit.chunk.doc_id)
    except (AssistantError, OSError) as e:
        return render_note(f"The document cannot be shown: {explain(e, 'showing a document')}")
    return render_document(doc, hit, passage_quotes(answer, n))


def confirm_text(doc_ids: Sequence[str]) -> str:
    """The question asked before files are deleted, naming them (Markdown, escaped)."""
    names = ", ".join(f"**{escape_markdown(i)}**" for i in doc_ids)
    them = "it" if len(doc_ids) == 1 else "them"
    return (
        f"Delete {names} from the documents folder? This deletes the "
        f"{'file' if len(doc_ids) == 1 else 'files'} from disk and takes {them} out of the answers."
    )


def mark_answer(cfg: Config, answers: Sequence[Answer], turn: int, liked: object) -> str:
    """Save a thumb on answer `turn` (True helpful, False wrong, anything else: unmarked) as a
    line of the feedback eval set; the status line saying so, or why it could not."""
    verdict = {True: "helpful", False: "wrong"}.get(liked) if isinstance(liked, bool) else None
    try:
        count = save_verdict(cfg, answers[turn], verdict, answers[:turn])
    except Exception as e:  # noqa: BLE001 - one line for the page; a bug's traceback to the log
        return f"⚠ The mark was not saved: {escape_markdown(explain(e, 'saving feedback'))}"
    folder = escape_markdown(cfg.feedback_dir)
    done = f"Marked answer {turn + 1} {verdict}." if verdict else f"Unmarked answer {turn + 1}."
    if not count:
        return f"{done} No marked answers are left in {folder}."
    return (
        f"{done} {plural(count, 'marked answer')} in {folder}: "
        f"python -m assistant eval --set {folder} asks them again."
    )


def example_questions(title: str) -> list[str]:
    """Questions a document's title invites: those it asks itself, then what it is about.

    >>> example_questions("Talks stall. What does Kyiv expect?")
    ['What does Kyiv expect?', 'What is “Talks stall. What does Kyiv expect?” about?']
    """
    asked = [q.strip() for q in re.findall(r"[^.!?]*\?", title) if len(q.split()) >= 3]
    short = title if len(title) <= 60 else title[:60].rsplit(" ", 1)[0] + "…"
    return [*asked, f"What is “{short}” about?"]


def examples_for(documents: Sequence[IndexedDocument], n: int = 3) -> list[str]:
    """Example questions for the welcome screen, from the titles of the newest documents."""
    newest = sorted(documents, key=lambda d: (d.get("file_date") or "", d["id"]), reverse=True)
    per_document = [example_questions(d.get("title") or d["id"]) for d in newest[:n]]
    out: list[str] = []
    for round_ in range(max((len(q) for q in per_document), default=0)):
        out += [qs[round_] for qs in per_document if round_ < len(qs) and qs[round_] not in out]
    return out[:n]


# --- the app ------------------------------------------------------------------------------


def _chat_view(assistant: Assistant) -> tuple[str, list[ExampleMessage] | None, str]:
    """(chat placeholder, examples, index banner) for the current index."""
    documents = assistant.documents()
    banner = ""
    if assistant.index_error:
        banner = f"⚠ The index could not be loaded: {escape_markdown(assistant.index_error)}"
    if not documents:
        return ADD_DOCUMENTS_HELP, None, banner
    placeholder = (
        f"Ask about your {len(documents)} document{'s' if len(documents) != 1 else ''}. "
        "Answers cite passages like [1]; click a marker to see the passage."
    )
    return placeholder, [{"text": q} for q in examples_for(documents)], banner


def build_app(
    assistant: Assistant, cfg: Config, watch_status: Callable[[], str] | None = None
) -> gr.Blocks:
    """The Gradio Blocks: chat + sources tab, documents tab. Nothing is launched here.

    `watch_status` (the seeds watcher's) gives a line shown under the title, polled every few
    seconds; at the same poll the documents tab follows an index the watcher rebuilt.
    """
    stops = StopSignals()
    placeholder, examples, banner = _chat_view(assistant)

    with gr.Blocks(title="Document assistant", analytics_enabled=False) as demo:
        gr.HTML(HEADER, elem_id="header-row", padding=False)
        index_banner = gr.Markdown(banner, visible=bool(banner))
        if watch_status is not None:
            watch_line = gr.Markdown(escape_markdown(watch_status()), elem_id="watch-status")
            timer = gr.Timer(STATUS_POLL_S)
            # The index version the documents tab shows (a page loads the current one).
            shown_version = gr.State(str(current_version(cfg.index_dir)))
        with gr.Tab("Chat"):
            # The conversation and its sources side by side (stacked on a narrow screen, where
            # both are shorter, so the sources sit between the chat and the question box).
            with gr.Row(elem_id="chat-row"):
                with gr.Column(scale=3, min_width=320):
                    chatbot = gr.Chatbot(
                        label="Conversation",
                        height=520,
                        placeholder=placeholder,
                        examples=examples,
                        sanitize_html=True,
                        allow_tags=False,
                        render_markdown=False,  # answers are escaped HTML: ![x](url) is text
                        latex_delimiters=[],
                        feedback_options=("Like", "Dislike"),  # helpful / wrong
                        buttons=[],  # its copy would copy the HTML: answers carry their own
                        elem_id="chat",
                    )
                with gr.Column(scale=2, min_width=320, elem_id="sources-column"):
                    gr.Markdown("### Sources", elem_id="sources-heading")
                    selector = gr.Dropdown(
                        label="Show passage",
                        choices=[],
                        value=None,
                        interactive=True,
                        elem_id="show-passage",
                    )
                    sources = gr.HTML(render_sources([]), elem_id="sources")
            # "Show in document" on a source card: window.js writes "turn-n-nonce" into the
            # hidden box (the nonce makes every request a change).
            doc_request = gr.Textbox(visible="hidden", elem_id="doc-request")
            with gr.Group(visible=False, elem_id="doc-view-box") as doc_box:
                close_doc = gr.Button("Close", size="sm", elem_id="doc-close")
                doc_view = gr.HTML(elem_id="doc-view")
            with gr.Row(elem_id="ask-row"):
                question = gr.Textbox(
                    placeholder="Ask a question about your documents…",
                    show_label=False,
                    lines=1,
                    max_lines=6,
                    scale=6,
                    min_width=240,
                    elem_id="question",
                )
                buttons: dict[str, Any] = dict(scale=0, min_width=116)
                send = gr.Button("Send", variant="primary", elem_id="send", **buttons)
                stop = gr.Button(
                    "Stop", variant="stop", interactive=False, elem_id="stop", **buttons
                )
                new_chat = gr.Button("New chat", elem_id="new-chat", **buttons)
            status = gr.Markdown("", elem_id="status")
        with gr.Tab("Documents"):
            documents_html = gr.HTML(render_documents(assistant.documents()), elem_id="documents")
            with gr.Row():
                with gr.Column():
                    uploads = gr.File(
                        label=f"Add documents: drop files here ({' '.join(SUFFIXES)}); "
                        "they are indexed at once",
                        file_count="multiple",
                        file_types=list(SUFFIXES),
                        type="filepath",
                        elem_id="upload",
                    )
                with gr.Column():
                    to_remove = gr.Dropdown(
                        label="Remove documents",
                        choices=seed_files(cfg),
                        multiselect=True,
                        elem_id="remove-select",
                    )
                    remove = gr.Button("Remove…", variant="stop", elem_id="remove")
                    with gr.Group(visible=False, elem_id="confirm-remove") as confirm_box:
                        confirm_question = gr.Markdown(elem_id="confirm-text")
                        with gr.Row():
                            confirm = gr.Button(
                                "Delete from disk", variant="stop", elem_id="confirm-delete"
                            )
                            cancel = gr.Button("Cancel", elem_id="cancel-delete")
            rebuild = gr.Button(
                "Rebuild index (after changing the folder by hand)", elem_id="rebuild"
            )
            doc_status = gr.Textbox(
                label="Status", interactive=False, lines=4, elem_id="doc-status"
            )
        answers = gr.State([])
        bubbles = gr.State({})  # chat message index -> index in answers, for the thumbs

        def on_ask(message, history, past, shown_answers, request: gr.Request):
            session = getattr(request, "session_hash", None) or "anonymous"
            skip = gr.skip()
            if stops.busy(session):  # Enter pressed while Send is off
                yield (message, skip, skip, BUSY, skip, skip, skip, skip, skip)
                return
            event = stops.start(session)
            shown = -1
            at = dict(shown_answers or {})
            try:
                updates = respond(assistant, message, history, past, event)
                for i, (hist, src, status_line, new) in enumerate(updates):
                    # The selector changes only with the answers, so a choice survives the ticks.
                    selector_update = _selector_update(new) if len(new) != shown else skip
                    shown = len(new)
                    if is_last(status_line, new, past or ()):  # Send back on, the thumbs mapped
                        if len(new) > len(past or ()):
                            at[len(hist) - 1] = len(new) - 1
                        buttons, mapped = _busy_buttons(False), at
                    else:
                        buttons, mapped = _busy_buttons(True) if i == 0 else (skip, skip), skip
                    yield ("", hist, src, status_line, new, selector_update, *buttons, mapped)
            finally:
                event.set()  # also when the stream is cancelled or the browser leaves
                stops.finish(session, event)

        def on_stop(request: gr.Request):
            session = getattr(request, "session_hash", None) or "anonymous"
            stops.stop(session, wait_s=STOP_GRACE_S)
            return _busy_buttons(False)

        def on_example(evt: gr.SelectData):
            value = evt.value if isinstance(evt.value, dict) else {}
            return value.get("text", "")

        def on_select(past, n):
            return render_sources(past, int(n) if n else None)

        def on_new_chat(request: gr.Request):
            stops.stop(getattr(request, "session_hash", None) or "anonymous")
            selector_update = gr.update(choices=[], value=None)
            return ([], render_sources([]), "", [], selector_update, *_busy_buttons(False), {})

        def on_feedback(past, shown_answers, evt: gr.LikeData):
            index = evt.index if isinstance(evt.index, int) else None
            turn = (shown_answers or {}).get(index)
            if turn is None or turn >= len(past or ()):
                return "Only a finished answer can be marked helpful or wrong."
            return mark_answer(cfg, past, turn, evt.liked)

        def on_upload(files, progress=gr.Progress()):  # noqa: B008 - Gradio's injection
            pairs = [
                (getattr(f, "orig_name", None) or Path(str(f)).name, str(f)) for f in files or []
            ]
            text = add_documents(assistant, pairs, lambda f, m: progress(f, desc=m))
            return (text, None, *_refresh())

        def on_ask_remove(ids):
            if not ids:
                return "Pick the documents to remove first.", gr.update(visible=False), ""
            return gr.skip(), gr.update(visible=True), confirm_text(ids)

        def on_confirm_remove(ids, progress=gr.Progress()):  # noqa: B008
            text = delete_documents(assistant, ids or [], lambda f, m: progress(f, desc=m))
            return (text, gr.update(visible=False), *_refresh())

        def on_rebuild(progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
            text = rebuild_index(assistant, lambda f, m: progress(f, desc=m))
            return (text, *_refresh())

        def _refresh():
            ph, ex, ban = _chat_view(assistant)
            return (
                render_documents(assistant.documents()),
                gr.update(choices=seed_files(cfg), value=[]),
                gr.update(placeholder=ph, examples=ex),
                gr.update(value=ban, visible=bool(ban)),
            )

        ask_inputs = [question, chatbot, answers, bubbles]
        ask_outputs = [question, chatbot, sources, status, answers, selector, send, stop, bubbles]
        ask: dict[str, Any] = dict(
            fn=on_ask,
            inputs=ask_inputs,
            outputs=ask_outputs,
            concurrency_limit=CHAT_CONCURRENCY,
            concurrency_id="chat",
            show_progress="hidden",
        )
        submit_event = question.submit(**ask)
        click_event = send.click(**ask)
        example_event = chatbot.example_select(on_example, None, question).then(**ask)
        chats = [submit_event, click_event, example_event]
        stop.click(on_stop, None, [send, stop], concurrency_limit=None, queue=False).then(
            None, None, None, cancels=chats
        )
        for reset in (new_chat.click, chatbot.clear):  # the button and the chat's bin icon
            reset(
                on_new_chat,
                None,
                [chatbot, sources, status, answers, selector, send, stop, bubbles],
                cancels=chats,
                concurrency_limit=None,
                queue=False,
            )
        # .input, not .change: the stream resets the selector, and a change event it fired read
        # the answers before the stream stored them, blanking the panel it had just filled.
        selector.input(on_select, [answers, selector], sources, queue=False)
        chatbot.like(on_feedback, [answers, bubbles], status, queue=False)
        doc_request.change(
            lambda past, key: (gr.update(visible=True), document_view(assistant, past, key)),
            [answers, doc_request],
            [doc_box, doc_view],
            queue=False,
        ).then(None, js="() => { showDocumentPassage(); }")
        close_doc.click(lambda: gr.update(visible=False), None, doc_box, queue=False)
        after_index = [documents_html, to_remove, chatbot, index_banner]
        indexing: dict[str, Any] = dict(concurrency_limit=1, concurrency_id="rebuild")
        uploads.upload(on_upload, uploads, [doc_status, uploads, *after_index], **indexing)
        remove.click(
            on_ask_remove, to_remove, [doc_status, confirm_box, confirm_question], queue=False
        )
        cancel.click(lambda: gr.update(visible=False), None, confirm_box, queue=False)
        confirm.click(
            on_confirm_remove, to_remove, [doc_status, confirm_box, *after_index], **indexing
        )
        rebuild.click(on_rebuild, None, [doc_status, *after_index], **indexing)
        if watch_status is not None:

            def on_tick(shown: str):
                """The watcher's line; the documents tab too when another index is current."""
                line = escape_markdown(watch_status())
                version = str(current_version(cfg.index_dir))
                if version == shown:
                    return line, shown, gr.skip(), gr.skip(), gr.skip()
                docs, choices, _, ban = _refresh()
                return line, version, docs, choices, ban

            timer.tick(
                on_tick,
                shown_version,
                [watch_line, shown_version, documents_html, to_remove, index_banner],
                queue=False,
                show_progress="hidden",
                api_visibility="undocumented",
            )
        demo.load(
            _refresh,
            None,
            [documents_html, to_remove, chatbot, index_banner],
            js="() => { applyStoredTheme(); }",
        )
    return demo


def _busy_buttons(busy: bool) -> tuple[Any, Any]:
    """(Send, Stop) updates: while an answer is written only Stop can be pressed."""
    return gr.update(interactive=not busy), gr.update(interactive=busy)


def _selector_update(answers: Sequence[Answer]) -> Any:
    choices = passage_choices(answers[-1] if answers else None)
    return gr.update(choices=choices, value=None)


def page() -> dict[str, Any]:
    """What launch() takes to style the page: window.css, window.js (theme switch, copy,
    marker clicks) and a theme with system fonts (the page loads nothing from the internet)."""
    here = Path(__file__).parent
    css = (here / "window.css").read_text(encoding="utf-8")
    script = (here / "window.js").read_text(encoding="utf-8")
    theme = gr.themes.Default(
        font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
    )
    return {"css": css, "head": f"<script>\n{script}</script>\n", "theme": theme}
