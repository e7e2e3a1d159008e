"""Command line: python -m assistant index / ask / eval / serve."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .config import Config
from .errors import AssistantError
from .generation import engine_choices
from .ingest import printable


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=Path, help="documents folder (default: seeds/)")
    parser.add_argument("--index", type=Path, help="index folder (default: index/)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assistant", description="Local question answering over a folder of documents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build or update the index from the seeds folder")
    _common(p)
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait if another build is running (default: refuse at once)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help="read, split and embed the new or changed documents with Ray: no address or "
        "'auto' starts a local instance, a cluster's address (HEAD:6379) joins that "
        "cluster (needs pip install '.[ray]')",
    )

    p = sub.add_parser("ask", help="answer one question from the indexed documents")
    _common(p)
    p.add_argument("question", help="the question, in quotes")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--engine", choices=engine_choices())

    p = sub.add_parser("eval", help="score retrieval, answers, citations and abstention on a set")
    p.add_argument(
        "--set",
        dest="set_dir",
        type=Path,
        required=True,
        help="folder with corpus/ and questions.jsonl",
    )
    p.add_argument("--limit", type=int, help="only the first N questions")
    p.add_argument("--sample", type=int, help="N questions spread evenly over the set")
    p.add_argument("--retrieval-only", action="store_true", help="skip generation")
    p.add_argument("--json", dest="json_file", type=Path, help="write the result here")
    p.add_argument("--engine", choices=engine_choices())
    p.add_argument("-v", "--verbose", action="store_true", help="log diagnostics")

    p = sub.add_parser("serve", help="start the chat window (same as python app.py)")
    _common(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1; others need a login)")
    p.add_argument("--port", type=int, help="port (default 7860)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = Config.from_env(
            seeds_dir=getattr(args, "seeds", None),
            index_dir=getattr(args, "index", None),
            engine=getattr(args, "engine", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
        )
        return COMMANDS[args.command](cfg, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (AssistantError, OSError) as e:
        # What a person can fix: one line. Anything else is a bug and keeps its traceback.
        print(f"error: {printable(str(e))}", file=sys.stderr)
        return 1


def cmd_index(cfg: Config, args: argparse.Namespace) -> int:
    from .rag import build_index

    report = build_index(cfg, progress=_print_progress, lock_wait_s=args.wait, ray=args.ray)
    print(_printable_lines(report.summary()))
    return 0


def _print_progress(fraction: float, message: str) -> None:
    print(f"[{fraction:4.0%}] {printable(message)}", file=sys.stderr, flush=True)


def _printable_lines(text: str) -> str:
    """text with each line's control characters escaped (a file name may hold any)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def cmd_ask(cfg: Config, args: argparse.Namespace) -> int:
    from .rag import Assistant

    assistant = Assistant.from_config(cfg, progress=_print_progress)
    answer = assistant.ask(args.question)
    if args.json:
        print(json.dumps(answer_to_json(answer), ensure_ascii=False, indent=1))
        return 0
    print(answer.text)
    for c in answer.citations:
        mark = "" if c.supported else "  (not supported by this passage)"
        print(f'  [{c.n}] {printable(c.doc_id)}: "{c.quote}"{mark}')
    t = answer.timings
    print(f"({t.get('total_ms', 0) / 1000:.1f} s)", file=sys.stderr)
    return 0


def answer_to_json(answer) -> dict:
    """The --json shape of an Answer."""
    return {
        "answer": answer.text,
        "abstained": answer.abstained,
        "citations": [
            {
                "n": c.n,
                "doc_id": c.doc_id,
                "passage_id": c.passage_id,
                "supported": c.supported,
                "quote": c.quote,
            }
            for c in answer.citations
        ],
        "passages": [
            {
                "n": i,
                "doc_id": h.chunk.doc_id,
                "title": h.chunk.title,
                "text": h.chunk.text,
                "score": round(h.score, 4),
            }
            for i, h in enumerate(answer.passages, 1)
        ],
        "timings": {
            k: answer.timings.get(k)
            for k in ("retrieval_ms", "evidence_ms", "first_token_ms", "total_ms", "tokens_per_s")
        },
        "evidence": [
            {
                "n": u.n,
                "passage": u.passage,
                "doc_id": u.doc_id,
                "text": u.text,
                "start": u.start,
                "end": u.end,
                "similarity": u.similarity,
            }
            for u in answer.evidence
        ],
        "decision": answer.decision,
    }


def cmd_eval(cfg: Config, args: argparse.Namespace) -> int:
    from .evaluation import run_cli

    return run_cli(cfg, args)


def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    serve(cfg)
    return 0


def serve(cfg: Config) -> None:
    """Load the models (building the index on a first start), build the window and serve it.

    `python app.py` and `python -m assistant serve` both come here.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before Gradio is imported
    from .api import MODEL_ID
    from .rag import Assistant
    from .server import launch, resolve_api_key, resolve_auth
    from .ui import build_app
    from .watch import SeedsWatcher

    # Refuse before spending a minute on loading models.
    auth = resolve_auth(cfg)
    api_key = resolve_api_key(cfg)
    where = f"http://{cfg.host}:{cfg.port}"
    if auth:
        print(f"Starting: will serve {where} with a login ({len(auth)} user(s)).", file=sys.stderr)
    else:
        print(f"Starting: will serve {where} to this machine only (no login).", file=sys.stderr)
    key = "with the API key in ASSISTANT_API_KEY" if api_key else "without an API key"
    print(f"OpenAI-compatible API: {where}/v1, model {MODEL_ID}, {key}.", file=sys.stderr)
    started = time.perf_counter()
    assistant = Assistant.from_config(cfg, progress=_print_progress)
    watcher = SeedsWatcher(assistant) if cfg.watch_seeds else None
    demo = build_app(assistant, cfg, watch_status=(lambda: watcher.status) if watcher else None)
    if watcher:
        watcher.start()
        print(f"Watching {cfg.seeds_dir} for changes.", file=sys.stderr)
    print(
        f"Ready in {time.perf_counter() - started:.1f} s: open {where}", file=sys.stderr, flush=True
    )
    try:
        launch(demo, cfg, auth, assistant=assistant, api_key=api_key)
    finally:
        if watcher:
            watcher.stop()


COMMANDS = {"index": cmd_index, "ask": cmd_ask, "eval": cmd_eval, "serve": cmd_serve}
