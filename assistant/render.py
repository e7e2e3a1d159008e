"""HTML for the chat window, from the schema objects: pure functions to strings, no Gradio.

Everything that comes from a document or a file name goes through `escape` before it reaches
the page, and answers are escaped HTML, never Markdown, so a planted `![x](http://...)` is
text, not an image the browser fetches (the page's Content-Security-Policy backs this up).
The classes and ids written here (`src-card`, `src-T-N`, `evidence`, `timings`, ...) are what
window.css, window.js and the browser tests select on.

Example:
    >>> format_timings({"retrieval_ms": 12.0, "total_ms": 2400.0})
    'retrieval 12 ms · total 2.4 s'
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .citations import MARKER, find_quote, marker_numbers, markers_in
from .ingest import SUFFIXES
from .schema import Answer, Document, Hit, IndexedDocument

if TYPE_CHECKING:
    from .indexing import BuildReport

ADD_DOCUMENTS_HELP = (  # HTML: shown as the chat's placeholder and as a reply
    "<b>No documents are indexed yet.</b> Open the <b>Documents</b> tab and drop files there "
    f"({', '.join(SUFFIXES)}): they are indexed at once. Or copy files into the seeds folder "
    "and run <code>python -m assistant index</code>."
)
HEADER = (  # the page's title line, with the theme switch (window.js labels and flips it)
    '<div id="header"><div><h2>Document assistant</h2><p>Answers come only from your '
    "documents, with [n] citations. Everything runs on this machine.</p></div>"
    '<button id="theme-switch" type="button" aria-pressed="false" '
    'title="Switch between the light and the dark theme">Theme</button></div>'
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_MD_PUNCT = re.compile(r"[\\`*_\[\]()!<>:&|~]")  # what starts Markdown links, images, HTML


# --- text ----------------------------------------------------------------------------------


def plural(n: int, noun: str) -> str:
    """The count with its noun: 1 document, 2 documents."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def shown(text: object) -> str:
    """text Gradio can send: lone surrogates (undecodable file-name bytes) shown as \\xNN."""
    # the same text as os.fsencode(name).decode("utf-8", "backslashreplace") for a file name
    return _SURROGATE.sub(_escape_surrogate, "" if text is None else str(text))


def _escape_surrogate(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def escape(text: object) -> str:
    """text as HTML that shows it literally (see shown() for file-name bytes)."""
    return html.escape(shown(text), quote=True)


def escape_markdown(text: object) -> str:
    """text shown literally by gr.Markdown: link, image and HTML syntax backslash-escaped."""
    return _MD_PUNCT.sub(r"\\\g<0>", shown(text))


# --- answers -------------------------------------------------------------------------------


def _link_markers(escaped: str, turn: int, n_passages: int) -> str:
    """Turn [n] markers of already escaped text into links to the passage cards of this turn."""

    def link(match: re.Match) -> str:
        nums = marker_numbers(match)
        if not all(1 <= n <= n_passages for n in nums):
            return match.group(0)
        return "".join(
            f'<a class="answer-marker" href="#src-{turn}-{n}" title="show passage {n}">[{n}]</a>'
            for n in nums
        )

    return MARKER.sub(link, escaped)


def without_markers(text: str) -> str:
    """text with its [n] markers taken out, and the space they leave before punctuation."""
    return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(MARKER.sub(" ", text).split()))


def format_timings(timings: dict[str, float]) -> str:
    """One line: retrieval, evidence, first token, total, tokens per second (what is known)."""

    def dur(ms: float) -> str:
        return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"

    parts = []
    if "retrieval_ms" in timings:
        parts.append(f"retrieval {dur(timings['retrieval_ms'])}")
    if "evidence_ms" in timings:
        parts.append(f"evidence {dur(timings['evidence_ms'])}")
    if "first_token_ms" in timings:
        parts.append(f"first token {dur(timings['first_token_ms'])}")
    if "total_ms" in timings:
        parts.append(f"total {dur(timings['total_ms'])}")
    if timings.get("tokens_per_s"):
        parts.append(f"{timings['tokens_per_s']:.1f} tokens/s")
    return " · ".join(parts)


