"""Reading the seeds folder: finding document files and turning each into a Document."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import logging
import os
import re
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .chunking import unwrap
from .errors import AssistantError
from .schema import Document

log = logging.getLogger(__name__)

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
# How files become Documents (titles, dates, text). The manifest records it; a build with
# another reader reads every document again. v1 titled plain text by its file name.
# v3: a hard-wrapped first paragraph is read whole as the title; v4: a PDF without a title of
# its own is titled by its first line, as plain text is; v5: a PDF's running headers, footers
# and page numbers are left out, and a sentence runs on over a page break; a web page whose
# title holds its headline is titled by the headline.
READER = "reader-v5"
TITLE_MAX_CHARS = 160  # a longer first line is a paragraph, not a heading
_TEMP_SUFFIXES = ("~", ".tmp", ".swp", ".part", ".crdownload")


class IngestError(AssistantError):
    """A file cannot be read as a document; the message is the reason shown to the user."""


@dataclass(frozen=True)
class SourceFile:
    """A candidate document on disk: its id (path below the seeds folder) and content hash."""

    id: str
    path: Path
    sha256: str
    size: int


def scan(
    seeds_dir: Path, follow_external_links: bool = False
) -> tuple[list[SourceFile], list[tuple[str, str]]]:
    """List document files under seeds_dir, sorted by id; also (id, reason) for skipped files.

    Hidden and temporary files are ignored silently; symlinks inside the seeds folder are
    followed once (a loop is cut where it closes); links out of it only if
    follow_external_links; unreadable files, unsupported types and names that are not valid
    UTF-8 are reported.
    """
    files: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    for doc_id, path, reason in walk(seeds_dir, follow_external_links):
        if reason:
            skipped.append((doc_id, reason))
            continue
        try:
            data = path.read_bytes()
        except OSError as e:
            skipped.append((doc_id, f"cannot read: {e.strerror or e}"))
            continue
        files.append(SourceFile(doc_id, path, hashlib.sha256(data).hexdigest(), len(data)))
    files.sort(key=lambda f: f.id)
    return files, skipped


def walk(seeds_dir: Path, follow_external_links: bool = False) -> Iterator[tuple[str, Path, str]]:
    """(id, path, reason) for each file and folder the scan does not pass over silently, without
    reading any: reason is "" for a document file the scan reads, else why it skips that one
    (a skipped folder's id ends in "/")."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise IngestError(f"seeds folder {seeds_dir} does not exist: create it and add documents")
    base = os.path.realpath(seeds_dir)
    seen_dirs: set[str] = set()

    def refused(path: Path, name: str, kind: str) -> str | None:
        """Why a file or folder found by the walk is not read, or None to read it."""
        if not _is_utf8(name):
            return f"{kind} name is not valid UTF-8; rename it"
        if not follow_external_links and os.path.islink(path):
            target = os.path.realpath(path)
            if os.path.commonpath([base, target]) != base:
                return "link points outside the seeds folder"
        return None

    for root, dirs, names in os.walk(seeds_dir, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:
            dirs[:] = []
            yield _rel(Path(root), seeds_dir) + "/", Path(root), "symlink loop: folder already read"
            continue
        seen_dirs.add(real)
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            reason = refused(Path(root) / d, d, "folder")
            if reason:
                yield _rel(Path(root) / d, seeds_dir) + "/", Path(root) / d, reason
            else:
                keep.append(d)
        dirs[:] = keep
        for name in sorted(names):
            path = Path(root) / name
            if ignored(name, top_level=path.parent == seeds_dir):
                continue
            doc_id = _rel(path, seeds_dir)
            reason = refused(path, name, "file")
            if not reason and path.suffix.lower() not in SUFFIXES:
                reason = f"unsupported type {path.suffix or '(none)'}"
            yield doc_id, path, reason or ""


def ignored(name: str, top_level: bool) -> str:
    """Why the scan passes over a file name without a word ("" if it reads it): hidden and
    temporary files, and the seeds folder's own README.md."""
    if name.startswith((".", "~$")) or name.endswith(_TEMP_SUFFIXES):
        return f"{name} would not be indexed (a hidden or temporary file name)"
    if top_level and name == "README.md":
        return "README.md at the top of the documents folder is not indexed"
    return ""


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")  # undecodable bytes arrive from os.walk as lone surrogates
    except UnicodeEncodeError:
        return False
    return True


def _rel(path: Path, base: Path) -> str:
    """The id of a path below base; bytes that are not UTF-8 shown escaped (caf\\xe9.txt)."""
    rel = path.relative_to(base).as_posix()
    return rel if _is_utf8(rel) else os.fsencode(rel).decode("utf-8", "backslashreplace")


# Control, format (bidi overrides), surrogate, private, unassigned, line/paragraph separators.
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def printable(text: str) -> str:
    """text with control and other unprintable characters escaped (\\x1b), safe to print."""
    return "".join(
        c.encode("unicode_escape", "backslashreplace").decode("ascii")
        if unicodedata.category(c) in _UNPRINTABLE
        else c
        for c in text
    )


def read_bytes(source: SourceFile, max_bytes: int = 20_000_000) -> bytes:
    """The file's bytes as they are now, or IngestError if unreadable or above max_bytes."""
    try:
        with open(source.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(max_bytes + 1) if size <= max_bytes else b""
    except OSError as e:
        raise IngestError(f"cannot read: {e.strerror or e}") from None
    if size > max_bytes or len(data) > max_bytes:
        _too_large(max(size, len(data)), max_bytes)
    return data


def _too_large(size: int, max_bytes: int) -> None:
    raise IngestError(
        f"too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB limit; "
        "raise ASSISTANT_MAX_DOCUMENT_BYTES to index it)"
    )


def read_document(
    source: SourceFile, max_bytes: int = 20_000_000, data: bytes | None = None
) -> Document:
    """Parse one file (or data, its bytes already read) into a Document, or raise IngestError."""
    if data is None:
        data = read_bytes(source, max_bytes)
    if len(data) > max_bytes:
        _too_large(len(data), max_bytes)
    suffix = source.path.suffix.lower()
    fallback_title = _title_from_name(source.path)
    if suffix == ".pdf":
        doc = _read_pdf(source.id, data, fallback_title)
    else:
        text = _decode(data)
        if suffix in (".html", ".htm"):
            doc = _read_html(source.id, text, fallback_title)
        elif suffix in (".md", ".markdown"):
            doc = _read_markdown(source.id, text, fallback_title)
        else:
            text = _clean(text)
            title = first_line_title(text) or fallback_title
            doc = Document(source.id, title, text, find_date(text))
    if not doc.text.strip():
        raise IngestError("no text (empty document)")
    return dataclasses.replace(doc, file_date=file_date(source.path))


def file_date(path: Path) -> str | None:
    """The file's modification day (local time, ISO), shown when the text states no date."""
    try:
        return time.strftime("%Y-%m-%d", time.localtime(os.stat(path).st_mtime))
    except OSError:
        return None


def first_line_title(text: str) -> str:
    """The first line of a text as its title, when it reads like one: short, with more after it.

    >>> first_line_title("Talks stall in Paris\\n\\nRubio warned the US could walk away.")
    'Talks stall in Paris'
    >>> first_line_title("One line only.")
    ''
    """
    head, _, rest = unwrap(text.strip()).partition("\n")  # a wrapped headline, whole
    head = " ".join(head.split())
    if not head or not rest.strip() or len(head) > TITLE_MAX_CHARS:
        return ""
    return head


def _decode(data: bytes) -> str:
    if not data.strip():
        raise IngestError("empty file")
    if b"\x00" in data[:8192]:
        raise IngestError("binary content, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise IngestError(
            f"not valid UTF-8 (byte {e.start}); re-save the file as UTF-8 text"
        ) from None


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Control characters other than newline and tab only confuse the splitter and the model.
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text)
    return text.strip()


def _title_from_name(path: Path) -> str:
    stem = re.sub(r"[_\-]+", " ", path.stem).strip()
    return stem[:1].upper() + stem[1:] if stem else path.name


def _read_markdown(doc_id: str, text: str, fallback_title: str) -> Document:
    text = _clean(text)
    match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)
    title = match.group(1).strip() if match else first_line_title(text) or fallback_title
    return Document(doc_id, title, text, find_date(text))


_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "head",
)
_BLOCK_TAGS = (
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "blockquote",
    "pre",
    "td",
    "th",
    "figcaption",
    "dt",
    "dd",
)
# The <meta> attributes that may name a page's publication date, in order of trust.
_DATE_METAS: tuple[dict[str, Any], ...] = (
    {"property": "article:published_time"},
    {"name": "date"},
    {"name": "pubdate"},
    {"itemprop": "datePublished"},
)


