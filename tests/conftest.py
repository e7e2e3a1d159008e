"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
from fakes import seeded_config

from assistant.config import Config


@pytest.fixture()
def cfg(tmp_path, request) -> Config:
    """The shipped seeds, indexed with the hashing embedder.

    A module or test marked `pytest.mark.cfg(extra, **overrides)` gets those passed on to
    seeded_config: `extra` documents (name: text) beside the seeds, and other settings.
    """
    marker = request.node.get_closest_marker("cfg")
    args, kwargs = (marker.args, marker.kwargs) if marker else ((), {})
    return seeded_config(tmp_path, *args, **kwargs)
