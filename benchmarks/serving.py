"""Serving: questions per minute and latency p50/p95 with concurrent chats against the running app.

    python app.py --port 7861 &            # the app, serving seeds/
    python benchmarks/serving.py --url http://127.0.0.1:7861 --chats 4 --turns 3

Each chat is its own gradio_client session (so its own history and stop button) asking
--turns questions in a row, the later ones follow-ups; all chats start together. Latency is
from submit to the final streamed update. Prints medians over --repeats rounds and the
ratio of throughput to one chat alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

# Questions about the shipped article (seeds/); each chat rotates through them.
DEFAULT_QUESTIONS = [
    "What did Marco Rubio say the US would do if there is no sign of a ceasefire?",
    "Where did he meet European leaders?",
    "By when should the rare earth metals deal be finalised?",
    "What did Zelensky say about a ceasefire without security guarantees?",
    "Who is Steve Witkoff?",
    "What will the investment fund be used for?",
]


def find_endpoint(client, wanted: str | None) -> str:
    """The chat endpoint: --api-name, else the first named like the UI's ask handler."""
    if wanted:
        return wanted
    names = list(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    for name in names:
        if "ask" in name:
            return name
    raise SystemExit(f"no chat endpoint found among {names}; pass --api-name")


def run_chat(
    url: str,
    api: str,
    questions: list[str],
    out: list[float],
    errors: list[str],
    start: threading.Barrier,
) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    history: list = []
    start.wait()
    for q in questions:
        t0 = time.perf_counter()
        try:
            result = client.predict(q, history, api_name=api)
        except Exception as e:  # a failed request is reported, not timed
            errors.append(f"{type(e).__name__}: {e}")
            continue
        out.append((time.perf_counter() - t0) * 1000)
        if isinstance(result, (list, tuple)) and len(result) > 1 and isinstance(result[1], list):
            history = result[1]


def one_round(url: str, api: str, chats: int, questions: list[list[str]]) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    barrier = threading.Barrier(chats + 1)
    threads = [
        threading.Thread(target=run_chat, args=(url, api, questions[i], latencies, errors, barrier))
        for i in range(chats)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {
        "qpm": len(latencies) / wall * 60,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p95_ms": _p95(latencies),
        "answered": len(latencies),
        "errors": errors,
    }


def _p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def load_questions(path: Path | None) -> list[str]:
    if path is None:
        return DEFAULT_QUESTIONS
    return [json.loads(line)["question"] for line in path.read_text("utf-8").splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--chats", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3, help="questions per chat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--questions", type=Path, help="questions.jsonl (default: the article)")
    parser.add_argument("--api-name", help="chat endpoint (default: found from the app)")
    args = parser.parse_args()
    from gradio_client import Client

    pool = load_questions(args.questions)
    api = find_endpoint(Client(args.url, verbose=False), args.api_name)

    def plan(chats: int) -> list[list[str]]:
        return [
            [pool[(c * args.turns + t) % len(pool)] for t in range(args.turns)]
            for c in range(chats)
        ]

    results = {}
    for chats in sorted({1, args.chats}):
        rounds = [one_round(args.url, api, chats, plan(chats)) for _ in range(args.repeats)]
        for r in rounds:
            for e in r["errors"]:
                print(f"error ({chats} chats): {e}", file=sys.stderr)
        results[chats] = {
            k: statistics.median(r[k] for r in rounds)
            for k in ("qpm", "p50_ms", "p95_ms", "answered")
        }
        r = results[chats]
        print(
            f"{chats} concurrent chat(s), {args.turns} turns each, medians of {args.repeats}: "
            f"{r['qpm']:.1f} questions/min, latency p50 {r['p50_ms'] / 1000:.1f} s, "
            f"p95 {r['p95_ms'] / 1000:.1f} s",
            flush=True,
        )
    if 1 in results and args.chats in results and args.chats != 1:
        print(
            f"throughput ratio {args.chats} chats / 1 chat: "
            f"{results[args.chats]['qpm'] / results[1]['qpm']:.2f}x; "
            f"p95 latency ratio: {results[args.chats]['p95_ms'] / results[1]['p95_ms']:.2f}x"
        )


if __name__ == "__main__":
    main()
