"""Eval sets: a corpus folder and questions.jsonl, read into Questions (format in docs/EVAL.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError


class EvalSetError(AssistantError):
    """The eval set folder is missing or malformed; the message says where."""


@dataclass(frozen=True)
class Question:
    """One line of questions.jsonl; `history` holds earlier (user, assistant) turns, if any."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    gold_docs: tuple[str, ...] = ()
    gold_sentences: tuple[str, ...] = ()
    answerable: bool = True
    history: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EvalSet:
    """A corpus folder and its questions."""

    name: str
    corpus_dir: Path
    questions: tuple[Question, ...]


def load_set(set_dir: Path, limit: int | None = None, sample: int | None = None) -> EvalSet:
    """Read <set_dir>/questions.jsonl and locate its corpus.

    `limit` keeps the first N questions; `sample` keeps N spread evenly over the file (every
    len/N-th, deterministic), so a set ordered answerable-first keeps its mix.
    """
    set_dir = Path(set_dir)
    corpus, qfile = set_dir / "corpus", set_dir / "questions.jsonl"
    if not corpus.is_dir() or not qfile.is_file():
        raise EvalSetError(
            f"{set_dir} is not an eval set: it needs corpus/ and questions.jsonl (see docs/EVAL.md)"
        )
    try:
        lines = qfile.read_text("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise EvalSetError(f"{qfile}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    questions: list[Question] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            questions.append(
                Question(
                    id=str(raw["id"]),
                    question=str(raw["question"]),
                    answers=tuple(str(a) for a in raw.get("answers") or ()),
                    gold_docs=tuple(str(d) for d in raw.get("gold_docs") or ()),
                    gold_sentences=tuple(str(s) for s in raw.get("gold_sentences") or ()),
                    answerable=bool(raw.get("answerable", True)),
                    history=tuple((str(u), str(a)) for u, a in raw.get("history") or ()),
                )
            )
        except (ValueError, KeyError, TypeError) as e:
            raise EvalSetError(f"{qfile}:{n}: not a question line ({e})") from None
        if limit is not None and len(questions) >= limit:
            break
    if sample is not None and 0 < sample < len(questions):
        questions = [questions[i * len(questions) // sample] for i in range(sample)]
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise EvalSetError(f"{qfile}: question ids are not unique")
    return EvalSet(set_dir.resolve().name, corpus, tuple(questions))