def format_elapsed(seconds: float) -> str:
    """Whole seconds as a counter reads them: '7 s', '1 min 05 s'."""
    whole = max(0, int(seconds))
    return f"{whole} s" if whole < 60 else f"{whole // 60} min {whole % 60:02d} s"


def progress_label(answer: Answer | None, ahead: int = 0, stopping: bool = False) -> str:
    """The stage an answer in progress is in, in words: queued, finding evidence, reading, writing.

    >>> progress_label(None, ahead=2)
    'Queued: 2 questions ahead of yours'
    """
    if stopping:
        return "Stopping…"
    if ahead:
        return f"Queued: {plural(ahead, 'question')} ahead of yours"
    if answer is None or not answer.evidence:
        return "Finding evidence in the documents"
    if not answer.text:
        passages = len({u.passage for u in answer.evidence})
        return (
            f"Reading {plural(len(answer.evidence), 'sentence')} from {plural(passages, 'passage')}"
        )
    return "Writing the answer"


def render_progress(label: str, elapsed_s: float) -> str:
    """The live line at the top of an answer in progress: a moving dot, the stage, the time."""
    return (
        '<div class="progress" role="status"><span class="pulse" aria-hidden="true"></span>'
        f'<span class="stage">{escape(label)}</span> · '
        f'<span class="elapsed">{format_elapsed(elapsed_s)}</span></div>'
    )


def render_answer(answer: Answer | None, turn: int, progress: str = "") -> str:
    """The chat bubble of an answer.

    While it is being written (`progress`: render_progress's line) the bubble shows that line,
    the text so far and the evidence the model is reading; once final, the checked text with
    [n] links and its timings folded in a details toggle.
    """
    if answer is None:
        return progress
    body = _link_markers(escape(answer.text), turn, len(answer.passages))
    body = body.replace("\n", "<br>")  # the chat shows HTML, not Markdown (render_markdown=False)
    read = answer.standalone_question
    if read and read != answer.question:
        # A follow-up, as the assistant understood it from the conversation: checkable too.
        body = f'<p class="note read-as">Read as: {escape(read)}</p>' + body
    if progress:
        body = progress + body
        if answer.evidence:
            items = "".join(
                f"<li>{_link_markers(escape(f'[{u.passage}]'), turn, len(answer.passages))} "
                f"{escape(' '.join(u.text.split()))}</li>"
                for u in answer.evidence
            )
            body += (
                '<div class="evidence"><b>Evidence found</b> (not an answer yet: the model is '
                f"reading these sentences)<ol>{items}</ol></div>"
            )
        return body
    if answer.abstained and answer.passages:
        body += '<p class="note">The closest passages are shown under Sources.</p>'
    if answer.dropped:
        items = "".join(
            f"<li><s>{escape(without_markers(s.text))}</s>: {escape(s.reason)}</li>"
            for s in answer.dropped
        )
        body += (
            '<details class="note dropped"><summary>⚠ Left out '
            f"{plural(len(answer.dropped), 'sentence')} of the model's reply</summary>"
            f"<ul>{items}</ul></details>"
        )
    tools = (
        f'<a class="tool copy" href="#copy-{turn}" role="button" '
        'title="Copy the answer and its sources as text">Copy</a>'
    )
    if answer.timings:
        tools += (
            '<details class="timings"><summary>Timings</summary>'
            f"{escape(format_timings(answer.timings))}</details>"
        )
    # The clipboard's text, rendered from the Answer; window.js copies it on "Copy".
    plain = f'<pre class="copy-text" hidden>{escape(answer_markdown(answer))}</pre>'
    return f'<div class="answer">{body}<div class="tools">{tools}</div>{plain}</div>'


