"""Nothing lost, nothing leaked: what the chat window renders, serves, saves and lists."""

from __future__ import annotations

import http.client
import os
import re
import socket
import urllib.parse
from pathlib import Path

import gradio as gr
import pytest
from fakes import HashingEmbedder, ScriptedGenerator
from gradio.routes import ORJSONResponse

from assistant import library, render, server, ui
from assistant.config import Config, ConfigError
from assistant.rag import Assistant
from assistant.schema import Answer, Chunk, Hit

LEAK = "http://127.0.0.1:9/x.png?data=4471"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(cfg, request):
    """The app launched on a free loopback port; request.param is the login list (or None)."""
    auth = getattr(request, "param", None)
    served = Config(**{**cfg.__dict__, "port": _free_port()})
    assistant = Assistant(served, HashingEmbedder(), ScriptedGenerator("x"))
    demo = ui.build_app(assistant, served)
    server.launch(demo, served, auth, prevent_thread_lock=True, quiet=True)
    try:
        yield served.port
    finally:
        demo.close()


def _request(port, method, path, body=None, source="127.0.0.1"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


# --- 1. answers never load remote resources ------------------------------------------------


def test_answer_markdown_image_is_shown_as_text(cfg):
    text = (
        f"The deal is due by April 26 [1]. ![p]({LEAK}) <img src={LEAK}> "
        "[click](http://127.0.0.1:9/) <http://127.0.0.1:9/a>\nNext line."
    )
    chunk = Chunk("c1", "deal.txt", "The deal is due by April 26.", 0, 28, 1, "Deal")
    answer = Answer("When?", text, False, passages=(Hit(chunk, 1.0),))
    for progress in ("", render.render_progress("Writing the answer", 3.0)):
        bubble = render.render_answer(answer, turn=1, progress=progress)
        assert "<img" not in bubble and '<a href="http' not in bubble
        assert f"![p]({LEAK})" in bubble and "&lt;img src=" in bubble
        assert 'href="#src-1-1"' in bubble and "<br>Next line." in bubble  # our links, lines
    # The chat shows that HTML as it is: no Markdown (which would turn ![p](...) into <img>).
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator("x"))
    chat = next(
        c for c in ui.build_app(assistant, cfg).blocks.values() if isinstance(c, gr.Chatbot)
    )
    assert chat.render_markdown is False and chat.latex_delimiters == []


def test_markdown_lines_show_links_and_images_as_text():
    line = render.escape_markdown(f"bad index ![p]({LEAK}) <img src=x> [a](http://b)")
    assert "\\!\\[p\\]\\(http\\://" in line and "\\<img" in line
    assert not re.search(r"(?<!\\)[!\[\]()<>]|(?<!\\):", line)


def test_page_has_a_content_security_policy(served):
    response = _request(served, "GET", "/")
    assert response.status == 200
    policy = response.getheader("Content-Security-Policy") or ""
    for rule in ("default-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'"):
        assert rule in policy
    assert "http" not in policy and "*" not in policy


# --- 2. uploads: the name that is saved is the name that is checked -------------------------


def test_long_upload_names_keep_their_type_and_fit_the_file_system(cfg, tmp_path):
    src = tmp_path / "upload.txt"
    src.write_text("Ferries to Roscoff were cancelled on Sunday.", encoding="utf-8")
    names = ["x" * 300 + ".txt", "é" * 154 + ".txt", "y" * 300 + ".exe.md", "ok.txt"]
    saved, refused = library.save_uploads(cfg, [(n, src) for n in names])
    assert refused == []
    assert len(saved) == 4 and saved[-1] == "ok.txt"
    for name in saved:
        assert len(name.encode()) <= library.NAME_MAX_BYTES
        assert (Path(cfg.seeds_dir) / name).is_file()
    assert saved[0].endswith("x.txt") and saved[1].endswith("é.txt")
    assert saved[2].endswith("y.md")
    assert not list(Path(cfg.seeds_dir).glob(".upload-*"))


def test_upload_that_would_not_be_indexed_is_refused_with_a_reason(cfg, tmp_path):
    src = tmp_path / "upload.md"
    src.write_text("# Notes\n\nFerries to Roscoff.", encoding="utf-8")
    saved, refused = library.save_uploads(
        cfg, [("README.md", src), ("x" * 300 + ".exe", src), (".md", src), ("notes.md", src)]
    )
    reasons = dict(refused)
    assert "not indexed" in reasons["README.md"]
    assert ".exe is not allowed" in reasons["x" * 300 + ".exe"]
    assert "not allowed" in reasons[".md"]
    assert saved == ["notes.md"] and not (Path(cfg.seeds_dir) / "README.md").exists()


