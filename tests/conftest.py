"""Fixtures shared by the test modules."""

from __future__ import annotations

import dataclasses

import pytest
from fakes import HashingEmbedder, ScriptedEngine, config_env, seeded_config

from assistant import rag
from assistant.config import Config
from assistant.generation import ENGINES


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test (item.report_call), for fixtures that look at it."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture()
def cfg(tmp_path, request) -> Config:
    """The shipped seeds, indexed with the hashing embedder.

    A module or test marked `pytest.mark.cfg(extra, **overrides)` gets those passed on to
    seeded_config: `extra` documents (name: text) beside the seeds, and other settings.
    """
    marker = request.node.get_closest_marker("cfg")
    args, kwargs = (marker.args, marker.kwargs) if marker else ((), {})
    return seeded_config(tmp_path, *args, **kwargs)


@pytest.fixture()
def scripted_engine(monkeypatch) -> ScriptedEngine:
    """The "scripted" engine, registered for this test: a Config with ScriptedEngine.SETTINGS
    loads a ScriptedGenerator of `scripted_engine.reply` through load_generator."""
    engine = ScriptedEngine()
    monkeypatch.setitem(ENGINES, engine.name, engine.load)
    return engine


@pytest.fixture()
def fake_models(cfg, scripted_engine, monkeypatch) -> ScriptedEngine:
    """The CLI and the app on cfg's settings, through the real Assistant.from_config, with the
    hashing embedder and the scripted engine instead of the real models."""
    # The embedder has one implementation and so no registry: its factory is replaced.
    monkeypatch.setattr(rag, "make_embedder", lambda c: HashingEmbedder())
    for name, value in config_env(dataclasses.replace(cfg, **ScriptedEngine.SETTINGS)).items():
        monkeypatch.setenv(name, value)
    return scripted_engine