def _read_html(doc_id: str, text: str, fallback_title: str) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    h1, time_tag = soup.find("h1"), soup.find("time")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    title = title or (h1.get_text(" ", strip=True) if h1 else "")
    date = None
    for attrs in _DATE_METAS:
        meta = soup.find("meta", attrs=attrs)
        if meta and meta.get("content"):
            content = cast(str, meta["content"])  # a single-valued attribute, never a list
            date = find_date(content) or content[:10]
            break
    if date is None and time_tag and time_tag.get("datetime"):
        date = find_date(cast(str, time_tag["datetime"]))
    for tag in soup(_DROP_TAGS):
        tag.decompose()
    body = soup.find("article") or soup.find("main") or soup.body or soup
    # A page's title often adds the site's name to the headline ("Talks stall | World | The
    # Times"): the headline it holds is the title then (the article's, not a logo's in the
    # page's header, dropped above).
    h1 = body.find("h1")
    if h1 and (headline := h1.get_text(" ", strip=True)) and headline in title:
        title = headline
    blocks = [
        b.get_text(" ", strip=True)
        for b in body.find_all(_BLOCK_TAGS)
        if not b.find_parent(_BLOCK_TAGS)
    ]
    blocks = [b for b in blocks if b]
    if not blocks:  # markup without block elements: take all visible text
        blocks = [line.strip() for line in body.get_text("\n").splitlines() if line.strip()]
    body_text = _clean(html.unescape("\n\n".join(blocks)))
    return Document(doc_id, title or fallback_title, body_text, date or find_date(body_text))


