"""The public names: `from assistant import Assistant, Config, Answer` without heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_public_names_import_from_the_package():
    from assistant import Answer, Assistant, AssistantError, Config
    from assistant.errors import AssistantError as base
    from assistant.rag import Assistant as rag_assistant
    from assistant.schema import Answer as schema_answer

    assert (Assistant, Answer, AssistantError) == (rag_assistant, schema_answer, base)
    assert Config().top_k > 0


def test_importing_the_package_loads_no_heavy_library():
    code = (
        "import sys, assistant\n"
        "from assistant import Answer, Config\n"
        "heavy = {'numpy', 'torch', 'faiss', 'gradio', 'transformers', 'sentence_transformers'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
        "from assistant import Assistant\n"
        "print(sorted({'torch', 'faiss', 'gradio', 'transformers'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["[]", "[]"]
