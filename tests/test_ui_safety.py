"""Nothing lost, nothing leaked: what the chat window renders, serves, saves and lists."""

from __future__ import annotations

import pytest

from assistant import ui
from assistant.config import Config, ConfigError

# --- 4. an auth file that is not UTF-8 ------------------------------------------------------


def test_auth_file_not_utf8_names_the_file(tmp_path):
    logins = tmp_path / "logins"
    logins.write_bytes(b"ann:caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        ui.resolve_auth(Config(host="0.0.0.0"), env={"ASSISTANT_AUTH_FILE": str(logins)})
    message = str(caught.value)
    assert str(logins) in message and "UTF-8" in message and "\n" not in message
