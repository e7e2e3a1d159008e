"""Running an eval set: index its corpus, ask every question, keep each outcome, score the run.

The corpus is indexed once into the cache, keyed by a hash of its contents and the index
settings; each question's outcome is appended to a results file there, so an interrupted run
resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.config import Config
from assistant.evaluation.metrics import TIMINGS, distinct, fmt, format_table, score
from assistant.evaluation.replay import ReplayGenerator, add_replayed_time, replaying
from assistant.evaluation.sets import EvalSet, Question, load_set
from assistant.schema import Citation, Hit

if TYPE_CHECKING:
    from assistant.embedding import Embedder
    from assistant.generation import Generator
    from assistant.rag import Assistant

log = logging.getLogger(__name__)

FORMAT = "assistant-eval v1"
RETRIEVAL_DEPTH = 10  # passages retrieved for recall@k and MRR


def settings_key(cfg: Config, embedder_id: str, *fields: str) -> dict:
    """The Config fields that decide an outcome, with the embedder actually used."""
    return {"embedder": embedder_id, **{f: getattr(cfg, f) for f in fields}}


INDEX_FIELDS = (
    "chunk_tokens",
    "chunk_overlap",
    "exact_search_limit",
    "compressed_search_limit",
    "max_document_bytes",
)
ANSWER_FIELDS = (
    "top_k",
    "candidates",
    "dense_weight",
    "keyword_weight",
    "rrf_k",
    "min_relevance",
    "evidence_units",
    "evidence_words",
    "other_year_penalty",
    "answer_threshold",
    "statement_threshold",
    "min_answer_similarity",
    "system_prompt",
    "point_request",
    "words_request",
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


# Modules (and packages) that never decide an answer: this one, the command line and the window.
_NOT_ANSWERING = (
    "evaluation",
    "cli.py",
    "__main__.py",
    "ui.py",
    "chat.py",
    "render.py",
    "library.py",
    "server.py",
    "feedback.py",
)


def answering_code() -> list[str]:
    """The modules that may decide an answer: assistant/ and its subpackages, but _NOT_ANSWERING."""
    here = Path(__file__).parents[1]
    paths = (p.relative_to(here) for p in here.rglob("*.py"))
    return sorted(p.as_posix() for p in paths if p.parts[0] not in _NOT_ANSWERING)


def code_hash() -> str:
    """Hash of the assistant's answering code, so a code change never reuses stale results."""
    h = hashlib.sha256()
    here = Path(__file__).parents[1]
    for name in answering_code():
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
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
    # Looked up by a row's id, which a hand-edited line may lack.
    keys: dict[str | None, str] = {q.id: question_key(q) for q in questions}
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


def run_question(assistant: Assistant, q: Question, retrieval_only: bool) -> dict:
    """Ask (or only retrieve for) one question and record what is needed to score it."""
    row: dict = {"id": q.id, "key": question_key(q)}
    query = q.question
    if not retrieval_only:
        replay = assistant.generator if isinstance(assistant.generator, ReplayGenerator) else None
        if replay is not None:
            replay.replayed, replay.last_reply = [], ""
        answer = assistant.ask(q.question, history=q.history)
        query = answer.standalone_question or q.question
        timings = {k: answer.timings.get(k) for k in TIMINGS}
        if replay is not None and replay.replayed:
            timings = add_replayed_time(timings, replay.replayed)
            row["replayed"] = True
        if replay is not None and replay.last_reply:
            row["raw"] = replay.last_reply  # what the model said before checking
        if query != q.question:
            row["standalone"] = query  # a follow-up, as the assistant read it
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


def _citation_row(citation: Citation, passages: Sequence[Hit]) -> dict:
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
    embedder: Embedder,
    generator: Generator | None = None,
    retrieval_only: bool = False,
    show_progress: bool = True,
    on_row: Callable[[dict], None] | None = None,
) -> dict:
    """Index the set's corpus (reused by hash), answer every question not yet done, score.

    Ctrl-C stops early and returns the partial result ("partial": true); what was done is kept
    in the results file and skipped by the next run.
    """
    from assistant.rag import Assistant, build_index
    from assistant.store import IndexLoadError

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


def run_cli(cfg: Config, args: argparse.Namespace) -> int:
    """`python -m assistant eval`: real models, a table on stdout, optionally a JSON file."""
    from assistant.rag import make_embedder, read_ahead

    eval_set = load_set(args.set_dir, args.limit, args.sample)
    embedder = make_embedder(cfg)
    generator = None
    if not args.retrieval_only:
        from assistant.generation import load_generator

        loaded = load_generator(cfg)
        read_ahead(loaded, cfg.system_prompt)  # as the app does: its first question too
        generator = replaying(cfg, loaded)
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