def source_line(hit: Hit) -> str:
    """One passage as a line of a source list: title, date, file and place."""
    c = hit.chunk
    dated = date_label(c.date, c.file_date)
    return f"{c.title or c.doc_id}{f' ({dated})' if dated else ''}, {c.doc_id}, {_where(hit)}"


def answer_markdown(answer: Answer) -> str:
    """The answer as plain text that is also Markdown: its [n] markers, then the passages
    they point at (or, for a refusal, the closest ones), one numbered line each.

    >>> from assistant.schema import Chunk, Hit
    >>> hit = Hit(Chunk("a#0", "a.txt", "Due by April 26.", 0, 16, 1, "Deal", "2025-04-18"), 1.0)
    >>> print(answer_markdown(Answer("When?", "By April 26 [1].", False, passages=(hit,))))
    By April 26 [1].
    <BLANKLINE>
    Sources:
    - [1] Deal (2025-04-18), a.txt, paragraph 1
    """
    numbers = cited_numbers(answer)
    heading = "Sources:"
    if not numbers and answer.abstained:
        numbers = shown_numbers(answer) or list(range(1, min(3, len(answer.passages)) + 1))
        heading = "Closest passages:"
    lines = [" ".join(answer.text.split())]
    if numbers:
        lines += ["", heading]
        lines += [f"- [{n}] {source_line(answer.passages[n - 1])}" for n in numbers]
    return "\n".join(lines)


# --- sources -------------------------------------------------------------------------------


CITED_MARK = ' title="the answer rests on this sentence"'
CONTEXT_MARK = ' class="context" title="evidence the model read"'
LEGEND = (
    f'<p class="legend"><mark{CITED_MARK}>the answer rests on this</mark> '
    f"<mark{CONTEXT_MARK}>other evidence the model read</mark></p>"
)


def _highlight(text: str, quotes: Iterable[tuple[str, bool]]) -> str:
    """Escaped passage text with each quoted sentence inside <mark> (whitespace-insensitive)."""
    spans: list[tuple[int, int, bool]] = []
    for quote, supported in quotes:
        found = find_quote(text, quote)
        if found and not any(s < found.end() and found.start() < e for s, e, _ in spans):
            spans.append((found.start(), found.end(), supported))
    out, cursor = [], 0
    for start, end, supported in sorted(spans):
        out.append(escape(text[cursor:start]))
        cls = CITED_MARK if supported else CONTEXT_MARK
        out.append(f"<mark{cls}>{escape(text[start:end])}</mark>")
        cursor = end
    out.append(escape(text[cursor:]))
    return "".join(out)


def date_label(date: str | None, file_date: str | None) -> str:
    """The date a document states, else its file's date labelled as such, else ""."""
    if date:
        return date
    return f"file date {file_date}" if file_date else ""


def _where(hit: Hit) -> str:
    c = hit.chunk
    parts = [f"paragraph {c.paragraph}"]
    if c.page is not None:
        parts.append(f"page {c.page}")
    return ", ".join(parts)


def cited_numbers(answer: Answer) -> list[int]:
    """Passage numbers the answer cites, in order of first use (markers while streaming)."""
    if answer.citations:
        found = [c.n for c in answer.citations]
        order = {n: i for i, n in enumerate(markers_in(answer.text))}
        found.sort(key=lambda n: order.get(n, len(order) + n))
    else:
        found = list(markers_in(answer.text))
    return [n for n in dict.fromkeys(found) if 1 <= n <= len(answer.passages)]


def shown_numbers(answer: Answer) -> list[int]:
    """Cited passages, then the other passages that hold evidence the model was shown."""
    evidence = [u.passage for u in answer.evidence if 1 <= u.passage <= len(answer.passages)]
    return list(dict.fromkeys([*cited_numbers(answer), *evidence]))


