"""The API with the real models: a streamed answer with citations about the shipped article."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import openai
import pytest

from assistant import api, server, ui
from assistant.config import Config
from assistant.rag import Assistant

pytestmark = pytest.mark.real
ROOT = Path(__file__).parent.parent
ARTICLE = "rubio-us-mediation-russia-ukraine-talks.txt"


def test_streamed_answer_about_the_shipped_article_comes_with_its_citations(tmp_path):
    shutil.copytree(ROOT / "seeds", tmp_path / "seeds")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = Config.from_env(
        seeds_dir=tmp_path / "seeds", index_dir=tmp_path / "index", port=port, max_new_tokens=96
    )
    assistant = Assistant.from_config(cfg)
    demo = ui.build_app(assistant, cfg)
    server.launch(demo, cfg, None, assistant=assistant, prevent_thread_lock=True, quiet=True)
    try:
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=900
        )
        chunks = list(
            client.chat.completions.create(
                model=api.MODEL_ID,
                stream=True,
                messages=[
                    {
                        "role": "user",
                        "content": "By what date should the rare earth deal be finalized?",
                    }
                ],
            )
        )
    finally:
        demo.close()
    first = chunks[0].model_extra
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert first["abstained"] is False, text
    assert "April 26" in text and "[" in text
    assert first["citations"] and all(c["doc_id"] == ARTICLE for c in first["citations"])
    assert any("April 26" in c["quote"] and c["supported"] for c in first["citations"])
    document = (ROOT / "seeds" / ARTICLE).read_text(encoding="utf-8")
    for c in first["citations"]:
        assert document[c["start"] : c["end"]] == c["quote"]
    print(f"\nstreamed: {text!r}; first chunk: {first}")
