"""Splitting Documents into passages sized in the embedder's own tokens, with exact offsets.

Example:
    >>> from assistant.schema import Document
    >>> doc = Document("a.txt", "A", "First paragraph. It is short.\\nSecond one.")
    >>> [(c.paragraph, c.text) for c in split(doc, lambda s: len(s.split()), 5, 0)]
    [(1, 'First paragraph. It is short.'), (2, 'Second one.')]
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable

from .schema import Chunk, Document

# Paragraphs first, then sentences, then clauses, then words: the splitter only cuts inside a
# sentence when that one sentence alone is longer than a passage.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ": ", ", ", " ", ""]
SPLITTER_ID = "recursive-v4"  # v2: a lone heading opens the passage after it; v3: a last one
# too; v4: so does a passage of one short line (a plain-text title)
HEADING = re.compile(r"^#+\s[^\n]*$")  # a Markdown heading line, alone ("# Title")
# Text whose last lines are headings ("# Title\n\n## Intro"): the run of them.
_ENDS_IN_HEADING = re.compile(r"(?:\A|\n)((?:#+[ \t][^\n]*\n\s*)*#+[ \t][^\n]*)\Z")


# A text whose widest line is this long may be hard-wrapped (narrower: a list of short lines).
WRAP_WIDTHS = (40, 120)
# A line that opens a heading, a list item, a quote or a table row ("# ", "- ", "2. ", "| ").
_OPENS_ITEM = re.compile(r"^\s*(?:[#*•|>+-]|\d+[.)]\s)")


def unwrap(text: str) -> str:
    r"""`text` with the line breaks inside hard-wrapped paragraphs turned into spaces.

    A file saved at a fixed width, or a PDF's text ("... a ceasefire can be\nreached, US
    Secretary ..."), breaks its sentences at every line's end. A line that runs to near the
    widest line of a text as wide as `WRAP_WIDTHS` allow, with another line of its paragraph
    after it, continues on that line; headlines, list items, table rows and paragraphs written
    on one line keep their breaks. The length stays the same, so offsets into the text hold.

    >>> unwrap("The rare earth deal between the two countries is due\nby April 26.\n\n# Next")
    'The rare earth deal between the two countries is due by April 26.\n\n# Next'
    >>> unwrap("Director: Justin Kurzel\nStarring: Michael Fassbender")
    'Director: Justin Kurzel\nStarring: Michael Fassbender'
    """
    lines = text.split("\n")
    width = max(len(line.rstrip()) for line in lines)
    if not WRAP_WIDTHS[0] <= width <= WRAP_WIDTHS[1]:
        return text
    out = []
    for line, after in zip(lines, lines[1:]):
        soft = (
            len(line.rstrip()) >= 0.7 * width
            and after.strip()
            and line.lstrip()[:1] not in "#|"
            and not _OPENS_ITEM.match(after)
        )
        out.append(line + (" " if soft else "\n"))
    return "".join(out) + lines[-1]


def paragraph_starts(text: str) -> list[int]:
    """Offsets where paragraphs start: blank-line separated if there are blank lines, else lines."""
    sep = r"\n\s*\n" if re.search(r"\n\s*\n", text) else r"\n"
    starts = [0]
    for match in re.finditer(sep, text):
        starts.append(match.end())
    return starts


def split(
    doc: Document, count_tokens: Callable[[str], int], chunk_tokens: int, overlap: int
) -> list[Chunk]:
    """Split a document into Chunks of at most chunk_tokens tokens (as counted by count_tokens)."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    # Cached: a long run without spaces is split into single characters, each counted.
    length = functools.lru_cache(maxsize=1 << 16)(count_tokens)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=overlap,
        length_function=length,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )
    spans: list[tuple[int, int]] = []
    cursor = 0
    for piece in splitter.split_text(doc.text):
        start = doc.text.find(piece, cursor)
        if start < 0:  # overlap moved us past it; search from the top as a fallback
            start = doc.text.find(piece)
        if start < 0:
            continue
        cursor = start + 1
        end = start + len(piece)
        at, last_end = spans[-1] if spans else (end, end)
        last = _ENDS_IN_HEADING.search(doc.text[at:last_end])
        if not last and last_end <= start and "\n" not in doc.text[at:last_end]:
            # A passage of one line that the text after it did not fit with: a plain-text
            # title ("Talks stall in Paris" over a long first paragraph) or a lone short line.
            last = re.match(r"(.*)", doc.text[at:last_end])
        if last and length(last.group(1)) <= chunk_tokens // 4:
            # Headings that end a passage (or are all of it) belong to the text after them:
            # they open that passage instead, so a section's passage says what it is about and a
            # lone title takes no retrieval place. The passage then runs over chunk_tokens by
            # those lines, a quarter of it at most (the default 200 + 50 stays within MiniLM's
            # 256 word pieces).
            kept = doc.text[at : at + last.start(1)].rstrip()
            spans[-1:] = [(at, at + len(kept))] if kept else []
            start = min(start, at + last.start(1))
        spans.append((start, end))
    paragraphs = paragraph_starts(doc.text)
    chunks: list[Chunk] = []
    for start, end in spans:
        page = bisect.bisect_right(doc.page_starts, start) if doc.page_starts else None
        chunks.append(
            Chunk(
                id=f"{doc.id}#{len(chunks)}",
                doc_id=doc.id,
                text=doc.text[start:end],
                start=start,
                end=end,
                paragraph=bisect.bisect_right(paragraphs, start),
                title=doc.title,
                date=doc.date,
                page=page,
                file_date=doc.file_date,
            )
        )
    return chunks
