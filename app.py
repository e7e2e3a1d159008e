"""Start the chat window: python app.py [--host H] [--port N] (or ASSISTANT_HOST, _PORT).

The same as `python -m assistant serve`, through the same code: cli.serve and its error lines.
"""

from __future__ import annotations

import sys

from assistant import cli


def main(argv: list[str] | None = None) -> int:
    return cli.main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