def passage_quotes(answer: Answer, n: int) -> list[tuple[str, bool]]:
    """(sentence, cited) to mark in passage n: the cited sentence strongly, the other evidence
    the model was shown lightly."""
    quotes = [(x.quote, True) for x in answer.citations if x.n == n]
    return quotes + [(u.text, False) for u in answer.evidence if u.passage == n]


def _card(answer: Answer, turn: int, n: int, selected: bool) -> str:
    hit = answer.passages[n - 1]
    c = hit.chunk
    quotes = passage_quotes(answer, n)
    dated = date_label(c.date, c.file_date)
    date = f" · {escape(dated)}" if dated else ""
    cls = "src-card selected" if selected else "src-card"
    return (
        f'<div class="{cls}" id="src-{turn}-{n}">'
        f'<div class="src-head"><b>[{n}] {escape(c.title or c.doc_id)}</b>{date}'
        f'<br><span class="src-where">{escape(c.doc_id)} · {escape(_where(hit))}</span> · '
        f'<a class="show-doc" href="#doc-{turn}-{n}" role="button">Show in document</a></div>'
        f'<p class="src-text">{_highlight(c.text, quotes)}</p></div>'
    )


def render_note(text: str) -> str:
    """A one-line note in a panel (escaped)."""
    return f'<p class="note">{escape(text)}</p>'


DOCUMENT_WINDOW = 100_000  # characters shown on each side of the passage in a long document


def render_document(doc: Document, hit: Hit, quotes: Iterable[tuple[str, bool]] = ()) -> str:
    """A whole document with one passage outlined (id "doc-passage") and its sentences marked.

    Text beyond DOCUMENT_WINDOW characters on either side is left out, and says so. When the
    file changed since it was indexed, the passage is no longer where the index says: the
    document is shown unmarked, with a note.
    """
    c = hit.chunk
    dated = date_label(doc.date, doc.file_date)
    head = (
        f'<div class="doc-head"><b>{escape(doc.title or doc.id)}</b>'
        f"{f' · {escape(dated)}' if dated else ''}"
        f'<br><span class="src-where">{escape(doc.id)} · {escape(_where(hit))}</span></div>'
    )
    text = doc.text
    if text[c.start : c.end] != c.text:
        note = (
            '<p class="note">The file changed since it was indexed, so the passage cannot be '
            "marked: rebuild the index on the Documents tab.</p>"
        )
        shown, cut = text[: 2 * DOCUMENT_WINDOW], len(text) > 2 * DOCUMENT_WINDOW
        more = '<p class="note">… (the rest is not shown)</p>' if cut else ""
        return f'{head}{note}<div class="doc-text">{escape(shown)}</div>{more}'
    lo, hi = max(0, c.start - DOCUMENT_WINDOW), min(len(text), c.end + DOCUMENT_WINDOW)
    before = f'<p class="note">… ({lo:,} characters before)</p>' if lo else ""
    after = f'<p class="note">… ({len(text) - hi:,} characters after)</p>' if hi < len(text) else ""
    return (
        f'{head}{before}<div class="doc-text">{escape(text[lo : c.start])}'
        f'<span class="doc-passage" id="doc-passage">{_highlight(c.text, quotes)}</span>'
        f"{escape(text[c.end : hi])}</div>{after}"
    )


def _answer_sources(answer: Answer, turn: int, selected: int | None = None) -> str:
    cited = cited_numbers(answer)
    listed = shown_numbers(answer)
    if selected in listed:
        listed.remove(selected)
        listed.insert(0, selected)
    parts = []
    if not cited:
        if answer.abstained:
            note = "No passage in the documents answers this question."
        elif answer.evidence:
            note = "Evidence found in these passages; the answer is being written."
        else:
            note = "The answer cites no passage yet."
        parts.append(f'<p class="empty">{note}</p>')
    parts += [_card(answer, turn, n, n == selected) for n in listed]
    rest = [n for n in range(1, len(answer.passages) + 1) if n not in listed]
    if rest:
        cards = "".join(_card(answer, turn, n, n == selected) for n in rest)
        is_open = " open" if selected in rest else ""
        parts.append(
            f"<details{is_open}><summary>Other retrieved passages ({len(rest)})"
            f"</summary>{cards}</details>"
        )
    return "".join(parts)


