"""Is a yes/no check turn after the answer worth its time? The AUC of its P(yes) per wording.

After each evidence answer the model is asked, in the same conversation (so llama.cpp reuses
the cached prompt and reply and reads only the new turn), a yes/no question; P(yes) is read from
the next-token logits ("yes"/"Yes" against "no"/"No"). Each answered question is labelled as in
benchmarks/decision.py (rgb-reject questions whose own noise states the rgb-noise answer are
left out), and the script prints the AUC of right against wrong answers for each wording, for
the fitted decision, and for the two summed.

    python benchmarks/check_turn.py --limit 40    # the first 40 of rgb-noise and rgb-reject

Needs the llama.cpp engine. Answers go through the eval replies cache like any eval run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from decision import auc, example, unit_states_answer  # noqa: E402

from assistant import decision  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.evaluation import evaluate, load_set, replaying  # noqa: E402
from assistant.generation import load_generator  # noqa: E402
from assistant.rag import make_embedder  # noqa: E402

CHECKS = (
    "Is that answer stated in the sentences? Reply yes or no.",
    "Does a sentence state that answer for exactly the year, event and person the question "
    "asks about? Reply yes or no.",
    "Are you sure? Reply yes or no.",
)
CHECKS_WORDS = ("yes", "Yes", "no", "No")
EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"


class Checking:
    """A generator that, after each evidence answer, asks every CHECKS turn and keeps P(yes)."""

    def __init__(self, inner, cfg: Config) -> None:
        # Its own name keeps its rows apart from plain eval runs (whose results would be reused
        # without asking); the answers still come from the replies cache.
        self.inner, self.name, self.cfg = inner, f"{inner.name}+check", cfg
        self.engine = inner.inner  # the LlamaCppGenerator under the replies cache
        llama = self.engine.llama
        self.ids = {w: llama.tokenize(w.encode(), add_bos=False)[0] for w in CHECKS_WORDS}
        # The question -> the model's reply, and P(yes) for each check (one set at a time).
        self.raw: dict[str, str] = {}
        self.p_yes: dict[str, list[float]] = {}
        self.ms: list[float] = []

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def stream(self, messages, max_new_tokens=256, stop=None):
        pieces = []
        for piece in self.inner.stream(messages, max_new_tokens, stop=stop):
            pieces.append(piece)
            yield piece
        if messages[0]["content"] != self.cfg.system_prompt:
            return  # a follow-up rewrite
        reply = {"role": "assistant", "content": "".join(pieces)}
        question = messages[1]["content"].split("\n\nQuestion: ", 1)[1].split("\n")[0]
        self.raw[question] = reply["content"]
        self.p_yes[question] = [
            self._p_yes(messages + [reply, {"role": "user", "content": c}]) for c in CHECKS
        ]

    def _p_yes(self, messages) -> float:
        started = time.perf_counter()
        llama = self.engine.llama
        with self.engine._lock:
            steps = llama.generate(self.engine._prompt_tokens(messages), top_k=1, temp=0.0)
            next(steps)  # the prompt is read; the last position's logits are the answer's
            logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))
            steps.close()
        self.ms.append((time.perf_counter() - started) * 1000)
        yes = np.logaddexp(logits[self.ids["yes"]], logits[self.ids["Yes"]])
        no = np.logaddexp(logits[self.ids["no"]], logits[self.ids["No"]])
        return float(1 / (1 + math.exp(no - yes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40, help="questions per set")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = dataclasses.replace(Config.from_env(), answer_threshold=0.0)
    checking = Checking(replaying(cfg, load_generator(cfg)), cfg)
    embedder = make_embedder(cfg)
    noise = {q.id: q for q in load_set(EVAL / "rgb-noise").questions}
    rows = []  # (features, right, P(yes) per check)
    for name in ("rgb-noise", "rgb-reject"):
        eval_set = load_set(EVAL / name, limit=args.limit)
        by_id = {q.id: q for q in eval_set.questions}
        checking.raw.clear()  # rgb-reject asks rgb-noise's questions again
        checking.p_yes.clear()
        for row in evaluate(eval_set, cfg, embedder, checking)["rows"]:
            q = by_id[row["id"]]
            key = q.question
            if key not in checking.p_yes:
                continue  # refused before the model
            row["raw"] = checking.raw[key]
            ex = example(q, row)
            if ex is None or (
                not q.answerable
                and any(unit_states_answer(u, noise[q.id]) for u in row["evidence"])
            ):
                continue
            rows.append((ex[0], ex[1], checking.p_yes[key]))
    right = [r for r in rows if r[1]]
    wrong = [r for r in rows if not r[1]]
    print(
        f"{len(right)} right, {len(wrong)} wrong answers; a check turn takes "
        f"{statistics.median(checking.ms):.0f} ms (median)"
    )

    def logit(f):
        p = decision.probability(f)
        return math.log(p / (1 - p))

    fitted = auc([logit(r[0]) for r in right], [logit(r[0]) for r in wrong])
    print(f"fitted decision: AUC {fitted:.3f}")
    for i, check in enumerate(CHECKS):
        alone = auc([r[2][i] for r in right], [r[2][i] for r in wrong])
        summed = auc(
            [logit(r[0]) + 4 * r[2][i] for r in right], [logit(r[0]) + 4 * r[2][i] for r in wrong]
        )
        print(f"{check[:60]!r}: AUC {alone:.3f} alone, {summed:.3f} added to the decision")


if __name__ == "__main__":
    main()
