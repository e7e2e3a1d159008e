"""One error base: what a person can fix is one line at the edges; a bug keeps its traceback."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import pytest
from fakes import HashingEmbedder, ScriptedGenerator

import app
import assistant
from assistant import chat, cli, rag, ui
from assistant.config import Config
from assistant.errors import AssistantError
from assistant.generation import GeneratorError
from assistant.rag import Assistant

QUESTION = "When is the rare earth deal due?"


def broken(messages) -> str:
    """A scripted model with a bug in it."""
    return str(1 / 0)


def out_of_memory(messages) -> str:
    raise GeneratorError("the model ran out of memory: set ASSISTANT_MAX_NEW_TOKENS lower")


@pytest.fixture()
def ask(cfg, fake_models, capsys):
    """`python -m assistant ask QUESTION` with a scripted model: (exit code, stdout, stderr)."""

    def run(reply) -> tuple[int, str, str]:
        fake_models.reply = reply
        argv = ["ask", QUESTION, "--seeds", str(cfg.seeds_dir), "--index", str(cfg.index_dir)]
        code = cli.main(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_every_error_class_of_the_package_is_an_assistant_error():
    found = []
    for info in pkgutil.walk_packages(assistant.__path__, "assistant."):
        if info.name == "assistant.__main__":
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found.append(value)
                assert issubclass(value, AssistantError), value
                # Not a ValueError or RuntimeError: catching those at an edge would hide bugs.
                assert value is AssistantError or not issubclass(value, ValueError | RuntimeError)
    assert len(found) >= 10


def test_cli_prints_an_assistant_error_as_one_line_and_exits_non_zero(ask):
    code, out, err = ask(out_of_memory)
    assert code == 1 and out == ""
    # Progress lines first ("[  0%] loading the language model ..."), then the error, one line.
    lines = [line for line in err.splitlines() if not line.startswith("[")]
    assert lines == ["error: the model ran out of memory: set ASSISTANT_MAX_NEW_TOKENS lower"]
    assert err.endswith(lines[0] + "\n")


def test_cli_lets_a_bug_through_with_its_traceback(ask, capsys):
    with pytest.raises(ZeroDivisionError) as caught:
        ask(broken)
    assert any(entry.name == "broken" for entry in caught.traceback)  # raised where the bug is
    assert "error:" not in capsys.readouterr().err


def test_app_prints_an_assistant_error_as_one_line_and_lets_a_bug_through(monkeypatch, capsys):
    def refuse(cfg):
        raise GeneratorError("model part 3 of 22 is not installed: pip install x")

    monkeypatch.setattr(cli, "serve", refuse)
    assert app.main([]) == 1
    assert capsys.readouterr().err == "error: model part 3 of 22 is not installed: pip install x\n"

    def bug(cfg):
        return 1 / 0

    monkeypatch.setattr(cli, "serve", bug)
    with pytest.raises(ZeroDivisionError):
        app.main([])
    assert "error:" not in capsys.readouterr().err


def test_chat_names_a_bug_without_its_message_and_logs_the_traceback(cfg, caplog):
    model = Assistant(cfg, HashingEmbedder(), ScriptedGenerator(broken))
    with caplog.at_level(logging.ERROR, logger="assistant.chat"):
        history, _, status, answers = list(chat.respond(model, QUESTION, [], []))[-1]
    assert "internal error" in status and "ZeroDivisionError" in status
    assert "internal error (ZeroDivisionError)" in history[-1]["content"] and answers == []
    assert "division by zero" not in status + history[-1]["content"]  # the log holds that
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.exc_info[0] is ZeroDivisionError


def test_rebuild_names_a_bug_and_logs_the_traceback(cfg, monkeypatch, caplog):
    model = Assistant(cfg, HashingEmbedder(), ScriptedGenerator())
    monkeypatch.setattr(model, "rebuild", lambda progress=None: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="assistant.chat"):
        message = ui.rebuild_index(model)
    assert message.startswith("Rebuild failed: an internal error (ZeroDivisionError)")
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_startup_goes_on_after_a_build_a_person_can_fix_but_not_after_a_bug(tmp_path, monkeypatch):
    cfg = Config(seeds_dir=tmp_path / "missing", index_dir=tmp_path / "index")
    monkeypatch.setattr(rag, "make_embedder", lambda c: HashingEmbedder())
    started = Assistant.from_config(cfg, load_generator=False)
    assert "python -m assistant index" in started.index_error

    monkeypatch.setattr(rag, "build_index", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        Assistant.from_config(cfg, load_generator=False)
