"""A local, private question-answering assistant over a folder of documents.

    from assistant import Assistant, Config

    answer = Assistant.from_config(Config.from_env()).ask("When is the deal due?")
    print(answer.text, answer.citations)

`Assistant` is imported on first use, so `import assistant` (and the CLI's --help) stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import Config
from .errors import AssistantError
from .schema import Answer

if TYPE_CHECKING:
    from .rag import Assistant

__version__ = "0.1.0"
__all__ = ["Answer", "Assistant", "AssistantError", "Config"]


def __getattr__(name: str) -> object:
    if name == "Assistant":
        from .rag import Assistant

        return Assistant
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
