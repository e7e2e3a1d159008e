"""Fit the answer-or-refuse decision on the dev sets and print its trade-off curve.

Runs the normal eval (real models) with `answer_threshold=0`, so every question gets its evidence
units, the model's short answer, and the features of the unit that answer rests on; replies are
kept in the eval replies cache, so a second run replays them in about a minute. Then:

- every question the model answered (it did not reply "not found") is one example: label 1 when
  the answer is right (a short RGB answer in the model's reply; for CLAPnq, the unit it rests on
  overlaps a gold sentence of a gold document), 0 otherwise and for every unanswerable question;
- a logistic model over `decision.FEATURES` is fitted to those examples (Newton's method, a
  little L2), with `--fit`, one for short answers (`WEIGHTS`) and one for statement questions,
  answered with a unit's own words (`STATEMENT_WEIGHTS`); otherwise the weights in
  assistant/decision.py are scored;
- each feature's worth: in each set, the AUC of its right answers against its wrong ones
  (rgb-reject's wrong answers against rgb-noise's right ones);
- for thresholds 0.05..0.95, the curve: refusal of unanswerable questions, false refusal of
  answerable ones, and the share of answers given that are right (a short answer whose
  closest unit is below `min_answer_similarity` counts as refused at every threshold).

    python benchmarks/decision.py ../shared/eval/rgb-noise ../shared/eval/rgb-reject \
        ../shared/eval/clapnq-dev benchmarks/article --sample 100 --fit \
        --answers-from ../shared/eval/rgb-noise

Some "unanswerable" rgb-reject questions are answered by their noise passages after all (the
noise for "When was GPT-3 released?" says "June of 2020"). With `--answers-from`, an unanswerable
question whose units state the gold answer of the same question id in that set is listed and
left out of the fit and the curve, instead of being fitted as a unit to refuse.

The weights it prints go into `decision.WEIGHTS` and `decision.STATEMENT_WEIGHTS`; the curves
go into docs/EVAL.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np

from assistant import decision
from assistant.config import Config
from assistant.evaluation import answer_correct, evaluate, is_short, load_set, normalize, replaying
from assistant.generation import load_generator
from assistant.rag import make_embedder


def unit_states_answer(unit: dict, q) -> bool:
    """Whether an evidence unit (an eval row's dict) states the question's gold answer."""
    if not q.answerable:
        return False
    short = [a for a in q.answers if is_short(a)]
    if short:
        return answer_correct(unit["text"], short)
    if unit["doc_id"] not in q.gold_docs:
        return False
    text = normalize(unit["text"])
    gold = [normalize(s) for s in q.gold_sentences if normalize(s)]
    return any(text in s or s in text for s in gold) if gold else True


def statement(q) -> bool:
    """Whether the question is answered by a unit's own words (decision.attribute_statement)."""
    return decision.asked_type(q.question) == "statement"


def example(q, row) -> tuple[dict[str, float], bool] | None:
    """(features, right) for one eval row the model answered; None when it replied "not found".

    A short answer is right when the model's reply holds a gold answer; a statement's answer,
    or a long CLAPnq one, when the unit it rests on states it.
    """
    record = row.get("decision") or {}
    if "unit" not in record:
        return None
    features = {name: record[name] for name in decision.FEATURES}
    short = [a for a in q.answers if is_short(a)]
    if not q.answerable:
        return features, False
    if short and not statement(q):
        return features, answer_correct(row.get("raw", ""), short)
    unit = row["evidence"][int(record["unit"]) - 1]
    return features, unit_states_answer(unit, q)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method; weights then intercept."""
    x1 = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x1.shape[1])
    reg = l2 * np.eye(len(w))
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x1 @ w))
        grad = x1.T @ (p - y) + reg @ w
        hess = (x1.T * (p * (1 - p))) @ x1 + reg
        w -= np.linalg.solve(hess, grad)
    return w


def curve(questions, weights, closest: float) -> list[tuple[float, float, float, float]]:
    """(threshold, refusal of unanswerable, false refusal of answerable, right when answered).

    An answer whose closest unit is less similar to the question than `closest` is refused
    whatever its probability (`Config.min_answer_similarity`, short answers only).
    """
    out = []
    for t in [i / 20 for i in range(1, 20)]:
        refused_u, refused_a, right, n_u, n_a = 0, 0, 0, 0, 0
        for q, ex in questions:
            answered = (
                ex is not None
                and decision.probability(ex[0], weights) >= t
                and ex[0]["best_similarity"] >= closest
            )
            if q.answerable:
                n_a += 1
                refused_a += not answered
                right += answered and ex[1]
            else:
                n_u += 1
                refused_u += not answered
        answered_a = n_a - refused_a
        out.append(
            (t, refused_u / max(n_u, 1), refused_a / max(n_a, 1), right / max(answered_a, 1))
        )
    return out


def auc(right: list[float], wrong: list[float]) -> float | None:
    """The chance that a right answer scores above a wrong one (ties count half)."""
    if not right or not wrong:
        return None
    pairs = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return pairs / (len(right) * len(wrong))


def separation(questions, weights, partner: str | None) -> None:
    """Each feature's worth: in each set, the AUC of its right answers against its wrong ones.

    A set with no answerable questions (rgb-reject) is compared with the right answers of
    `partner`, the set of --answers-from (rgb-noise: the same questions with their answers).
    """
    answered = [(s, ex) for s, _, ex in questions if ex is not None]
    names = list(dict.fromkeys(s for s, _ in answered))
    print("\nfeature            " + "  ".join(f"{n:>12}" for n in names))
    scorers = [(f, lambda e, f=f: e[f]) for f in decision.FEATURES]
    scorers.append(("probability", lambda e: decision.probability(e, weights)))
    for label, score in scorers:
        cells = []
        for n in names:
            right = [score(ex[0]) for s, ex in answered if s == n and ex[1]]
            if not right:
                right = [score(ex[0]) for s, ex in answered if s == partner and ex[1]]
            value = auc(right, [score(ex[0]) for s, ex in answered if s == n and not ex[1]])
            cells.append(f"{value:12.2f}" if value is not None else f"{'n/a':>12}")
        print(f"{label:18s} " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", type=Path)
    parser.add_argument("--sample", type=int, default=None, help="N questions per set, spread")
    parser.add_argument("--fit", action="store_true", help="fit new weights (else score WEIGHTS)")
    parser.add_argument("--answers-from", type=Path, help="a set with the same ids and answers")
    args = parser.parse_args()
    elsewhere = (
        {q.id: q for q in load_set(args.answers_from).questions} if args.answers_from else {}
    )
    logging.basicConfig(level=logging.WARNING)
    cfg = dataclasses.replace(Config.from_env(), answer_threshold=0.0, statement_threshold=0.0)
    embedder = make_embedder(cfg)
    generator = replaying(cfg, load_generator(cfg))
    questions = []
    for set_dir in args.sets:
        eval_set = load_set(set_dir, sample=args.sample)
        result = evaluate(eval_set, cfg, embedder, generator)
        by_id = {q.id: q for q in eval_set.questions}
        for row in result["rows"]:
            q = by_id[row["id"]]
            row["question"] = q.question
            other = elsewhere.get(q.id)
            if not q.answerable and other is not None and other.answerable:
                stating = [u for u in row.get("evidence", []) if unit_states_answer(u, other)]
                if stating:
                    print(f"answered by its own evidence: {q.question!r}: {stating[0]['text']!r}")
                    continue
            questions.append((eval_set.name, q, example(q, row)))
    kinds = {
        "short answers": ("WEIGHTS", decision.WEIGHTS, False),
        "statements": ("STATEMENT_WEIGHTS", decision.STATEMENT_WEIGHTS, True),
    }
    for kind, (name, weights, quoted) in kinds.items():
        mine = [(s, q, ex) for s, q, ex in questions if statement(q) == quoted]
        if not mine:
            continue
        print(f"\n== {kind}: {len(mine)} questions")
        weights = np.array(weights, dtype=float)
        closest = -1.0 if quoted else cfg.min_answer_similarity  # statements have no floor
        if args.fit:
            answered = [ex for *_, ex in mine if ex is not None]
            x = np.array([[f[n] for n in decision.FEATURES] for f, _ in answered])
            y = np.array([float(right) for _, right in answered])
            weights = fit(x, y)
            print(f"{len(y)} answers, {int(y.sum())} right")
            print(f"{name} = (" + ", ".join(f"{w:.3f}" for w in weights) + ")")
            if not quoted:
                for feature in ("confidence", "not_found"):
                    median = float(np.median(x[:, decision.FEATURES.index(feature)]))
                    print(f"UNKNOWN_{feature.upper()} = {median:.3f}")
            print("  " + ", ".join(decision.FEATURES) + ", intercept")
        separation(mine, weights, args.answers_from.name if args.answers_from else None)
        for set_name in dict.fromkeys(s for s, *_ in mine):
            print(f"\n{set_name}, {kind}")
            print("threshold  refused_unanswerable  false_refusal  right_when_answered")
            of_set = [(q, ex) for s, q, ex in mine if s == set_name]
            for t, ru, ra, right in curve(of_set, weights, closest):
                print(f"{t:9.2f}  {ru:20.3f}  {ra:13.3f}  {right:19.3f}")


if __name__ == "__main__":
    main()
