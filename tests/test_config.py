"""Settings are checked at the edge: every numeric setting has a range, NaN included."""

from __future__ import annotations

import dataclasses

import pytest

from assistant import cli
from assistant.config import RANGES, Config, ConfigError


def test_every_numeric_setting_has_a_range():
    numeric = {f.name for f in dataclasses.fields(Config) if str(f.type) in ("int", "float")}
    assert numeric == set(RANGES)


@pytest.mark.parametrize(
    "name, raw",
    [
        ("RRF_K", "-1"),
        ("MIN_RELEVANCE", "nan"),
        ("MAX_DOCUMENT_BYTES", "-1"),
        ("EXACT_SEARCH_LIMIT", "-1"),
        ("THREADS", "-1"),
        ("MAX_NEW_TOKENS", "0"),
        ("DENSE_WEIGHT", "nan"),
        ("KEYWORD_WEIGHT", "inf"),
        ("TOP_K", "0"),
        ("EMBED_BATCH_SIZE", "0"),
    ],
)
def test_out_of_range_setting_is_one_error_line_naming_it(name, raw, monkeypatch, capsys):
    with pytest.raises(ConfigError, match=f"ASSISTANT_{name}"):
        Config.from_env({f"ASSISTANT_{name}": raw})
    monkeypatch.setenv(f"ASSISTANT_{name}", raw)
    assert cli.main(["index", "--seeds", "/nonexistent"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and f"ASSISTANT_{name}" in err[0]


def test_both_weights_zero_is_refused():
    with pytest.raises(ConfigError, match="both be 0"):
        Config(dense_weight=0.0, keyword_weight=0.0)


def test_defaults_and_edges_are_accepted():
    Config()
    Config(min_relevance=-1.0, threads=0, rrf_k=0, exact_search_limit=0, max_new_tokens=4096)


def test_engine_must_be_auto_or_an_engine():
    with pytest.raises(ConfigError, match="engine must be auto, transformers or llamacpp, not 'x'"):
        Config(engine="x")


def test_a_registered_engine_is_a_setting_and_a_cli_choice(scripted_engine):
    assert Config(engine="scripted").engine == "scripted"
    assert cli.make_parser().parse_args(["ask", "q", "--engine", "scripted"]).engine == "scripted"
    with pytest.raises(ConfigError, match="auto, transformers, llamacpp or scripted, not 'x'"):
        Config(engine="x")
