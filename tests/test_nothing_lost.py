"""Nothing lost, nothing leaked: the index folder, withdrawn documents, odd names and links."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from fakes import HashingEmbedder, ScriptedGenerator, seeded_config

from assistant import cli, indexing, rag, store
from assistant.indexing import ChunkerSettings, build
from assistant.rag import Assistant
from assistant.store import MARKER, Index, IndexFolderError

SETTINGS = ChunkerSettings(chunk_tokens=40, chunk_overlap=5)


def run_build(seeds: Path, index: Path, **kw):
    return build(seeds, index, HashingEmbedder(), SETTINGS, **kw)


def seeds_with(tmp_path: Path, files: dict[str, str]) -> Path:
    seeds = tmp_path / "seeds"
    for name, text in files.items():
        (seeds / name).parent.mkdir(parents=True, exist_ok=True)
        (seeds / name).write_text(text, encoding="utf-8")
    return seeds


@pytest.fixture()
def fake_embedder(monkeypatch):
    monkeypatch.setattr(rag, "make_embedder", lambda cfg: HashingEmbedder())


def cli_index(seeds: Path, index: Path) -> int:
    return cli.main(["index", "--seeds", str(seeds), "--index", str(index)])


# --- 1. the index folder: only ours is written to, only what we wrote is removed ----------


def test_index_into_someone_elses_folder_is_refused_and_nothing_is_lost(
    tmp_path, fake_embedder, capsys
):
    seeds = seeds_with(tmp_path, {"a.txt": "Rubio met European leaders in Paris."})
    mine = tmp_path / "mine"
    (mine / "v-photos").mkdir(parents=True)
    (mine / "v-photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (mine / "v-notes.txt").write_text("x")
    (mine / ".tmp-v-draft").mkdir()
    before = sorted(p.relative_to(mine) for p in mine.rglob("*"))

    assert cli_index(seeds, mine) == 1
    out, err = capsys.readouterr()
    assert err.count("error: ") == 1 and len(err.strip().splitlines()) == 1, err
    assert "did not write" in err and "--index" in err and "Traceback" not in err
    assert sorted(p.relative_to(mine) for p in mine.rglob("*")) == before  # no .lock either


@pytest.mark.parametrize("where", ["same folder", "index inside seeds", "seeds inside index"])
def test_index_folder_overlapping_the_seeds_folder_is_refused(tmp_path, where):
    seeds = seeds_with(tmp_path, {"v-draft.txt": "A draft.", "b.txt": "Bee."})
    index = {
        "same folder": seeds,
        "index inside seeds": seeds / "idx",
        "seeds inside index": tmp_path,
    }[where]
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(IndexFolderError, match="seeds folder"):
        run_build(seeds, index)
    assert sorted(tmp_path.rglob("*")) == before


def test_cleanup_removes_only_the_versions_our_builds_wrote(tmp_path):
    seeds = seeds_with(tmp_path, {"a.txt": "First document."})
    index = tmp_path / "index"
    run_build(seeds, index)
    first = store.current_version(index).name
    # Things a person (or another program) put in our folder later, named like ours.
    (index / "v-photos").mkdir()
    (index / "v-notes.txt").write_text("x")
    (index / ".tmp-v-mine").mkdir()
    (index / ".current-7").symlink_to("v-photos")
    (seeds / "b.txt").write_text("Second document.")
    assert run_build(seeds, index).added == ["b.txt"]
    names = {p.name for p in index.iterdir()}
    assert {"v-photos", "v-notes.txt", ".tmp-v-mine", ".current-7"} <= names
    assert first not in names and store.current_version(index).name in names
    assert json.loads((index / MARKER).read_text())["versions"] == [
        store.current_version(index).name
    ]


def test_index_built_before_the_marker_existed_keeps_working(tmp_path):
    seeds = seeds_with(tmp_path, {"a.txt": "First document."})
    index = tmp_path / "index"
    run_build(seeds, index)
    old = store.current_version(index).name
    (index / MARKER).unlink()  # as the previous release left it
    (seeds / "b.txt").write_text("Second document.")
    assert run_build(seeds, index).added == ["b.txt"]
    assert (index / MARKER).is_file() and not (index / old).exists()
    # A folder holding only placeholders (the repository's index/ has a README.md) is empty.
    placeholder = tmp_path / "repo-index"
    placeholder.mkdir()
    (placeholder / "README.md").write_text("Build output.")
    (placeholder / ".gitkeep").write_text("")
    assert run_build(seeds, placeholder).added == ["a.txt", "b.txt"]
    assert (placeholder / "README.md").read_text() == "Build output."


# --- 2. a document that becomes unreadable is withdrawn, and the app reloads ---------------


def _link_out(path: Path) -> None:
    outside = path.parent.parent / "outside.txt"
    outside.write_text("The zeppelin hangar stands in Friedrichshafen.")
    path.unlink()
    path.symlink_to(outside)


UNREADABLE = {
    "emptied": (lambda p: p.write_bytes(b""), "empty file"),
    "not UTF-8": (lambda p: p.write_bytes("z\xe9ppelin hangar".encode("latin-1")), "UTF-8"),
    "too large": (lambda p: p.write_text("zeppelin hangar " * 400), "too large"),
    "link out of seeds": (_link_out, "link points outside the seeds folder"),
}


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_a_document_that_becomes_unreadable_is_withdrawn_from_the_running_app(tmp_path, case):
    cfg = seeded_config(tmp_path, max_document_bytes=5000)
    doc = cfg.seeds_dir / "zeppelin.txt"
    doc.write_text("The zeppelin hangar stands in Friedrichshafen.")
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator("x"))
    assistant.rebuild()
    assert assistant.retrieve("zeppelin hangar", k=1)[0].chunk.doc_id == "zeppelin.txt"

    change, reason = UNREADABLE[case]
    change(doc)
    report = assistant.rebuild()
    assert report.changed_anything and report.removed == ["zeppelin.txt"]
    assert "removed zeppelin.txt: " in report.summary() and reason in report.summary()
    assert "1 removed" in report.summary() and "nothing changed" not in report.summary()
    assert "embedded" not in report.summary()  # a removal embeds nothing: no "0 embedded (0.0/s)"
    assert "zeppelin.txt" not in [d["id"] for d in assistant.documents()]
    assert all(h.chunk.doc_id != "zeppelin.txt" for h in assistant.retrieve("zeppelin", k=5))
    assert not assistant.rebuild().changed_anything  # and it stays withdrawn, quietly


# --- 3. a file or folder name that is not UTF-8 is skipped and named ----------------------


def test_names_that_are_not_utf8_are_skipped_and_named_and_the_rest_indexed(
    tmp_path, fake_embedder, capsys
):
    seeds = seeds_with(tmp_path, {"good.txt": "Rubio met European leaders in Paris."})
    raw = os.fsencode(seeds)
    try:
        with open(raw + b"/caf\xe9.txt", "wb") as fh:
            fh.write(b"Latin-1 name.")
        os.mkdir(raw + b"/dossier-\xe9")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    with open(raw + b"/dossier-\xe9/inside.txt", "wb") as fh:
        fh.write(b"In a folder with a Latin-1 name.")
    index = tmp_path / "index"
    for _ in range(2):  # the second run reads the manifest the first one wrote
        assert cli_index(seeds, index) == 0
        out, err = capsys.readouterr()
        assert "skipped caf\\xe9.txt: file name is not valid UTF-8; rename it" in out, err
        assert "skipped dossier-\\xe9/: folder name is not valid UTF-8; rename it" in out
    assert [d["id"] for d in Index.load(index).documents()] == ["good.txt"]


# --- 4. links out of the seeds folder are not followed unless allowed ----------------------


def test_links_out_of_the_seeds_folder_are_reported_not_followed(tmp_path):
    seeds = seeds_with(tmp_path, {"sub/real.txt": "Inside the seeds folder."})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd.txt").write_text("root:x:0:0:secret password line")
    (seeds / "passwd.txt").symlink_to(outside / "passwd.txt")
    (seeds / "elsewhere").symlink_to(outside, target_is_directory=True)
    (seeds / "alias.txt").symlink_to(seeds / "sub" / "real.txt")  # inside: followed

    report = run_build(seeds, tmp_path / "index")
    assert report.added == ["alias.txt", "sub/real.txt"]
    assert dict(report.skipped) == {
        "passwd.txt": "link points outside the seeds folder",
        "elsewhere/": "link points outside the seeds folder",
    }
    assert not any("secret" in c.text for c in Index.load(tmp_path / "index").chunks)

    report = run_build(seeds, tmp_path / "index", follow_external_links=True)
    assert report.added == ["elsewhere/passwd.txt", "passwd.txt"] and not report.skipped


# --- 5. the hash recorded is of the bytes that were indexed -------------------------------


def test_a_file_edited_between_scan_and_read_is_recorded_as_read(tmp_path, monkeypatch):
    seeds = seeds_with(tmp_path, {"a.txt": "The old text about ceasefire talks."})
    new = b"The new text about rare earth metals."
    scan = indexing.scan

    def scan_then_edit(*args, **kwargs):
        found = scan(*args, **kwargs)
        (seeds / "a.txt").write_bytes(new)  # someone saves the file right after the scan
        return found

    monkeypatch.setattr(indexing, "scan", scan_then_edit)
    run_build(seeds, tmp_path / "index")
    monkeypatch.undo()
    index = Index.load(tmp_path / "index")
    assert index.manifest.documents["a.txt"].sha256 == hashlib.sha256(new).hexdigest()
    assert " ".join(c.text for c in index.chunks) == new.decode()
    assert not run_build(seeds, tmp_path / "index").changed_anything


def test_a_file_grown_past_the_limit_after_the_scan_is_not_indexed(tmp_path, monkeypatch):
    seeds = seeds_with(tmp_path, {"a.txt": "Small.", "b.txt": "Bee."})
    scan = indexing.scan

    def scan_then_grow(*args, **kwargs):
        found = scan(*args, **kwargs)
        (seeds / "a.txt").write_text("grown " * 1000)
        return found

    monkeypatch.setattr(indexing, "scan", scan_then_grow)
    report = run_build(seeds, tmp_path / "index", max_document_bytes=1000)
    assert report.added == ["b.txt"] and "too large" in dict(report.skipped)["a.txt"]
    assert [d["id"] for d in Index.load(tmp_path / "index").documents()] == ["b.txt"]


# --- 6. names with terminal escape codes are printed escaped ------------------------------


def test_names_with_terminal_escapes_are_printed_escaped(tmp_path, fake_embedder, capsys):
    name = "\x1b]0;pwned\x07.txt"
    seeds = seeds_with(tmp_path, {name: "Rubio met European leaders in Paris.", "\x1b[2J.md": ""})
    index = tmp_path / "index"
    assert cli_index(seeds, index) == 0
    out, err = capsys.readouterr()
    assert "reading \\x1b]0;pwned\\x07.txt" in err
    assert "skipped \\x1b[2J.md: empty file" in out
    (seeds / name).write_text("")
    assert cli_index(seeds, index) == 0
    out, err = capsys.readouterr()
    assert "removed \\x1b]0;pwned\\x07.txt: empty file" in out
    assert not any(c in out + err for c in "\x1b\x07")
