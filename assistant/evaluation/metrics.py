"""Metrics: each question's outcome judged, a run's rows aggregated, the table printed.

Pure functions of the questions and the rows recorded for them (definitions in docs/EVAL.md).

Example:
    >>> normalize("The U.S. Open, 2019!")
    'u s open 2019'
    >>> answer_correct("She won in Tampa, Florida [1].", ["Tampa, Florida"])
    True
    >>> round(token_f1("Simona Halep won", ["Simona Halep"]), 2)
    0.8
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from assistant import citations
from assistant.evaluation.sets import Question

SHORT_ANSWER_WORDS = 10  # gold answers up to this long are scored for accuracy
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# The answer's timings a row keeps (runner writes them); tokens_per_s is kept but not summarised.
TIMINGS = (
    "retrieval_ms",
    "evidence_ms",
    "first_token_ms",
    "total_ms",
    "tokens_per_s",
    "prompt_tokens",
)
# Latency metric -> (the row's timing it summarises, percentile), in the table's order.
LATENCY = {
    "retrieval_ms_p50": ("retrieval_ms", 50),
    "evidence_ms_p50": ("evidence_ms", 50),
    "first_token_ms_p50": ("first_token_ms", 50),
    "total_ms_p50": ("total_ms", 50),
    "total_ms_p95": ("total_ms", 95),
    "prompt_tokens_p50": ("prompt_tokens", 50),
}


# --- metrics on one question --------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower case; punctuation, symbols and articles (a, an, the) dropped; single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def strip_markers(text: str) -> str:
    """The reply without its [n] citation markers (so "[1]" never matches an answer "1")."""
    return citations.MARKER.sub(" ", text)


def is_short(answer: str) -> bool:
    """Whether a gold answer is a short span (scored by containment) rather than prose."""
    return 0 < len(answer.split()) <= SHORT_ANSWER_WORDS


def answer_correct(reply: str, answers: Iterable[str]) -> bool:
    """A normalised gold answer occurs in the normalised reply, on word boundaries."""
    text = f" {normalize(strip_markers(reply))} "
    return any(gold and f" {gold} " in text for gold in map(normalize, answers))


def token_f1(reply: str, answers: Iterable[str]) -> float:
    """Best token F1 (SQuAD-style, normalised bags of words) of the reply against any answer."""
    pred = normalize(strip_markers(reply)).split()
    best = 0.0
    for answer in answers:
        gold = normalize(answer).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def distinct(doc_ids: Iterable[str]) -> list[str]:
    """Document ids in first-seen order, each once."""
    return list(dict.fromkeys(doc_ids))


def recall_at_k(ranked_docs: Sequence[str], gold_docs: Iterable[str], k: int) -> float:
    """1.0 if any gold document is among the first k distinct retrieved documents, else 0.0."""
    gold = set(gold_docs)
    return 1.0 if any(d in gold for d in distinct(ranked_docs)[:k]) else 0.0


def reciprocal_rank(ranked_docs: Sequence[str], gold_docs: Iterable[str]) -> float:
    """1/rank of the first gold document among the distinct retrieved ones; 0.0 if none."""
    gold = set(gold_docs)
    for rank, doc in enumerate(distinct(ranked_docs), 1):
        if doc in gold:
            return 1.0 / rank
    return 0.0


def citation_correct(
    doc_id: str, passage: str, gold_docs: Iterable[str], gold_sentences: Iterable[str] = ()
) -> bool:
    """The cited passage is from a gold document and, if gold sentences exist, contains one."""
    if doc_id not in set(gold_docs):
        return False
    sentences = [s for s in map(normalize, gold_sentences) if s]
    if not sentences:
        return True
    text = f" {normalize(passage)} "
    return any(f" {s} " in text for s in sentences)


# --- aggregation --------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, or None when there is nothing to average (never 0)."""
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def score(questions: Sequence[Question], rows: dict[str, dict], retrieval_only: bool) -> dict:
    """The metrics of the questions that have a row (see docs/EVAL.md for the definitions)."""
    done = [(q, rows[q.id]) for q in questions if q.id in rows]
    answerable = [(q, r) for q, r in done if q.answerable]
    unanswerable = [(q, r) for q, r in done if not q.answerable]

    with_gold = [(q, r) for q, r in answerable if q.gold_docs]
    retrieval = {
        f"recall@{k}": _rounded(
            mean([recall_at_k(r["retrieved"], q.gold_docs, k) for q, r in with_gold])
        )
        for k in (1, 5, 10)
    }
    retrieval["mrr"] = _rounded(
        mean([reciprocal_rank(r["retrieved"], q.gold_docs) for q, r in with_gold])
    )

    answers: dict[str, float | None] = {"accuracy": None, "f1": None}
    citations: dict[str, float | None] = {"precision": None, "recall": None}
    abstention: dict[str, float | None] = {
        "refusal_rate_unanswerable": None,
        "false_refusal_rate_answerable": None,
    }
    # An answered row's timings come from the answer; a retrieval-only row has only its search.
    timings = [
        {"retrieval_ms": r["retrieval_ms"]} if retrieval_only else r["timings"] for _, r in done
    ]
    latency = {
        name: _rounded(percentile([t[key] for t in timings if t.get(key) is not None], q), 1)
        for name, (key, q) in LATENCY.items()
    }
    if not retrieval_only:
        scored = [(q, r) for q, r in answerable if q.answers]
        short = [(q, r) for q, r in scored if any(is_short(a) for a in q.answers)]
        answers["accuracy"] = _rounded(
            mean(
                [
                    0.0
                    if r["abstained"]
                    else float(answer_correct(r["reply"], [a for a in q.answers if is_short(a)]))
                    for q, r in short
                ]
            )
        )
        answers["f1"] = _rounded(
            mean([0.0 if r["abstained"] else token_f1(r["reply"], q.answers) for q, r in scored])
        )

        answered = [(q, r) for q, r in answerable if not r["abstained"]]
        verdicts = [
            [
                citation_correct(c["doc_id"], c["text"], q.gold_docs, q.gold_sentences)
                for c in r["citations"]
            ]
            for q, r in answered
        ]
        citations["precision"] = _rounded(mean([float(v) for vs in verdicts for v in vs]))
        citations["recall"] = _rounded(mean([float(any(vs)) for vs in verdicts]))

        abstention["refusal_rate_unanswerable"] = _rounded(
            mean([float(r["abstained"]) for _, r in unanswerable])
        )
        abstention["false_refusal_rate_answerable"] = _rounded(
            mean([float(r["abstained"]) for _, r in answerable])
        )

    return {
        "retrieval": retrieval,
        "answers": answers,
        "citations": citations,
        "abstention": abstention,
        "latency": latency,
        "counts": {
            "done": len(done),
            "answerable": len(answerable),
            "unanswerable": len(unanswerable),
            "short_answers": sum(1 for q, _ in answerable if any(is_short(a) for a in q.answers)),
        },
    }


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def fmt(value: float | None, digits: int = 3) -> str:
    """A metric for the table: fixed digits, or n/a when it does not apply."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(result: dict) -> str:
    """The result as a small aligned text table, for the terminal."""
    lines = [
        f"set {result['set']}: {result['questions']} questions "
        f"({result['counts']['answerable']} answerable, "
        f"{result['counts']['unanswerable']} unanswerable)"
        + ("  PARTIAL (interrupted)" if result.get("partial") else "")
    ]
    for group in ("retrieval", "answers", "citations", "abstention", "latency"):
        for name, value in result[group].items():
            digits = 1 if group == "latency" else 3
            lines.append(f"  {group:<11} {name:<32} {fmt(value, digits):>9}")
    return "\n".join(lines)