def render_sources(answers: Sequence[Answer], selected: int | None = None) -> str:
    """The sources panel: titled with the answer it belongs to, the latest answer's passages
    (cited first), earlier answers' folded below."""
    if not answers:
        return '<p class="empty">Sources of the answer appear here.</p>'
    turn = len(answers)
    latest = answers[-1]
    parts = [
        f'<p class="for-answer">For answer {turn}: <q>{escape(latest.question)}</q></p>',
        LEGEND if latest.passages else "",
        _answer_sources(latest, turn, selected),
    ]
    for t in range(turn - 1, 0, -1):
        parts.append(
            f"<details><summary>Sources of answer {t}: {escape(answers[t - 1].question)}</summary>"
            f"{_answer_sources(answers[t - 1], t)}</details>"
        )
    return "".join(parts)


def passage_choices(answer: Answer | None) -> list[tuple[str, int]]:
    """(label, n) of the passages an answer cites or drew evidence from, for the selector."""
    if answer is None:
        return []
    return [(f"[{n}] {answer.passages[n - 1].chunk.title}", n) for n in shown_numbers(answer)]


# --- documents -----------------------------------------------------------------------------


def render_documents(documents: Sequence[IndexedDocument]) -> str:
    """The indexed documents as an escaped HTML table, or how to add some."""
    if not documents:
        return (
            '<p class="empty">No documents are indexed yet. Drop files below '
            f"({escape(' '.join(SUFFIXES))}): they are indexed at once.</p>"
        )
    rows = "".join(
        f"<tr><td>{escape(d.get('title'))}</td>"
        f"<td>{escape(date_label(d.get('date'), d.get('file_date')))}</td>"
        f"<td>{escape(d.get('passages'))}</td><td><code>{escape(d.get('id'))}</code></td></tr>"
        for d in documents
    )
    return (
        f'<div class="doc-table"><p>{plural(len(documents), "document")} indexed.</p><table>'
        "<thead><tr><th>Title</th><th>Date</th><th>Passages</th><th>File</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )


def build_report(
    report: BuildReport,
    saved: Sequence[str] = (),
    refused: Sequence[tuple[str, str]] = (),
    deleted: Sequence[str] = (),
) -> str:
    """What adding, removing or rebuilding did, in a few plain lines: only what happened.

    `saved` and `refused` are the uploads of this step, `deleted` the files it deleted; the
    report is the build that followed.
    """
    lines = [f"Refused {name}: {reason}" for name, reason in refused]
    if deleted:
        lines.append(f"Deleted from the documents folder: {', '.join(deleted)}")
    if report.full_rebuild_reason:
        lines.append(f"Every document was read again: {report.full_rebuild_reason}")
    else:
        if report.added:
            lines.append(f"Indexed: {', '.join(report.added)}")
        if report.changed:
            lines.append(f"Indexed again (changed): {', '.join(report.changed)}")
    for doc_id in report.removed:
        why = report.removed_reasons.get(doc_id)
        lines.append(f"Out of the index: {doc_id}" + (f" ({why})" if why else ""))
    skipped = dict(report.skipped)
    lines += [f"Not indexed {doc_id}: {reason}" for doc_id, reason in report.skipped]
    done = {*report.added, *report.changed, *skipped}
    same = [name for name in saved if name not in done and not report.full_rebuild_reason]
    if same:
        lines.append(f"Already indexed with the same content: {', '.join(same)}")
    if not report.changed_anything and not same and not lines:
        lines.append("Nothing changed: the index already matches the documents folder.")
    documents = report.unchanged + len(report.added) + len(report.changed)
    lines.append(
        f"{plural(documents, 'document')}, {plural(report.passages, 'passage')} in the index."
    )
    return "\n".join(lines)
