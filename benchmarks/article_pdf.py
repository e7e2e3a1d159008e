"""Write the article set as a PDF set: the shipped article typeset 90 characters a line.

    python benchmarks/article_pdf.py /tmp/pdf && python -m assistant eval --set /tmp/pdf

The PDF has no title of its own, and pypdf reads its text back line by line, as it reads most
PDFs: the case `chunking.unwrap` and a PDF's first-line title are for (docs/EVAL.md).
"""

from __future__ import annotations

import argparse
import io
import textwrap
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

ARTICLE = Path(__file__).parent / "article"
LINES_PER_PAGE = 60


def typeset(text: str, width: int = 90) -> bytes:
    """A PDF of `text`, each paragraph wrapped at `width` characters, Helvetica 10 pt."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if paragraph.strip():
            lines += textwrap.wrap(paragraph, width) + [""]
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    for first in range(0, len(lines), LINES_PER_PAGE):
        page = writer.add_blank_page(612, 792)
        shown = [
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*"
            for line in lines[first : first + LINES_PER_PAGE]
        ]
        stream = DecodedStreamObject()
        ops = "BT /F1 10 Tf 12 TL 40 760 Td\n" + "\n".join(shown) + "\nET"
        stream.set_data(ops.encode("latin-1", "replace"))
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the set's folder to write")
    args = parser.parse_args()
    (args.out / "corpus").mkdir(parents=True, exist_ok=True)
    questions = (ARTICLE / "questions.jsonl").read_text("utf-8")
    for source in sorted((ARTICLE / "corpus").glob("*.txt")):
        pdf = args.out / "corpus" / f"{source.stem}.pdf"
        pdf.write_bytes(typeset(source.read_text("utf-8")))
        questions = questions.replace(source.name, pdf.name)
    (args.out / "questions.jsonl").write_text(questions, "utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
