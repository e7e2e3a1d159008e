"""Start the chat window: python app.py [--host H] [--port N] (or ASSISTANT_HOST, _PORT)."""

from __future__ import annotations

import argparse
import logging
import sys

from assistant.config import Config
from assistant.errors import AssistantError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the document assistant's chat window.")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1; others need a login)")
    parser.add_argument("--port", type=int, help="port (default 7860)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from assistant.ui import serve

        serve(Config.from_env(host=args.host, port=args.port))
    except KeyboardInterrupt:
        return 130
    except (AssistantError, OSError) as e:  # a bug keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
