"""Helpful / wrong marks: saved as an eval set line each, and run again by `assistant eval`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fakes import HashingEmbedder, ScriptedGenerator, passage_number

from assistant import chat, cli, ui
from assistant.evaluation import load_set
from assistant.feedback import feedback_id
from assistant.rag import Assistant

DEAL = "By what date is the rare earth deal meant to be finalised?"
SIGNED = "When will the rare earth deal be signed?"
PENGUINS = "Did penguins vote on the treaty in 1850?"


def reply(messages) -> str:
    """Cites the April 26 sentence for questions about the deal; finds nothing otherwise."""
    if any("penguins" in m["content"].lower() for m in messages if m["role"] == "user"):
        return "not found"
    return f"The goal is to finalize the deal by April 26 [{passage_number(messages, 'April 26')}]."


def conversation(cfg):
    """Three answers of one chat: the deal's date, a refusal, the deal's date asked otherwise."""
    assistant = Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))
    answers = []
    for question in (DEAL, PENGUINS, SIGNED):
        *_, (_, _, _, answers) = chat.respond(assistant, question, [], answers)
    assert [a.abstained for a in answers] == [False, True, False]
    return answers


def lines(cfg) -> list[dict]:
    path = Path(cfg.feedback_dir) / "questions.jsonl"
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_a_mark_is_one_eval_line_replaced_when_marked_again_and_removed_when_unmarked(cfg):
    answers = conversation(cfg)
    status = ui.mark_answer(cfg, answers, 0, True)
    assert status.startswith("Marked answer 1 helpful. 1 marked answer in ")
    assert "python -m assistant eval --set" in status
    (line,) = lines(cfg)
    cited = answers[0].citations[0]
    assert line["id"] == feedback_id(answers[0])
    assert line["question"] == DEAL and line["answerable"] is True
    assert line["answers"] == ["The goal is to finalize the deal by April 26."]
    assert line["gold_docs"] == [cited.doc_id] and line["gold_sentences"] == [cited.quote]
    assert line["verdict"] == "helpful" and line["reply"] == answers[0].text
    assert line["evidence"] and {"doc_id", "title", "text"} <= set(line["evidence"][0])
    assert line["history"] == []
    # The corpus is the documents folder, so the set is complete as it stands.
    corpus = Path(cfg.feedback_dir) / "corpus"
    assert corpus.is_symlink() and os.path.samefile(corpus, cfg.seeds_dir)

    ui.mark_answer(cfg, answers, 0, False)  # changed its mind: the same line, now "wrong"
    (line,) = lines(cfg)
    assert line["verdict"] == "wrong" and line["answerable"] is False and line["answers"] == []
    assert ui.mark_answer(cfg, answers, 0, None).startswith("Unmarked answer 1. No marked")
    assert lines(cfg) == []


def test_marked_answers_run_again_as_a_set_through_assistant_eval(cfg, fake_models, tmp_path):
    answers = conversation(cfg)
    ui.mark_answer(cfg, answers, 0, True)  # the date: right
    ui.mark_answer(cfg, answers, 1, True)  # the refusal: right, the documents do not say
    ui.mark_answer(cfg, answers, 2, False)  # "signed" is not "finalised": wrong
    eval_set = load_set(cfg.feedback_dir)
    by_question = {q.question: q for q in eval_set.questions}
    assert [by_question[q].answerable for q in (DEAL, PENGUINS, SIGNED)] == [True, False, False]
    assert by_question[SIGNED].history == ((DEAL, answers[0].text), (PENGUINS, answers[1].text))

    fake_models.reply = reply
    out = tmp_path / "feedback-result.json"
    assert cli.main(["eval", "--set", str(cfg.feedback_dir), "--json", str(out)]) == 0
    result = json.loads(out.read_text("utf-8"))
    assert result["set"] == "feedback" and result["questions"] == 3
    assert result["counts"] == {
        "done": 3,
        "answerable": 1,
        "unanswerable": 2,
        "short_answers": 1,
    }
    assert result["answers"]["accuracy"] == 1.0  # the helpful answer is given again
    assert result["citations"]["precision"] == 1.0
    # The refusal is repeated; the wrong answer is given again, and the rate shows it.
    assert result["abstention"]["refusal_rate_unanswerable"] == 0.5
