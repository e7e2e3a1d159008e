"""Scoring the assistant on an eval set: retrieval, answers, citations, abstention, latency.

A set is a folder with `corpus/<doc>.md` and `questions.jsonl` (see docs/EVAL.md):

    >>> from assistant.evaluation import load_set, evaluate, format_table
    >>> eval_set = load_set(Path("tests/data/evalset"), limit=5)  # doctest: +SKIP
    >>> print(format_table(evaluate(eval_set, cfg, embedder, generator)))  # doctest: +SKIP

One module per job: sets (reading a set), metrics (judging and aggregating outcomes, the
table), replay (model replies kept on disk), runner (indexing a set, asking, caching results).
"""

from __future__ import annotations

from assistant.evaluation.metrics import (
    answer_correct,
    citation_correct,
    distinct,
    format_table,
    is_short,
    mean,
    normalize,
    percentile,
    recall_at_k,
    reciprocal_rank,
    score,
    token_f1,
)
from assistant.evaluation.replay import ReplayGenerator, replaying
from assistant.evaluation.runner import code_hash, evaluate, run_cli, run_question
from assistant.evaluation.sets import EvalSet, EvalSetError, Question, load_set

__all__ = [
    "EvalSet",
    "EvalSetError",
    "Question",
    "ReplayGenerator",
    "answer_correct",
    "citation_correct",
    "code_hash",
    "distinct",
    "evaluate",
    "format_table",
    "is_short",
    "load_set",
    "mean",
    "normalize",
    "percentile",
    "recall_at_k",
    "reciprocal_rank",
    "replaying",
    "run_cli",
    "run_question",
    "score",
    "token_f1",
]
