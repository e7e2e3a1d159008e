"""A person's verdicts on answers, kept as an eval set that `assistant eval` runs as it is.

The window's thumbs mark an answer helpful or wrong. Each marked answer is one line of
<feedback_dir>/questions.jsonl in the eval set format (docs/EVAL.md), and <feedback_dir>/corpus
links to the documents folder, so

    python -m assistant eval --set feedback

asks the person's own questions again. What a verdict asks of the next run:

- helpful answer: answerable, answers = [its text], gold docs and sentences = what it cited;
  scored by accuracy, F1 and citations (it should be given again).
- wrong answer: not answerable; scored by the refusal rate (better refused than given again).
- helpful refusal: not answerable; scored by the refusal rate.
- wrong refusal: answerable with no answer known; scored by the false refusal rate.

Each line also keeps what was shown (the reply, its evidence, the verdict, when), which the
eval ignores. A line's id is a hash of the question, the conversation before it and the reply:
marking the same answer again replaces its line, and un-marking removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from .config import Config
from .files import atomic_write
from .render import without_markers
from .schema import Answer

VERDICTS = ("helpful", "wrong")
QUESTIONS_FILE = "questions.jsonl"


def feedback_id(answer: Answer, earlier: Sequence[Answer] = ()) -> str:
    """The id of an answer's line: the same question, conversation and reply, the same id."""
    blob = json.dumps(
        [answer.question, [(a.question, a.text) for a in earlier], answer.text],
        ensure_ascii=False,
    )
    return "fb-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def feedback_line(answer: Answer, verdict: str, earlier: Sequence[Answer] = ()) -> dict:
    """The eval set line for a verdict on an answer given after the `earlier` ones."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
    right = verdict == "helpful"
    answered = not answer.abstained
    cited = [c for c in answer.citations if c.supported]
    line: dict = {
        "id": feedback_id(answer, earlier),
        "question": answer.question,
        "answers": [without_markers(answer.text)] if right and answered else [],
        "gold_docs": list(dict.fromkeys(c.doc_id for c in cited)) if right and answered else [],
        "gold_sentences": [c.quote for c in cited] if right and answered else [],
        "answerable": right == answered,
        "history": [[a.question, a.text] for a in earlier],
        # What was shown, for the person reading the file; the eval ignores these keys.
        "verdict": verdict,
        "reply": answer.text,
        "abstained": answer.abstained,
        "evidence": [
            {"passage": u.passage, "doc_id": u.doc_id, "title": u.title, "text": u.text}
            for u in answer.evidence
        ],
        "marked": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return line


def save_verdict(
    cfg: Config, answer: Answer, verdict: str | None, earlier: Sequence[Answer] = ()
) -> int:
    """Write (or, for verdict None, remove) an answer's line; returns how many lines there are.

    The file is rewritten whole (atomically), so it never holds two lines with one id.
    """
    folder = Path(cfg.feedback_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _link_corpus(folder, Path(cfg.seeds_dir))
    path = folder / QUESTIONS_FILE
    drop = feedback_id(answer, earlier)
    lines = [line for line in _read_lines(path) if _line_id(line) != drop]
    if verdict is not None:
        lines.append(json.dumps(feedback_line(answer, verdict, earlier), ensure_ascii=False))
    with atomic_write(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return len(lines)


def _read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _line_id(line: str) -> object:
    try:
        data = json.loads(line)
    except ValueError:
        return None  # a hand-edited line that does not parse is kept as it is
    return data.get("id") if isinstance(data, dict) else None


def _link_corpus(folder: Path, seeds: Path) -> None:
    """<folder>/corpus -> the documents folder, unless something is there already."""
    corpus = folder / "corpus"
    if corpus.exists() or corpus.is_symlink():
        return
    os.symlink(os.path.abspath(seeds), corpus, target_is_directory=True)
