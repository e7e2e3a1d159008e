"""Write the article set as a PDF set: the shipped article typeset 90 characters a line.

    python benchmarks/article_pdf.py /tmp/pdf && python -m assistant eval --set /tmp/pdf
    python benchmarks/article_pdf.py --printed /tmp/printed
    python -m assistant eval --set /tmp/printed

The PDF has no title of its own, and pypdf reads its text back line by line, as it reads most
PDFs: the case `chunking.unwrap` and a PDF's first-line title are for (docs/EVAL.md).
`--printed` typesets it as a browser prints a web page: 30 lines a page, each page headed by
the time printed and the page's title and footed by its address and "page/pages", the lines
`ingest` drops as running headers and footers.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakes import pdf_bytes  # noqa: E402  (the tests' PDF writer: one writer for both)

ARTICLE = Path(__file__).parent / "article"
LINES_PER_PAGE = 60
PRINTED_LINES_PER_PAGE = 30


def typeset(text: str, width: int = 90, printed: str = "") -> bytes:
    """A PDF of `text`, each paragraph wrapped at `width` characters, Helvetica 10 pt; when
    `printed` (a page's address), as a browser prints it."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if paragraph.strip():
            lines += textwrap.wrap(paragraph, width) + [""]
    per_page = PRINTED_LINES_PER_PAGE if printed else LINES_PER_PAGE
    pages = [lines[first : first + per_page] for first in range(0, len(lines), per_page)]
    if printed:
        title = textwrap.shorten(text.strip().splitlines()[0].lstrip("# "), 60, placeholder="...")
        pages = [
            [f"4/18/25, 10:15 AM    {title}", "", *page, "", f"{printed}    {i}/{len(pages)}"]
            for i, page in enumerate(pages, 1)
        ]
    return pdf_bytes(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the set's folder to write")
    parser.add_argument("--printed", action="store_true", help="as a browser prints a page")
    args = parser.parse_args()
    (args.out / "corpus").mkdir(parents=True, exist_ok=True)
    questions = (ARTICLE / "questions.jsonl").read_text("utf-8")
    for source in sorted((ARTICLE / "corpus").glob("*.txt")):
        pdf = args.out / "corpus" / f"{source.stem}.pdf"
        address = f"https://news.example.org/world/{source.stem}" if args.printed else ""
        pdf.write_bytes(typeset(source.read_text("utf-8"), printed=address))
        questions = questions.replace(source.name, pdf.name)
    (args.out / "questions.jsonl").write_text(questions, "utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