def _read_pdf(doc_id: str, data: bytes, fallback_title: str) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError("encrypted PDF (password protected)")
        pages = [_clean(page.extract_text() or "") for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except IngestError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, NotImplementedError) as e:
        raise IngestError(f"corrupt PDF ({type(e).__name__}: {e})") from None
    except Exception as e:  # pypdf raises many kinds on damaged files; none may stop a build
        raise IngestError(f"unreadable PDF ({type(e).__name__}: {e})") from None
    pages = _without_running_lines(pages)
    starts: list[int] = []
    text = ""
    for page in pages:
        if text:
            # A sentence that runs on to the next page goes on in the same paragraph.
            text += "\n" if text.rstrip()[-1:] not in _ENDS else "\n\n"
        starts.append(len(text))
        text += page
    if not text.strip():
        raise IngestError("PDF has no extractable text (scanned images need OCR first)")
    return Document(
        doc_id,
        meta_title.strip() or first_line_title(text) or fallback_title,
        text,
        find_date(text[:3000]),
        tuple(starts),
    )


_ENDS = tuple(".!?:;\"”’')")
# A line that only numbers its page: "3", "- 3 -", "Page 3", "3 of 7", "3/7" (not a year).
_PAGE_NUMBER = re.compile(r"^\W*(?:page\s+)?\d{1,3}(?:\s*(?:/|of)\s*\d{1,3})?\W*$", re.I)


def _without_running_lines(pages: list[str]) -> list[str]:
    """The pages without what is printed around each one's text: a page number alone on the
    first or last line, and a line that opens or closes at least half of the pages (two at
    least), its numbers aside: a browser's "4/18/25, 10:15 AM  <page title>" above and
    "<address>  1/3" below, a journal's running head."""

    def shape(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()))

    def edges(lines: list[str]) -> set[int]:
        filled = [i for i, line in enumerate(lines) if line.strip()]
        return set(filled[:2] + filled[-2:])

    split = [page.split("\n") for page in pages]
    seen: dict[str, int] = {}
    for lines in split:
        for form in {shape(lines[i]) for i in edges(lines)}:
            seen[form] = seen.get(form, 0) + 1
    least = max(2, (len(pages) + 1) // 2)
    running = {form for form, n in seen.items() if n >= least} if len(pages) > 1 else set()
    out = []
    for lines in split:
        drop = {
            i for i in edges(lines) if shape(lines[i]) in running or _PAGE_NUMBER.match(lines[i])
        }
        out.append("\n".join(line for i, line in enumerate(lines) if i not in drop).strip())
    return out


_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|"
    "December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_DATE_PATTERNS = (
    re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"),
    re.compile(rf"\b(?:{_MONTHS})\.? \d{{1,2}}, \d{{4}}\b"),
    re.compile(rf"\b\d{{1,2}} (?:{_MONTHS}) \d{{4}}\b"),
)


def find_date(text: str) -> str | None:
    """The first date stated near the top of a text (ISO or 'March 14, 2023' style), as written."""
    head = text[:600]
    for pattern in _DATE_PATTERNS:
        match = pattern.search(head)
        if match:
            return match.group(0)
    return None
