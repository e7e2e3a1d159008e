"""Time to the first token on evidence prompts, with and without llama.cpp's cache of the
prompt's shared front (the system prompt), in one process, alternating, medians.

    python benchmarks/first_token.py [--repeats 3]

Each request is the product's own: the shipped article's passages retrieved for a question, its
evidence units, the fixed system prompt, and the model's first token of the answer.
"Cold" resets the model's cache before each request, so the whole prompt is processed: a
fresh process's first question, were nothing read ahead. "Ahead" resets it and then reads the
system prompt ahead (untimed), as the app does while its window opens: a fresh process's first
question. "Warm" keeps the cache of the request before, as for every later question, so only
the part after the system prompt is processed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant import evidence  # noqa: E402
from assistant.citations import evidence_messages  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.rag import Assistant  # noqa: E402

QUESTIONS = [
    "By what date should the rare earth deal be finalized?",
    "Where did Rubio meet European leaders?",
    "Who is Ukraine's foreign minister?",
    "What did Zelensky say about a ceasefire without security guarantees?",
    "Who hinted at the deal during a press conference?",
    "What will the US do if there are no signs of a ceasefire?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = Path(__file__).resolve().parent.parent
    cfg = Config.from_env(
        seeds_dir=root / "seeds", index_dir=Path("/tmp/first-token-bench-index"), engine="llamacpp"
    )
    assistant = Assistant.from_config(cfg)
    gen = assistant.generator
    prompts = []
    for q in QUESTIONS:
        hits = assistant.retrieve(q)
        units = evidence.select(q, hits, assistant.embedder.embed, cfg.evidence_units)
        messages = evidence_messages(q, units, cfg.system_prompt)
        tokens = sum(gen.count_tokens(m["content"]) for m in messages)
        prompts.append((messages, tokens))
    system_tokens = gen.count_tokens(cfg.system_prompt)

    def first_ms(messages, mode: str) -> float:
        if mode != "warm":
            gen.reset()  # the cache emptied, and no state kept to load back
        if mode == "ahead":
            gen.prime(cfg.system_prompt)
        started = time.perf_counter()
        list(gen.stream(messages, 1))
        return (time.perf_counter() - started) * 1000

    timings: dict[str, list[float]] = {"cold": [], "ahead": [], "warm": []}
    for _ in range(args.repeats):
        for messages, _ in prompts:
            for mode in timings:
                # Warm: the previous request (another question) left the system prompt cached.
                list(gen.stream(prompts[0][0], 1))
                timings[mode].append(first_ms(messages, mode))
    tokens = statistics.median(t for _, t in prompts)
    cold, ahead, warm = (statistics.median(timings[m]) for m in ("cold", "ahead", "warm"))
    print(f"prompt tokens p50 {tokens:.0f} (system prompt {system_tokens})")
    print(f"cold (whole prompt processed): {cold:.0f} ms p50, {tokens / cold * 1000:.1f} tok/s")
    print(f"ahead (system prompt read ahead, a fresh process): {ahead:.0f} ms p50")
    warm_rate = (tokens - system_tokens) / warm * 1000
    print(f"warm (system prompt cached):   {warm:.0f} ms p50, {warm_rate:.1f} tok/s")
    print(f"warm / cold = {warm / cold:.2f}, ahead / cold = {ahead / cold:.2f}")


if __name__ == "__main__":
    main()
