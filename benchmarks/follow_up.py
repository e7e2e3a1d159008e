"""A follow-up's wait, with and without the system prompts' states kept by llama.cpp, in one
process, alternating, medians over the follow-ups and the repeats.

    python benchmarks/follow_up.py [--repeats 2]

Each follow-up of `benchmarks/followups/` is asked as a chat asks it: its earlier question
first (whose answer fills the model's cache), then the follow-up with that turn as history, so
the model rewrites it under the rewrite's own system prompt, then answers it under the
answer's. "Read again" starts from an empty cache with no states kept: the rewrite and then the
answer read their system prompts again. "Loaded back" reads both ahead first, as the app does
while its window opens (`rag.read_ahead`), so each request loads its system prompt's state.
Printed: the rewrite, the evidence on screen, the first token and the whole answer, from the
follow-up's question; and whether both ways read it and answered it alike.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.config import Config  # noqa: E402
from assistant.rag import Assistant, read_ahead  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMES = ("rewrite_ms", "evidence_ms", "first_token_ms", "total_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    lines = (ROOT / "benchmarks" / "followups" / "questions.jsonl").read_text().splitlines()
    follow_ups = [json.loads(line) for line in lines]
    tmp = Path(tempfile.mkdtemp(prefix="follow-up-bench-"))
    shutil.copytree(ROOT / "seeds", tmp / "seeds")
    cfg = Config.from_env(seeds_dir=tmp / "seeds", index_dir=tmp / "index", engine="llamacpp")
    assistant = Assistant.from_config(cfg)
    gen = assistant.generator
    times: dict[str, dict[str, list[float]]] = {
        m: {t: [] for t in TIMES} for m in ("again", "back")
    }
    replies: dict[str, list[tuple[str, str]]] = {"again": [], "back": []}
    for _ in range(args.repeats):
        for q in follow_ups:
            for mode in ("again", "back"):
                gen.reset()
                if mode == "back":
                    read_ahead(gen, cfg.system_prompt)
                assistant.ask(q["history"][0][0])
                answer = assistant.ask(q["question"], [tuple(turn) for turn in q["history"]])
                for t in TIMES:
                    if answer.timings.get(t):
                        times[mode][t].append(answer.timings[t])
                replies[mode].append((answer.standalone_question, answer.text))
    for mode, label in (("again", "read again "), ("back", "loaded back")):
        cells = "  ".join(f"{t[:-3]} {statistics.median(times[mode][t]):6.0f} ms" for t in TIMES)
        print(f"{label}: {cells}")
    ratio = statistics.median(times["back"]["first_token_ms"]) / statistics.median(
        times["again"]["first_token_ms"]
    )
    same = sum(a == b for a, b in zip(replies["again"], replies["back"]))
    print(f"first token loaded back / read again = {ratio:.2f}")
    print(f"read and answered alike: {same} of {len(replies['again'])}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
