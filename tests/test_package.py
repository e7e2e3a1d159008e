"""The public names: `from assistant import Assistant, Config, Answer` without heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fakes import passage_number

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


def test_the_readme_python_example_runs(fake_models, capsys):
    """The README's Python section, run as written, on the fakes (fake_models sets the env)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Python\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]

    def reply(messages):
        user = messages[-1]["content"]
        if "Follow-up" in user:
            return "Who hinted at the rare earth minerals deal?"
        if "hinted" in user.split("Question:", 1)[1]:
            return f"Trump hinted at the deal [{passage_number(messages, 'Trump also hinted')}]."
        return f"The deal should be finalized by April 26 [{passage_number(messages, 'April 26')}]."

    fake_models.reply = reply
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "The deal should be finalized by April 26 [1]."
    assert (
        out[1].startswith("[1] rubio-us-mediation-russia-ukraine-talks.txt: ")
        and "April 26" in out[1]
    )
    assert "Trump" in out[-1] and "[" in out[-1]