def test_one_failing_upload_does_not_stop_the_batch(cfg, tmp_path):
    src = tmp_path / "upload.txt"
    src.write_text("Ferries to Roscoff.", encoding="utf-8")
    (Path(cfg.seeds_dir) / "loop.txt").symlink_to("loop.txt")  # Path.resolve raises on it
    saved, refused = library.save_uploads(cfg, [("loop.txt", src), ("b.txt", src)])
    assert saved[-1] == "b.txt" and len(saved) + len(refused) == 2
    assert not list(Path(cfg.seeds_dir).glob(".upload-*"))


# --- 3. failed logins are throttled per address --------------------------------------------


def test_login_throttle_waits_longer_after_each_failure():
    now = [1000.0]
    throttle = server.LoginThrottle(clock=lambda: now[0])
    assert all(throttle.attempt("10.0.0.1") == 0 for _ in range(server.LOGIN_FREE_FAILURES))
    assert throttle.attempt("10.0.0.1") == pytest.approx(server.LOGIN_WAIT_S)
    assert throttle.attempt("10.0.0.2") == 0  # another address is not held up
    now[0] += server.LOGIN_WAIT_S
    assert throttle.attempt("10.0.0.1") == 0  # one more try, then twice the wait
    assert throttle.attempt("10.0.0.1") == pytest.approx(2 * server.LOGIN_WAIT_S)
    throttle.succeeded("10.0.0.1")
    assert throttle.attempt("10.0.0.1") == 0


@pytest.mark.parametrize("served", [[("ann", "s3cret")]], indirect=True)
def test_failed_logins_over_http_lock_out_that_address(served):
    def login(password, source="127.0.0.1"):
        body = urllib.parse.urlencode({"username": "ann", "password": password})
        return _request(served, "POST", "/login", body, source)

    assert login("s3cret").status == 200
    assert [login("guess").status for _ in range(server.LOGIN_FREE_FAILURES)] == [400] * 5
    locked = login("s3cret")  # even the right password waits
    assert locked.status == 429 and int(locked.getheader("Retry-After")) > 0
    assert login("s3cret", source="127.0.0.2").status == 200


# --- 4. an auth file that is not UTF-8 ------------------------------------------------------


def test_auth_file_not_utf8_names_the_file(tmp_path):
    logins = tmp_path / "logins"
    logins.write_bytes(b"ann:caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        server.resolve_auth(Config(host="0.0.0.0"), env={"ASSISTANT_AUTH_FILE": str(logins)})
    message = str(caught.value)
    assert str(logins) in message and "UTF-8" in message and "\n" not in message


# --- 5. file names that are not UTF-8 -------------------------------------------------------


def test_undecodable_seed_name_is_listed_escaped_and_removed_exactly(cfg):
    seeds = os.fsencode(cfg.seeds_dir)
    with open(os.path.join(seeds, b"caf\xe9.txt"), "wb") as f:
        f.write(b"Undecodable name.")
    files = library.seed_files(cfg)
    assert "caf\\xe9.txt" in files
    "\n".join(files).encode("utf-8")  # no lone surrogates: Gradio can send it
    demo = ui.build_app(Assistant(cfg, HashingEmbedder(), ScriptedGenerator("x")), cfg)
    ORJSONResponse._render(demo.get_config_file())  # what Gradio sends to the page
    assert render.escape("caf\udce9.txt") == "caf\\xe9.txt"

    # A real file literally named caf\xe9.txt is shown alike: neither is removed by that id.
    (Path(cfg.seeds_dir) / "caf\\xe9.txt").write_text("Backslash name.", encoding="utf-8")
    removed, refused = library.remove_documents(cfg, ["caf\\xe9.txt"])
    assert removed == [] and "two files" in refused[0][1]
    (Path(cfg.seeds_dir) / "caf\\xe9.txt").unlink()

    removed, refused = library.remove_documents(cfg, ["caf\\xe9.txt"])
    assert removed == ["caf\\xe9.txt"] and refused == []
    assert not os.path.exists(os.path.join(seeds, b"caf\xe9.txt"))
    assert "caf\\xe9.txt" not in library.seed_files(cfg)
