"""Scoring the assistant on an eval set: retrieval, answers, citations, abstention, latency.

A set is a folder with `corpus/<doc>.md` and `questions.jsonl` (see docs/EVAL.md). The corpus
is indexed once into the cache, keyed by a hash of its contents and the index settings; each
question's outcome is appended to a results file there, so an interrupted run resumes.

Example:
    >>> normalize("The U.S. Open, 2019!")
    'u s open 2019'
    >>> answer_correct("She won in Tampa, Florida [1].", ["Tampa, Florida"])
    True
    >>> round(token_f1("Simona Halep won", ["Simona Halep"]), 2)
    0.8
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import citations
from .config import Config
from .errors import AssistantError

log = logging.getLogger(__name__)

FORMAT = "assistant-eval v1"
RETRIEVAL_DEPTH = 10  # passages retrieved for recall@k and MRR
SHORT_ANSWER_WORDS = 10  # gold answers up to this long are scored for accuracy
_ARTICLES = re.compile(r"\b(a|an|the)\b")


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

    answers = {"accuracy": None, "f1": None}
    citations = {"precision": None, "recall": None}
    abstention = {"refusal_rate_unanswerable": None, "false_refusal_rate_answerable": None}
    latency = {
        "retrieval_ms_p50": _rounded(percentile([r["retrieval_ms"] for _, r in done], 50), 1),
        "evidence_ms_p50": None,
        "first_token_ms_p50": None,
        "total_ms_p50": None,
        "total_ms_p95": None,
        "prompt_tokens_p50": None,
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

        timings = [r["timings"] for _, r in done]
        first = [t["first_token_ms"] for t in timings if t.get("first_token_ms") is not None]
        total = [t["total_ms"] for t in timings if t.get("total_ms") is not None]
        latency["retrieval_ms_p50"] = _rounded(
            percentile(
                [t["retrieval_ms"] for t in timings if t.get("retrieval_ms") is not None], 50
            ),
            1,
        )
        evidence = [t["evidence_ms"] for t in timings if t.get("evidence_ms") is not None]
        tokens = [t["prompt_tokens"] for t in timings if t.get("prompt_tokens") is not None]
        latency["evidence_ms_p50"] = _rounded(percentile(evidence, 50), 1)
        latency["prompt_tokens_p50"] = _rounded(percentile(tokens, 50), 1)
        latency["first_token_ms_p50"] = _rounded(percentile(first, 50), 1)
        latency["total_ms_p50"] = _rounded(percentile(total, 50), 1)
        latency["total_ms_p95"] = _rounded(percentile(total, 95), 1)

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


# --- running ------------------------------------------------------------------------------


def settings_key(cfg: Config, embedder_id: str, *fields: str) -> dict:
    """The Config fields that decide an outcome, with the embedder actually used."""
    return {"embedder": embedder_id, **{f: getattr(cfg, f) for f in fields}}


INDEX_FIELDS = ("chunk_tokens", "chunk_overlap", "exact_search_limit", "max_document_bytes")
ANSWER_FIELDS = (
    "top_k",
    "candidates",
    "dense_weight",
    "keyword_weight",
    "rrf_k",
    "min_relevance",
    "evidence_units",
    "evidence_words",
    "answer_threshold",
    "system_prompt",
    "generator",
    "engine",
    "max_new_tokens",
    "prompt_lookup",
)


def corpus_hash(corpus_dir: Path, settings: dict) -> str:
    """Hash of every corpus file's path and bytes plus the index settings."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in sorted(p for p in Path(corpus_dir).rglob("*") if p.is_file()):
        h.update(path.relative_to(corpus_dir).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


# Modules that never decide an answer: the command line and the window.
_NOT_ANSWERING = (
    "evaluation.py",
    "cli.py",
    "__main__.py",
    "ui.py",
    "render.py",
    "library.py",
    "server.py",
)


def code_hash() -> str:
    """Hash of the assistant's answering code, so a code change never reuses stale results."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")):
        if path.name not in _NOT_ANSWERING:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def cache_paths(
    eval_set: EvalSet, cfg: Config, embedder_id: str, generator_name: str, retrieval_only: bool
) -> tuple[Path, Path]:
    """(index folder, results file) for this set and these settings under cfg.cache_dir/eval."""
    index_settings = settings_key(cfg, embedder_id, *INDEX_FIELDS)
    folder = (
        cfg.cache_dir
        / "eval"
        / (f"{eval_set.name}-{corpus_hash(eval_set.corpus_dir, index_settings)}")
    )
    run = {
        "format": FORMAT,
        "mode": "retrieval" if retrieval_only else "answers",
        "depth": RETRIEVAL_DEPTH,
        "settings": settings_key(cfg, embedder_id, *INDEX_FIELDS, *ANSWER_FIELDS),
        "generator": None if retrieval_only else generator_name,
        "code": code_hash(),
    }
    run_id = hashlib.sha256(json.dumps(run, sort_keys=True, default=str).encode()).hexdigest()
    mode = "retrieval" if retrieval_only else "answers"
    return folder / "index", folder / f"results-{mode}-{run_id[:16]}.jsonl"


def question_key(q: Question) -> str:
    """Identifies a question's content, so an edited question is asked again."""
    blob = json.dumps([q.id, q.question, q.history], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_rows(path: Path, questions: Sequence[Question]) -> dict[str, dict]:
    """Rows already in a results file for these questions (a torn last line is ignored)."""
    keys = {q.id: question_key(q) for q in questions}
    rows: dict[str, dict] = {}
    if not path.exists():
        return rows
    for line in path.read_text("utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and keys.get(row.get("id")) == row.get("key"):
            rows[row["id"]] = row
    return rows


class ReplayGenerator:
    """Wraps a Generator and keeps every finished reply on disk, keyed by the exact request.

    The same messages to the same model replay the stored reply instead of running the model
    again, so a change after generation (support check, abstention rules) is re-scored in
    minutes. A replayed reply keeps the first-token and total times measured when it was made;
    run_question adds them to the row's timings. Delete the file to generate afresh.
    """

    def __init__(self, generator, path: Path) -> None:
        self.inner = generator
        self.name = generator.name
        self.path = Path(path)
        self.replayed: list[dict] = []  # the stored timings of replies replayed since reset
        self.last_reply = ""  # the model's raw text of the latest call, for diagnosing rows
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text("utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages, max_new_tokens: int = 256, stop=None):
        blob = json.dumps([self.name, messages, max_new_tokens], ensure_ascii=False)
        key = hashlib.sha256(blob.encode()).hexdigest()
        entry = self.entries.get(key)
        if entry is not None:
            self.replayed.append(entry)
            self.last_reply = "".join(entry["pieces"])
            yield from entry["pieces"]
            return
        started = time.perf_counter()
        pieces: list[str] = []
        first_ms = None
        for piece in self.inner.stream(messages, max_new_tokens, stop=stop):
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000
            pieces.append(piece)
            yield piece
        self.last_reply = "".join(pieces)
        if stop is not None and stop.is_set():
            return  # a cut-off reply is not the model's answer
        total_ms = (time.perf_counter() - started) * 1000
        entry = {"key": key, "pieces": pieces, "first_token_ms": first_ms, "total_ms": total_ms}
        self.entries[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")


def replaying(cfg: Config, generator) -> ReplayGenerator:
    """The generator wrapped to keep its replies in <cache>/eval/replies-<model>.jsonl."""
    tag = hashlib.sha256(generator.name.encode()).hexdigest()[:12]
    return ReplayGenerator(generator, cfg.cache_dir / "eval" / f"replies-{tag}.jsonl")


def _add_replayed_time(timings: dict, replayed: list[dict]) -> dict:
    """Timings of an answer whose model calls were replayed, with the time they took when made."""
    *earlier, last = replayed
    before = sum(e["total_ms"] or 0 for e in earlier)
    out = dict(timings)
    if out.get("first_token_ms") is not None:
        out["first_token_ms"] = round(
            out["first_token_ms"] + before + (last["first_token_ms"] or 0), 1
        )
    if out.get("total_ms") is not None:
        out["total_ms"] = round(out["total_ms"] + before + (last["total_ms"] or 0), 1)
    gen_s = ((last["total_ms"] or 0) - (last["first_token_ms"] or 0)) / 1000
    out["tokens_per_s"] = round(len(last["pieces"]) / gen_s, 2) if gen_s > 0 else None
    return out


def run_question(assistant, q: Question, retrieval_only: bool) -> dict:
    """Ask (or only retrieve for) one question and record what is needed to score it."""
    row: dict = {"id": q.id, "key": question_key(q)}
    query = q.question
    if not retrieval_only:
        replay = assistant.generator if isinstance(assistant.generator, ReplayGenerator) else None
        if replay is not None:
            replay.replayed, replay.last_reply = [], ""
        answer = assistant.ask(q.question, history=q.history)
        query = answer.standalone_question or q.question
        timings = {
            k: answer.timings.get(k)
            for k in (
                "retrieval_ms",
                "evidence_ms",
                "first_token_ms",
                "total_ms",
                "tokens_per_s",
                "prompt_tokens",
            )
        }
        if replay is not None and replay.replayed:
            timings = _add_replayed_time(timings, replay.replayed)
            row["replayed"] = True
        if replay is not None and replay.last_reply:
            row["raw"] = replay.last_reply  # what the model said before checking
        row.update(
            reply=answer.text,
            abstained=bool(answer.abstained),
            citations=[_citation_row(c, answer.passages) for c in answer.citations],
            timings=timings,
            decision=answer.decision,
            evidence=[dataclasses.asdict(u) for u in answer.evidence],
        )
    started = time.perf_counter()
    hits = assistant.retrieve(query, k=RETRIEVAL_DEPTH)
    row["retrieval_ms"] = round((time.perf_counter() - started) * 1000, 2)
    row["retrieved"] = distinct(h.chunk.doc_id for h in hits)
    return row


def _citation_row(citation, passages) -> dict:
    hit = passages[citation.n - 1] if 0 < citation.n <= len(passages) else None
    if hit is None or hit.chunk.id != citation.passage_id:
        hit = next((h for h in passages if h.chunk.id == citation.passage_id), hit)
    return {
        "n": citation.n,
        "doc_id": citation.doc_id,
        "passage_id": citation.passage_id,
        "supported": citation.supported,
        "text": hit.chunk.text if hit else citation.quote,
    }


def evaluate(
    eval_set: EvalSet,
    cfg: Config,
    embedder,
    generator=None,
    retrieval_only: bool = False,
    show_progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Index the set's corpus (reused by hash), answer every question not yet done, score.

    Ctrl-C stops early and returns the partial result ("partial": true); what was done is kept
    in the results file and skipped by the next run.
    """
    from .rag import Assistant, build_index
    from .store import IndexLoadError

    if not retrieval_only and generator is None:
        raise ValueError("a generator is needed unless retrieval_only is set")
    gen_name = getattr(generator, "name", type(generator).__name__) if generator else ""
    index_dir, results = cache_paths(eval_set, cfg, embedder.id, gen_name, retrieval_only)
    run_cfg = dataclasses.replace(
        cfg,
        seeds_dir=eval_set.corpus_dir,
        index_dir=index_dir,
        candidates=max(cfg.candidates, RETRIEVAL_DEPTH),
        follow_external_links=True,  # a set's corpus may link documents kept elsewhere
    )
    report = build_index(
        run_cfg, embedder, progress=_index_progress(show_progress), lock_wait_s=600
    )
    log.info("eval index %s: %s", index_dir, report.summary())
    assistant = Assistant(run_cfg, embedder, None if retrieval_only else generator)
    if assistant.index_error:
        raise IndexLoadError(assistant.index_error)

    rows = read_rows(results, eval_set.questions)
    resumed = len(rows)
    todo = [q for q in eval_set.questions if q.id not in rows]
    partial = False
    started = time.perf_counter()
    bar = _bar(len(eval_set.questions), resumed, show_progress, eval_set.name)
    try:
        results.parent.mkdir(parents=True, exist_ok=True)
        with open(results, "a+", encoding="utf-8") as out:
            if out.tell() and _last_char(results) != "\n":
                out.write("\n")  # end a line torn by a crash, so the next row stays whole
            for q in todo:
                row = run_question(assistant, q, retrieval_only)
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
                rows[q.id] = row
                if on_row:
                    on_row(row)
                if bar is not None:
                    bar.set_postfix_str(_running(eval_set.questions, rows, retrieval_only))
                    bar.update(1)
    except KeyboardInterrupt:
        partial = True
    finally:
        if bar is not None:
            bar.close()

    result = {
        "set": eval_set.name,
        "questions": sum(1 for q in eval_set.questions if q.id in rows),
        **score(eval_set.questions, rows, retrieval_only),
        "partial": partial,
        "mode": "retrieval-only" if retrieval_only else "answers",
        "resumed": resumed,
        "seconds": round(time.perf_counter() - started, 1),
        "results_file": str(results),
        "settings": settings_key(run_cfg, embedder.id, *INDEX_FIELDS, *ANSWER_FIELDS),
        "rows": [rows[q.id] for q in eval_set.questions if q.id in rows],
    }
    return result


def _last_char(path: Path) -> str:
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        return fh.read(1).decode("latin-1")


def _index_progress(show: bool) -> Callable[[float, str], None]:
    def report(fraction: float, message: str) -> None:
        if show:
            print(
                f"\r[index {fraction:4.0%}] {message[:70]:<70}", end="", file=sys.stderr, flush=True
            )
            if fraction >= 1.0:
                print(file=sys.stderr)

    return report


def _bar(total: int, done: int, show: bool, name: str):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=name, unit="q", file=sys.stderr, dynamic_ncols=True)


def _running(questions: Sequence[Question], rows: dict[str, dict], retrieval_only: bool) -> str:
    """A short running estimate of the headline metrics for the progress bar."""
    s = score(questions, rows, retrieval_only)
    parts = [f"R@5={fmt(s['retrieval']['recall@5'])}"]
    if not retrieval_only:
        parts.append(f"acc={fmt(s['answers']['accuracy'])}")
        parts.append(f"F1={fmt(s['answers']['f1'])}")
        parts.append(f"refuse={fmt(s['abstention']['refusal_rate_unanswerable'])}")
    return " ".join(parts)


def fmt(value: float | None, digits: int = 3) -> str:
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


def run_cli(cfg: Config, args: argparse.Namespace) -> int:
    """`python -m assistant eval`: real models, a table on stdout, optionally a JSON file."""
    from .rag import make_embedder

    eval_set = load_set(args.set_dir, args.limit, args.sample)
    embedder = make_embedder(cfg)
    generator = None
    if not args.retrieval_only:
        from .generation import load_generator

        generator = replaying(cfg, load_generator(cfg))
    result = evaluate(eval_set, cfg, embedder, generator, retrieval_only=args.retrieval_only)
    print(format_table(result))
    if args.json_file:
        args.json_file.parent.mkdir(parents=True, exist_ok=True)
        args.json_file.write_text(
            json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
        print(f"wrote {args.json_file}", file=sys.stderr)
    print(f"results kept in {result['results_file']} (delete it to start over)", file=sys.stderr)
    return 130 if result["partial"] else 0
