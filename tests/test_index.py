"""Indexing: reading, splitting, manifest, incremental updates, atomic swap, bad documents."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from fakes import YEAR_DOCS, HashingEmbedder, pdf_bytes, seeded_config

from assistant import chunking, store
from assistant.citations import sentences_of
from assistant.indexing import BuildBusyError, ChunkerSettings, build
from assistant.ingest import READER, IngestError, find_date, read_document, scan
from assistant.retrieval import Retriever, reading_order
from assistant.schema import Document
from assistant.store import Index, IndexLoadError

SETTINGS = ChunkerSettings(chunk_tokens=40, chunk_overlap=5)
ARTICLE = Path(__file__).parent.parent / "seeds" / "rubio-us-mediation-russia-ukraine-talks.txt"


def make_seeds(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    seeds = tmp_path / "seeds"
    for name, content in files.items():
        path = seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return seeds


def run_build(seeds: Path, index: Path, embedder=None, settings=SETTINGS, **kw):
    return build(seeds, index, embedder or HashingEmbedder(), settings, **kw)


# --- reading -----------------------------------------------------------------------------


def test_html_keeps_visible_article_text_and_title(tmp_path):
    seeds = make_seeds(
        tmp_path,
        {
            "a.html": """<html><head><title>Talks stall | World | The Example Times</title>
        <meta property="article:published_time" content="2025-04-18T10:00:00Z">
        <script>var secret = "do not index";</script><style>p {color: red}</style></head>
        <body><header><h1>The Example Times</h1></header>
        <nav>Home | World</nav><article><h1>Talks stall</h1>
        <p>Rubio warned the US could <b>walk away</b>.</p><p>A deal is due by April 26.</p>
        </article><footer>Copyright</footer></body></html>"""
        },
    )
    files, _ = scan(seeds)
    doc = read_document(files[0])
    assert doc.title == "Talks stall"  # the headline, without the site's name
    assert doc.date == "2025-04-18"
    assert "walk away" in doc.text and "April 26" in doc.text
    for junk in ("secret", "color", "Home | World", "Copyright", "<b>"):
        assert junk not in doc.text


def test_markdown_title_and_date(tmp_path):
    seeds = make_seeds(tmp_path, {"n.md": "# Peace talks\n\nMarch 14, 2023\n\nBody text here."})
    doc = read_document(scan(seeds)[0][0])
    assert doc.title == "Peace talks"
    assert doc.date == "March 14, 2023"


def test_txt_title_is_its_first_line_and_the_file_date_is_kept_apart(tmp_path):
    files, _ = scan(ARTICLE.parent)
    doc = read_document(next(f for f in files if f.id == ARTICLE.name))
    assert doc.title.startswith("US Secretary of State Marco Rubio has questioned the US's role")
    assert "Marco Rubio" in doc.text
    assert doc.date is None  # the article states no date of its own
    mtime = (ARTICLE.parent / ARTICLE.name).stat().st_mtime
    assert doc.file_date == time.strftime("%Y-%m-%d", time.localtime(mtime))
    # A paragraph for a first line, or a one-line text, is titled by its file name.
    seeds = make_seeds(
        tmp_path,
        {
            "long-first-line.txt": "word " * 60 + "\nMore.",
            "one_line.txt": "Only this line.",
            "dated.txt": "Storm warning\n\nBrest, 7 April 2025 - ferries were cancelled.",
            "plain.md": "Ferry notes\n\nNo heading in this file.",
        },
    )
    docs = {f.id: read_document(f) for f in scan(seeds)[0]}
    assert docs["long-first-line.txt"].title == "Long first line"
    assert docs["one_line.txt"].title == "One line"
    assert (docs["dated.txt"].title, docs["dated.txt"].date) == ("Storm warning", "7 April 2025")
    assert docs["plain.md"].title == "Ferry notes"


def test_a_hard_wrapped_first_paragraph_is_read_whole_as_the_title(tmp_path):
    text = (
        "US Secretary of State Marco Rubio has questioned the US's role in mediating\n"
        "peace talks in Ukraine.\n\n"
        "The US will abandon attempts to mediate a peace agreement between Russia and\n"
        "Ukraine within days, Rubio has warned.\n"
    )
    doc = read_document(scan(make_seeds(tmp_path, {"wrapped.txt": text}))[0][0])
    assert doc.title == (
        "US Secretary of State Marco Rubio has questioned the US's role in mediating "
        "peace talks in Ukraine."
    )
    assert doc.text == text.strip()  # the text itself keeps its line breaks and offsets


def test_find_date_variants():
    assert find_date("Published 2024-01-05 by X") == "2024-01-05"
    assert find_date("Kyiv, 7 April 2025 - talks") == "7 April 2025"
    assert find_date("no date in here") is None


def _write_pdf(path: Path, pages: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pdf_bytes(pages))


def test_pdf_pages_and_offsets(tmp_path):
    pdf = tmp_path / "seeds" / "report.pdf"
    _write_pdf(pdf, [["First page about rare earth metals."], ["Second page about a ceasefire."]])
    doc = read_document(scan(pdf.parent)[0][0])
    assert len(doc.page_starts) == 2
    assert doc.title == "First page about rare earth metals."  # no title of its own: line one
    chunks = chunking.split(doc, lambda s: len(s.split()), 6, 0)
    ceasefire = next(c for c in chunks if "ceasefire" in c.text)
    rare = next(c for c in chunks if "rare" in c.text)
    assert (rare.page, ceasefire.page) == (1, 2)


def test_a_printed_pages_header_footer_and_number_are_left_out(tmp_path):
    # As a browser prints a news page: the time and the page's title above each page, its
    # address and "page/pages" below; a sentence runs on over the page break.
    # The text is hard-wrapped, as a PDF's lines are.
    body = [
        [
            "Talks stall in Paris",
            "",
            "Rubio met European leaders in Paris on Thursday and warned that the",
            "US would walk away within days. The deal should be finalised by",
        ],
        ["April 26, officials said. Kyiv wants guarantees.", "2 of the 3 drafts were agreed."],
        ["Moscow did not reply."],
    ]
    pages = [
        [
            "4/18/25, 10:15 AM    Talks stall in Paris | News",
            *lines,
            f"https://news.example.org/talks    {i}/3",
        ]
        for i, lines in enumerate(body, 1)
    ]
    pdf = tmp_path / "seeds" / "talks.pdf"
    _write_pdf(pdf, pages)
    doc = read_document(scan(pdf.parent)[0][0])
    assert doc.title == "Talks stall in Paris"
    assert "10:15" not in doc.text and "https" not in doc.text
    assert "The deal should be finalised by April 26, officials said." in sentences_of(doc.text)
    assert "2 of the 3 drafts were agreed." in doc.text  # a number inside the text stays
    assert [doc.text[s:].split("\n")[0] for s in doc.page_starts] == [
        "Talks stall in Paris",
        "April 26, officials said. Kyiv wants guarantees.",
        "Moscow did not reply.",
    ]
    # A page number alone at the foot of a page goes too, on a single page as well.
    _write_pdf(pdf, [["A short note on the ceasefire talks.", "- 1 -"]])
    assert read_document(scan(pdf.parent)[0][0]).text == "A short note on the ceasefire talks."
    _write_pdf(pdf, [["2025", "A short note on the ceasefire talks."]])  # a year is no page
    assert read_document(scan(pdf.parent)[0][0]).text.startswith("2025")


BAD = {
    "empty.txt": "",
    "blank.md": "   \n\n  \t\n",
    "binary.txt": b"\x00\x01\x02PNG\x00" * 100,
    "latin1.txt": "caf\xe9 cr\xe8me".encode("latin-1"),
    "broken.pdf": b"%PDF-1.4\n this is not really a pdf",
    "huge.txt": "word " * 300,
}


def test_bad_documents_are_skipped_with_reasons_and_the_rest_indexed(tmp_path):
    seeds = make_seeds(
        tmp_path,
        {**BAD, "good.txt": "Rubio met European leaders in Paris.", "image.png": b"\x89PNG"},
    )
    as_root = os.geteuid() == 0  # root reads anything, so the permission case needs a user
    if not as_root:
        (seeds / "locked.txt").write_text("secret")
        (seeds / "locked.txt").chmod(0)
    report = run_build(seeds, tmp_path / "index", max_document_bytes=1000)
    reasons = dict(report.skipped)
    assert report.added == ["good.txt"]
    assert "empty" in reasons["empty.txt"]
    assert "empty" in reasons["blank.md"]
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "PDF" in reasons["broken.pdf"]
    assert "too large" in reasons["huge.txt"]
    assert "unsupported" in reasons["image.png"]
    if not as_root:
        assert "cannot read" in reasons["locked.txt"]
    assert "skipped broken.pdf: " in report.summary()
    assert Index.load(tmp_path / "index").documents()[0]["id"] == "good.txt"


def test_hidden_temp_files_and_symlink_loops(tmp_path):
    seeds = make_seeds(
        tmp_path,
        {
            "a b ünï $(x).txt": "Spaces and unicode in the name.",
            ".hidden.txt": "hidden",
            "draft.txt~": "backup",
            "sub/deep.md": "# Deep\n\nNested document.",
        },
    )
    (seeds / "sub" / "loop").symlink_to(seeds, target_is_directory=True)
    files, skipped = scan(seeds)
    ids = [f.id for f in files]
    assert ids == ["a b ünï $(x).txt", "sub/deep.md"]
    assert any("symlink loop" in reason for _, reason in skipped)


# --- splitting ---------------------------------------------------------------------------


def test_chunks_point_at_exact_offsets_and_paragraphs():
    text = ARTICLE.read_text(encoding="utf-8").strip()
    doc = Document("a.txt", "A", text)
    chunks = chunking.split(doc, lambda s: len(s.split()), 40, 5)
    assert len(chunks) > 5
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert len(c.text.split()) <= 40
        para_start = chunking.paragraph_starts(text)[c.paragraph - 1]
        assert para_start <= c.start
    # Every word of the document lands in some passage.
    covered = np.zeros(len(text), dtype=bool)
    for c in chunks:
        covered[c.start : c.end] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    assert [c.id for c in chunks] == [f"a.txt#{i}" for i in range(len(chunks))]


def test_split_prefers_sentence_boundaries():
    text = " ".join(f"Sentence number {i} has six words." for i in range(20))
    chunks = chunking.split(Document("s.txt", "S", text), lambda s: len(s.split()), 20, 0)
    assert all(c.text.endswith(".") for c in chunks)


def test_a_heading_opens_the_passage_after_it_never_a_passage_alone():
    long = " ".join(f"Sentence number {i} has six words." for i in range(8))
    text = f"# Time Stands Still\n\n{long}\n\n## Aftermath\n\n{long}"
    doc = Document("t.md", "Time Stands Still", text)
    chunks = chunking.split(doc, lambda s: len(s.split()), 20, 0)
    assert not [c.text for c in chunks if chunking.HEADING.match(c.text)]
    assert chunks[0].text.startswith("# Time Stands Still\n\nSentence number 0 ")
    assert any(c.text.startswith("## Aftermath\n\nSentence number 0 ") for c in chunks)
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
    # A heading the splitter left at the end of the passage before its section moves to the
    # section's first passage, whether that passage overlapped the one before or not.
    sizes = {"Alpha": 6, "Beta": 6, "Gamma": 12}
    short = [" ".join(f"{w} sentence {i} is here." for i in range(n)) for w, n in sizes.items()]
    text = f"# Title\n\n{short[0]}\n\n## Beta\n\n{short[1]}\n\n## Gamma\n\n{short[2]}"
    doc = Document("s.md", "S", text)
    chunks = chunking.split(doc, lambda s: len(s.split()), 40, 8)
    for section in ("Beta", "Gamma"):
        first = next(c for c in chunks if f"{section} sentence 0 " in c.text)
        assert first.text.startswith(f"## {section}\n\n"), first.text
    assert not [c.text for c in chunks if c.text.rstrip().splitlines()[-1].startswith("#")]
    covered = np.zeros(len(text), dtype=bool)
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        covered[c.start : c.end] = True
    assert all(covered[i] for i, ch in enumerate(text) if not ch.isspace())
    # So does a run of headings, a title and a section's.
    doc = Document("r.md", "R", f"# Title\n\n## Intro\n\n{long}")
    chunks = chunking.split(doc, lambda s: len(s.split()), 20, 0)
    assert chunks[0].text.startswith("# Title\n\n## Intro\n\nSentence number 0 ")
    # So does a plain-text title, a passage of one short line.
    doc = Document("p.txt", "Talks stall", f"Talks stall in Paris\n\n{long}")
    chunks = chunking.split(doc, lambda s: len(s.split()), 20, 0)
    assert chunks[0].text.startswith("Talks stall in Paris\n\nSentence number 0 ")
    # A heading with nothing after it stays, so nothing is lost; so does one too long to add.
    assert chunking.split(Document("h.md", "H", "# Only a title"), len, 20, 0)[0].text == (
        "# Only a title"
    )
    wordy = "# " + "very " * 8 + "long title"
    chunks = chunking.split(
        Document("w.md", "W", f"{wordy}\n\n{long}"), lambda s: len(s.split()), 20, 0
    )
    assert chunks[0].text == wordy


# --- building, incremental, atomic -------------------------------------------------------


def test_manifest_records_settings_hashes_and_passages(tmp_path):
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text(), "b.md": "# B\n\nShort doc."})
    run_build(seeds, tmp_path / "index")
    index = Index.load(tmp_path / "index")
    m = index.manifest
    assert json.loads((index.path / "manifest.json").read_text())["format"] == store.FORMAT
    assert (m.embedder_id, m.dim) == ("hashing-test", 256)
    assert m.chunker["chunk_tokens"] == 40
    assert len(m.documents["a.txt"].sha256) == 64
    assert sum(len(d.passages) for d in m.documents.values()) == len(index.chunks)
    files = {p.name for p in index.path.iterdir()}
    assert files == {"manifest.json", "passages.jsonl", "vectors.faiss"}


def test_manifest_reads_back_to_the_same_bytes(tmp_path):
    seeds = make_seeds(
        tmp_path, {"a.txt": ARTICLE.read_text(), "é.md": "# É\n\nCafé.", "e.txt": ""}
    )
    run_build(seeds, tmp_path / "index")
    path = store.current_version(tmp_path / "index")
    written = (path / "manifest.json").read_text("utf-8")
    manifest = store.Manifest.from_dict(json.loads(written), path)
    assert manifest == Index.load(tmp_path / "index").manifest
    assert manifest.skipped["e.txt"].reason == "empty file"
    assert json.dumps(manifest.to_dict(), ensure_ascii=False, indent=1) == written


def test_manifest_from_before_dead_rows_loads_and_a_wrong_type_is_refused(tmp_path):
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text()})
    run_build(seeds, tmp_path / "index")
    path = store.current_version(tmp_path / "index") / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["dead_rows"]  # as written before HNSW graphs were updated in place
    path.write_text(json.dumps(manifest))
    assert Index.load(tmp_path / "index").manifest.dead_rows == ()
    manifest["documents"]["a.txt"]["passages"] = "a.txt#0"
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="incomplete or was edited .*'passages'"):
        Index.load(tmp_path / "index")


def test_search_finds_the_right_passage(tmp_path):
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text()})
    emb = HashingEmbedder()
    run_build(seeds, tmp_path / "index", emb)
    index = Index.load(tmp_path / "index")
    (row, _), *_ = index.search(emb.embed(["finalize the rare earth deal by April 26"])[0], 3)
    assert "April 26" in index.chunks[row].text


def test_a_question_naming_a_year_ranks_documents_dated_that_year_higher(tmp_path):
    # The preview holds more of the question's words; the date the report speaks from puts
    # it first.
    seeds = make_seeds(tmp_path, YEAR_DOCS)
    run_build(seeds, tmp_path / "index")
    index, emb = Index.load(tmp_path / "index"), HashingEmbedder()
    assert [c.date for c in sorted(index.chunks, key=lambda c: c.doc_id)] == [
        "Aug 30, 2018",
        "Sep 7, 2019",
    ]

    def first(question: str, **kw) -> str:
        return Retriever(index, emb, **kw).search(question, 2)[0].chunk.doc_id

    assert first("Who won the U.S. Open women's final in 2019?", year_weight=0) == "preview.txt"
    assert first("Who won the U.S. Open women's final in 2019?") == "report.txt"
    # The year chose the report; its score stays its relevance, so it is read after the preview.
    found = Retriever(index, emb).search("Who won the U.S. Open women's final in 2019?", 2)
    assert [h.chunk.doc_id for h in reading_order(found)] == ["preview.txt", "report.txt"]
    # No year asked (or one no document is dated in): the order of the words and vectors.
    assert first("Who won the U.S. Open women's final?") == "preview.txt"
    assert first("Who won the U.S. Open women's final in 2021?") == "preview.txt"


def test_incremental_rebuild_embeds_only_changes(tmp_path):
    seeds = make_seeds(
        tmp_path, {"a.txt": ARTICLE.read_text(), "b.txt": "Bee text one.", "c.txt": "Sea text two."}
    )
    index_dir = tmp_path / "index"
    first = run_build(seeds, index_dir)
    assert sorted(first.added) == ["a.txt", "b.txt", "c.txt"]

    emb = HashingEmbedder()
    again = run_build(seeds, index_dir, emb)
    assert not again.changed_anything and emb.calls == []
    assert "nothing changed" in again.summary()

    (seeds / "b.txt").write_text("Bee text changed completely.")
    (seeds / "c.txt").unlink()
    (seeds / "d.txt").write_text("A new document.")
    emb = HashingEmbedder()
    report = run_build(seeds, index_dir, emb)
    assert (report.added, report.changed, report.removed) == (["d.txt"], ["b.txt"], ["c.txt"])
    assert sum(emb.calls) == 2  # one passage each for b and d; a.txt's vectors were reused
    index = Index.load(index_dir)
    assert {c.doc_id for c in index.chunks} == {"a.txt", "b.txt", "d.txt"}
    assert not any("Bee text one" in c.text for c in index.chunks)
    # Reused vectors are the same as freshly computed ones: rows line up with their passages.
    fresh = HashingEmbedder().embed([c.text for c in index.chunks])
    np.testing.assert_allclose(index.vectors(), fresh, atol=1e-6)


def test_changed_settings_force_full_rebuild(tmp_path):
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text()})
    run_build(seeds, tmp_path / "index")
    report = run_build(seeds, tmp_path / "index", settings=ChunkerSettings(60, 5))
    assert report.full_rebuild_reason and "settings changed" in report.full_rebuild_reason
    assert report.added == ["a.txt"]
    report = run_build(
        seeds, tmp_path / "index", HashingEmbedder(id="other"), settings=ChunkerSettings(60, 5)
    )
    assert "other" in report.full_rebuild_reason


def test_a_new_document_reader_rereads_every_document_and_says_so(tmp_path):
    """Titles feed the keyword search: an index read the old way is rebuilt in full, once."""
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text(), "b.md": "# B\n\nShort doc."})
    run_build(seeds, tmp_path / "index")
    path = store.current_version(tmp_path / "index") / "manifest.json"
    manifest = json.loads(path.read_text())
    assert manifest["reader"] == READER
    assert manifest["documents"]["a.txt"]["file_date"]
    del manifest["reader"]  # as written before titles came from the text
    for entry in manifest["documents"].values():
        del entry["file_date"]
    path.write_text(json.dumps(manifest))
    old = Index.load(tmp_path / "index")  # still served until the next build
    assert old.documents()[0]["file_date"] is None
    report = run_build(seeds, tmp_path / "index")
    assert "read in a new way" in report.full_rebuild_reason
    assert sorted(report.added) == ["a.txt", "b.md"]
    titles = {d["id"]: d["title"] for d in Index.load(tmp_path / "index").documents()}
    assert titles["a.txt"].startswith("US Secretary of State")
    assert not run_build(seeds, tmp_path / "index").changed_anything


def test_hnsw_above_threshold(tmp_path):
    seeds = make_seeds(tmp_path, {f"d{i}.txt": f"Document {i} about topic {i}." for i in range(30)})
    report = run_build(seeds, tmp_path / "index", exact_limit=10)
    assert report.index_kind == "hnsw"
    index = Index.load(tmp_path / "index")
    emb = HashingEmbedder()
    (row, _), *_ = index.search(emb.embed(["Document 17 about topic 17."])[0], 1)
    assert index.chunks[row].doc_id == "d17.txt"


def test_hnsw_update_adds_to_the_graph_and_never_returns_dead_rows(tmp_path):
    docs = {f"d{i:02}.txt": f"Document {i} about topic {i}." for i in range(40)}
    seeds = make_seeds(tmp_path, docs)
    index_dir = tmp_path / "index"
    first = run_build(seeds, index_dir, exact_limit=10)
    assert first.index_kind == "hnsw" and not first.appended

    (seeds / "d03.txt").write_text("Zebras crossed the river at dawn.")
    (seeds / "d05.txt").unlink()
    (seeds / "d40.txt").write_text("A new note on giraffes.")
    emb = HashingEmbedder()
    report = run_build(seeds, index_dir, emb, exact_limit=10)
    assert report.appended and report.index_kind == "hnsw" and sum(emb.calls) == 2
    assert "added to the existing index" in report.summary()
    index = Index.load(index_dir)
    assert index.faiss.ntotal == 42 and len(index.chunks) == 40  # two dead rows, not searched
    assert len(index.manifest.dead_rows) == 2
    assert {c.doc_id for c in index.chunks} == set(docs) - {"d05.txt"} | {"d40.txt"}
    # Every search result is a live passage, with its own vector: rows line up.
    np.testing.assert_allclose(index.vectors(), emb.embed([c.text for c in index.chunks]))
    for query in ("Document 5 about topic 5.", "Document 3 about topic 3.", "giraffes"):
        hits = index.search(emb.embed([query])[0], 40)
        assert len(hits) == 40 and len({r for r, _ in hits}) == 40
        assert "Document 3 " not in " ".join(index.chunks[r].text for r, _ in hits)
    (row, _), *_ = index.search(emb.embed(["A new note on giraffes."])[0], 1)
    assert index.chunks[row].doc_id == "d40.txt"
    # Fused search (BM25 finds passages the dense search did not) gives each its own similarity.
    for hit in Retriever(index, emb, candidates=3).search("zebras river topic 7", 5):
        want = float(emb.embed([hit.chunk.text])[0] @ emb.embed(["zebras river topic 7"])[0])
        assert hit.similarity == pytest.approx(want, abs=1e-5)

    # Past MAX_DEAD_SHARE of dead rows, the graph is built again without them.
    for i in range(6, 12):
        (seeds / f"d{i:02}.txt").unlink()
    report = run_build(seeds, index_dir, exact_limit=10)
    assert not report.appended and report.index_kind == "hnsw"
    index = Index.load(index_dir)
    assert index.faiss.ntotal == len(index.chunks) == 34 and index.manifest.dead_rows == ()

    # Down to the exact limit, the graph gives way to exact search.
    for path in sorted(seeds.iterdir())[10:]:
        path.unlink()
    assert run_build(seeds, index_dir, exact_limit=10).index_kind == "exact"


def test_crash_mid_build_leaves_previous_index(tmp_path, monkeypatch):
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text()})
    index_dir = tmp_path / "index"
    run_build(seeds, index_dir)
    before = Index.load(index_dir).manifest.documents
    (seeds / "b.txt").write_text("New document that will not make it.")

    def crash(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", crash)
    with pytest.raises(OSError, match="No space"):
        run_build(seeds, index_dir)
    monkeypatch.undo()
    assert Index.load(index_dir).manifest.documents == before
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp")]
    assert run_build(seeds, index_dir).added == ["b.txt"]


def test_damaged_index_says_how_to_rebuild(tmp_path):
    seeds = make_seeds(tmp_path, {"a.txt": ARTICLE.read_text()})
    run_build(seeds, tmp_path / "index")
    version = store.current_version(tmp_path / "index")
    (version / "passages.jsonl").write_text('{"id": "broken"\n')
    with pytest.raises(IndexLoadError, match="python -m assistant index"):
        Index.load(tmp_path / "index")
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["format"] = "something else"
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexLoadError, match="format"):
        Index.load(tmp_path / "index")
    with pytest.raises(IndexLoadError, match="no index"):
        Index.load(tmp_path / "nowhere")
    # The next build replaces the damaged one.
    report = run_build(seeds, tmp_path / "index")
    assert report.full_rebuild_reason and report.added == ["a.txt"]
    assert Index.load(tmp_path / "index").chunks


def test_second_build_refuses_while_first_runs(tmp_path):
    seeds = make_seeds(tmp_path, {"a.txt": "Some text."})
    entered, release = threading.Event(), threading.Event()

    class SlowEmbedder(HashingEmbedder):
        def embed(self, texts, progress=False):
            entered.set()
            release.wait(10)
            return super().embed(texts)

    result = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("r", run_build(seeds, tmp_path / "index", SlowEmbedder()))
    )
    worker.start()
    assert entered.wait(10)
    with pytest.raises(BuildBusyError, match="another build"):
        run_build(seeds, tmp_path / "index")
    release.set()
    worker.join()
    assert result["r"].added == ["a.txt"]


def test_missing_seeds_folder_is_a_clear_error(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        run_build(tmp_path / "nope", tmp_path / "index")


def test_building_the_keyword_index_leaves_the_log_at_warnings(tmp_path):
    # bm25s sets its logger to DEBUG when imported and logs every index build there.
    cfg = seeded_config(tmp_path)
    Retriever(Index.load(cfg.index_dir), HashingEmbedder())
    assert logging.getLogger("bm25s").getEffectiveLevel() >= logging.WARNING
