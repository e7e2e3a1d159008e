"""Retrieval, citations, abstention and follow-ups, with a hashing embedder and scripted replies."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fakes import YEAR_DOCS, HashingEmbedder, ScriptedGenerator, passage_number

from assistant import cli, rag
from assistant.citations import REFUSAL, SupportChecker, sentences_of, strip_unknown_markers
from assistant.config import Config
from assistant.rag import Assistant, QuestionError, clean_question
from assistant.retrieval import merge_overlaps
from assistant.schema import Chunk, Hit

SEEDS = Path(__file__).parent.parent / "seeds"
EXTRA = {
    "weather.md": "# Storm warning\n\n2025-03-02\n\nA storm with winds of 120 km/h hit the coast "
    "of Brittany on Sunday. Ferries between Roscoff and Plymouth were cancelled.",
    "chess.txt": "Magnus Carlsen won the Norway Chess tournament in Stavanger for the sixth time.",
}


pytestmark = pytest.mark.cfg(EXTRA)


def make(cfg: Config, reply="") -> Assistant:
    return Assistant(cfg, HashingEmbedder(), ScriptedGenerator(reply))


def cite(sentence: str, needle: str):
    """A scripted reply that states sentence and cites the passage holding needle."""
    return lambda messages: f"{sentence} [{passage_number(messages, needle)}]."


# --- retrieval ---------------------------------------------------------------------------


def test_keyword_search_finds_names_and_numbers(cfg):
    a = make(cfg)
    hits = a.retrieve("Roscoff Plymouth ferries", k=3)
    assert hits[0].chunk.doc_id == "weather.md"
    assert a.retrieve("Stavanger", k=1)[0].chunk.doc_id == "chess.txt"


@pytest.mark.cfg(YEAR_DOCS)
def test_a_passage_chosen_for_its_year_is_read_in_its_place_by_relevance(cfg):
    question = "Who won the U.S. Open women's final in 2019?"
    a = make(cfg, reply=cite("Andreescu", "Andreescu"))
    assert a.retrieve(question, k=1)[0].chunk.doc_id == "report.txt"  # chosen first
    answer = a.ask(question)
    read = [h.chunk.doc_id for h in answer.passages]
    assert read.index("preview.txt") < read.index("report.txt")
    assert [h.score for h in answer.passages] == sorted(
        (h.score for h in answer.passages), reverse=True
    )
    assert not answer.abstained and "Andreescu" in answer.text


def test_overlapping_passages_are_merged():
    text = "one two three four five six seven eight nine ten"
    a = Chunk("d#0", "d", text[:23], 0, 23, 1, "D")
    b = Chunk("d#1", "d", text[14:], 14, len(text), 1, "D")
    other = Chunk("e#0", "e", "x", 0, 1, 1, "E")
    merged = merge_overlaps([Hit(a, 0.5, 0.4), Hit(other, 0.4, 0.3), Hit(b, 0.3, 0.6)])
    assert [h.chunk.doc_id for h in merged] == ["d", "e"]
    assert merged[0].chunk.text == text
    assert merged[0].similarity == 0.6


# --- citations ---------------------------------------------------------------------------


def test_unknown_markers_are_removed():
    assert strip_unknown_markers("A [1]. B [4]. C [2, 3, 9].", 3) == "A [1]. B. C [2][3]."


def test_sentences_keep_their_markers():
    assert sentences_of("Rubio spoke in Paris. [1] The deal is due April 26 [2].") == [
        "Rubio spoke in Paris [1].",
        "The deal is due April 26 [2].",
    ]
    # A reply that starts with a marker puts its markers first: each leads its own sentence.
    assert sentences_of("[1] Rubio spoke in Paris. [2] The deal is due April 26.") == [
        "[1] Rubio spoke in Paris.",
        "[2] The deal is due April 26.",
    ]


def _hits(*texts):
    return [
        Hit(Chunk(f"d{i}#0", f"d{i}", t, 0, len(t), 1, f"D{i}"), 1.0, 0.5)
        for i, t in enumerate(texts)
    ]


def test_support_check_flags_unsupported_and_fixes_wrong_marker():
    hits = _hits(
        "The storm hit Brittany on Sunday. Ferries were cancelled.",
        "The rare earth deal should be finalised by April 26.",
    )
    checker = SupportChecker(HashingEmbedder().embed)
    text, sents, cites = checker.check(
        "The rare earth deal should be finalised by April 26 [1]. "
        "Bananas are the main export of Iceland [2].",
        hits,
    )
    assert sents[0].supported and sents[0].markers == (2,)  # re-pointed to the right passage
    assert not sents[1].supported
    good = [c for c in cites if c.supported]
    assert [(c.n, c.quote) for c in good] == [
        (2, "The rare earth deal should be finalised by April 26.")
    ]


def test_numbers_must_appear_in_the_passage():
    hits = _hits("The rare earth deal should be finalised by April 26.")
    _, sents, _ = SupportChecker(HashingEmbedder().embed).check(
        "The rare earth deal should be finalised by April 27 [1].", hits
    )
    assert not sents[0].supported


@pytest.mark.parametrize(
    ("answer", "passage"),
    [
        # Text tokenised with spaced hyphens (CLAPnq's Wikipedia) and the answer written whole.
        ("Air-to-air photography [1].", "Air - to - air photography is the art of it."),
        # And the other way round: the answer spaced, the passage hyphenated.
        ("Air to Air photography [1].", "Air-to-air photography is the art of it."),
    ],
)
def test_a_hyphenated_name_is_found_however_its_hyphens_are_spaced(answer, passage):
    checker = SupportChecker(HashingEmbedder().embed)
    _, sents, _ = checker.check(answer, _hits(passage))
    assert sents[0].supported
    _, sents, _ = checker.check("Air-to-sea photography [1].", _hits(passage))
    assert not sents[0].supported  # every part must be there


@pytest.mark.parametrize(
    ("answer", "supported"),
    [
        ("$180,000 [1].", False),  # the passage counts vehicles, not dollars
        ("180,000 vehicles [1].", True),
        ("$1.65 billion [1].", True),  # "1.65 billion dollars" is the same amount
        ("1.65 billion dollars [1].", True),
        ("€1.65 billion [1].", True),
    ],
)
def test_an_amount_of_money_needs_money_in_the_passage(answer, supported):
    hits = _hits(
        "In the first quarter, Tesla produced just over 180,000 vehicles. "
        "Google bought YouTube for 1.65 billion dollars in 2006."
    )
    _, sents, _ = SupportChecker(HashingEmbedder().embed).check(answer, hits)
    assert sents[0].supported is supported


def test_a_claim_cites_the_passage_about_what_was_asked_when_the_one_cited_is_not():
    hits = _hits(
        "Germany won the World Cup final against Argentina after extra time.",
        "World Cup 2014 winner - Germany. Runner-up - Argentina.",
    )
    question = "Who won the World Cup Final in 2014?"
    checker = SupportChecker(HashingEmbedder().embed)
    _, sents, cites = checker.check("Germany [1].", hits, question)
    assert sents[0].supported and sents[0].markers == (2,)
    assert [c.n for c in cites if c.supported] == [2]
    # With no passage about 2014, the claim stays unsupported.
    _, sents, _ = checker.check("Germany [1].", hits[:1], question)
    assert not sents[0].supported


SNIPPET = (
    "Jul 9, 2022 ... Elena Rybakina won the women's singles final at Wimbledon on Saturday ... "
    "The crowd on Centre Court cheered. Rain had stopped by noon ... "
    "Since 2018, she was the youngest women's finalist at Wimbledon since 2015 ..."
)


@pytest.mark.parametrize(
    ("question", "answer", "supported"),
    [
        # The names and the year are in one fragment (the dateline dates the whole snippet).
        ("Who won Wimbledon in 2022?", "Elena Rybakina won Wimbledon in 2022 [1].", True),
        # Every word is in the passage, but 2018 sits three sentences away from the name.
        ("Who won Wimbledon in 2018?", "Elena Rybakina won Wimbledon in 2018 [1].", False),
        # A name the passage never mentions, next to words it does.
        ("Who won Wimbledon in 2022?", "Simona Halep won Wimbledon in 2022 [1].", False),
        # A question's word restated capitalised, in another form, is no name to look for.
        (
            "What did Elena Rybakina win at Wimbledon?",
            "Winning the women's singles final at Wimbledon [1].",
            True,
        ),
        # A capitalised word that is neither in the question nor in the passage is.
        (
            "What did Elena Rybakina win at Wimbledon?",
            "Winning the women's singles final at Roland Garros [1].",
            False,
        ),
        # A faithful copy that is about something other than the question's subject.
        (
            "Who won the US Open in 2022?",
            "Elena Rybakina won the women's singles final [1].",
            False,
        ),
    ],
)
def test_a_claim_must_hold_within_one_passage_sentence_and_match_the_question(
    question, answer, supported
):
    _, sents, _ = SupportChecker(HashingEmbedder().embed).check(answer, _hits(SNIPPET), question)
    assert sents[0].supported is supported


def test_neighbouring_sentences_support_a_claim_together():
    hits = _hits(
        "Ukraine's foreign minister is Andrii Sibiha. He met Marco Rubio in Paris on Thursday. "
        "The weather was mild."
    )
    checker = SupportChecker(HashingEmbedder().embed)
    _, sents, _ = checker.check(
        "Andrii Sibiha met Marco Rubio in Paris [1].", hits, "Who did Ukraine's minister meet?"
    )
    assert sents[0].supported
    # Far-apart sentences are not one claim's support.
    far = _hits(
        "Andrii Sibiha spoke on Monday. The weather was mild. Rain fell in Kyiv. "
        "Marco Rubio flew to Paris on Thursday."
    )
    _, sents, _ = checker.check("Andrii Sibiha met Marco Rubio in Paris [1].", far, "")
    assert not sents[0].supported


def test_a_hard_wrapped_passage_is_read_in_whole_sentences():
    text = (
        "The US will abandon attempts to mediate a peace agreement between Russia and\n"
        "Ukraine within days, Rubio warned. The goal is to finalize the deal by April\n"
        "26.\n\nSecurity guarantees\nThe White House did not respond."
    )
    assert sentences_of(text) == [
        "The US will abandon attempts to mediate a peace agreement between Russia and Ukraine "
        "within days, Rubio warned.",
        "The goal is to finalize the deal by April 26.",
        "Security guarantees",
        "The White House did not respond.",
    ]


def test_abbreviations_do_not_end_sentences():
    assert sentences_of("Gauff won the U.S. Open in New York. Mr. Smith watched.") == [
        "Gauff won the U.S. Open in New York.",
        "Mr. Smith watched.",
    ]
    assert sentences_of("It premieres on Thursday, Nov. 12. Fans wait.") == [
        "It premieres on Thursday, Nov. 12.",
        "Fans wait.",
    ]


# --- answering ---------------------------------------------------------------------------


def test_answer_cites_supporting_passage(cfg):
    a = make(cfg, cite("The goal is to finalize the rare earth deal by April 26", "April 26"))
    answer = a.ask("By when should the rare earth deal be finalized?")
    assert not answer.abstained
    assert "April 26" in answer.text and "[" in answer.text
    assert answer.citations and all(c.supported for c in answer.citations)
    assert "April 26" in answer.citations[0].quote
    n = answer.citations[0].n
    assert "April 26" in answer.passages[n - 1].chunk.text
    assert set(answer.timings) >= {"retrieval_ms", "first_token_ms", "total_ms", "tokens_per_s"}


def test_stream_yields_growing_text(cfg):
    a = make(cfg, cite("The goal is to finalize the rare earth deal by April 26", "April 26"))
    texts = [ans.text for ans in a.stream("When is the rare earth deal due?")]
    assert len(texts) > 5
    assert all(len(x) <= len(y) for x, y in zip(texts[:-2], texts[1:-1]))


def test_each_streamed_answer_keeps_its_own_timings(cfg):
    """A chat keeps earlier updates: none may share (and later see) another's timings dict."""
    a = make(cfg, cite("The goal is to finalize the rare earth deal by April 26", "April 26"))
    updates = list(a.stream("When is the rare earth deal due?"))
    assert len({id(u.timings) for u in updates}) == len(updates)
    assert "first_token_ms" not in updates[0].timings  # the evidence, before the model wrote
    assert all("total_ms" not in u.timings for u in updates[:-1])
    assert "total_ms" in updates[-1].timings


def test_invented_answer_is_refused(cfg):
    a = make(cfg, "The treaty was signed by Napoleon in 1805 [1].")
    answer = a.ask("Who signed the treaty of Pressburg?")
    assert answer.abstained and "do not contain" in answer.text
    assert answer.passages  # the closest passages are still shown
    assert not answer.citations
    assert answer.text == f"{REFUSAL} {rag.INVENTED}"  # why, in words; not where to look


def test_a_reply_that_stops_mid_claim_gives_the_units_own_words(cfg):
    # (A reply that only restates the question: test_evidence.py.)
    reply = "A storm with winds of 120 km/h hit the coast of [{n}]."
    a = make(cfg, lambda m: reply.format(n=passage_number(m, "Brittany")))
    answer = a.ask("Which storm hit the coast of Brittany?")
    assert not answer.abstained
    assert "A storm with winds of 120 km/h hit the coast of Brittany on Sunday [" in answer.text
    assert [s.reason for s in answer.dropped] == [rag.RESTATES]  # the reply, left out: why


def test_irrelevant_question_skips_the_model(cfg):
    gen = ScriptedGenerator("should not be called")
    a = Assistant(Config(**{**cfg.__dict__, "min_relevance": 0.99}), HashingEmbedder(), gen)
    answer = a.ask("zebra xylophone quantum")
    assert answer.abstained and gen.prompts == []
    assert answer.text == f"{REFUSAL} {rag.NOT_CLOSE}"
    # A name the documents do not hold changes nothing.
    assert a.ask("What happened in Brazil?").text == f"{REFUSAL} {rag.NOT_CLOSE}"


def test_a_question_about_a_name_the_passages_hold_reaches_the_model_however_short(cfg):
    # "What happened in Paris?" is far from every passage's vector (0.11 with MiniLM); the
    # passage that names Paris is about it all the same.
    gen = ScriptedGenerator(lambda m: f"[{passage_number(m, 'Paris')}]")
    a = Assistant(Config(**{**cfg.__dict__, "min_relevance": 0.99}), HashingEmbedder(), gen)
    for question in ("What happened in Paris?", "what happened in paris"):
        answer = a.ask(question)
        assert gen.prompts and not answer.abstained, answer.text
        assert "Paris" in answer.text


def test_follow_up_is_rewritten_from_history(cfg):
    def reply(messages):
        if "Follow-up" in messages[-1]["content"]:
            assert "rare earth" in messages[-1]["content"]
            assert "[" not in messages[-1]["content"]  # no marker, "[1, 2]" included
            return "When will the rare earth deal between Ukraine and the US be finalized?"
        return f"The deal should be finalized by April 26 [{passage_number(messages, 'April 26')}]."

    a = make(cfg, reply)
    history = [
        (
            "What did Ukraine sign with Washington?",
            "Ukraine took the first step towards a rare earth metals deal [1, 2].",
        )
    ]
    answer = a.ask("And when will it be finalized?", history)
    assert "rare earth" in answer.standalone_question
    assert not answer.abstained and "April 26" in answer.text
    assert "April 26" in " ".join(h.chunk.text for h in answer.passages)


def test_a_follow_up_of_a_word_or_two_is_rewritten_from_history(cfg):
    def reply(messages):
        if "Follow-up" in messages[-1]["content"]:
            return "When will the rare earth deal between Ukraine and the US be finalized?"
        return f"April 26 [{passage_number(messages, 'April 26')}]."

    history = [("What did Ukraine sign with Washington?", "A rare earth metals deal [1].")]
    answer = make(cfg, reply).ask("When?", history)
    assert answer.standalone_question.startswith("When will the rare earth deal")
    assert not answer.abstained and "April 26" in answer.text


def test_a_rewrite_that_brings_in_names_the_conversation_never_had_is_not_used(cfg):
    prompts = []

    def reply(messages):
        prompts.append(messages[-1]["content"])
        if "Follow-up" in messages[-1]["content"]:
            return "What did Andriy Sibiha discuss with Donald Trump and John Kerry?"
        return "not found"

    history = [("Who is Ukraine's foreign minister?", "Andriy Sibiha [1].")]
    question = "What did he discuss with Rubio and Witkoff?"
    answer = make(cfg, reply).ask(question, history)
    assert answer.standalone_question == question  # asked as it is: it has words of its own
    assert question in prompts[-1] and "Kerry" not in prompts[-1]
    # A rewrite that drops the question's own names is not used either.
    prompts.clear()
    dropped = make(
        cfg,
        lambda m: (
            "What did Andriy Sibiha discuss?" if "Follow-up" in m[-1]["content"] else "not found"
        ),
    )
    assert dropped.ask(question, history).standalone_question == question


def test_question_without_history_is_not_rewritten(cfg):
    gen = ScriptedGenerator(lambda m: "The documents do not contain the answer.")
    answer = Assistant(cfg, HashingEmbedder(), gen).ask("When is it due?")
    assert len(gen.prompts) == 1
    assert answer.text == f"{REFUSAL} {rag.NOT_FOUND}"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "type a question"),
        ("   \n\t ", "type a question"),
        ("?!?...", "no words"),
        ("x" * 100_000, "characters long"),
    ],
)
def test_bad_questions_get_clear_messages(bad, message):
    with pytest.raises(QuestionError, match=message):
        clean_question(bad)


def test_control_characters_are_removed_and_non_english_accepted(cfg):
    assert clean_question("When\x00 is\x1b the deal\x07 due?") == "When is the deal due?"
    answer = make(cfg, "Les documents ne le disent pas.").ask("Quand l'accord sera-t-il signé ?")
    assert answer.text  # a sensible reply, no exception


def test_stop_event_ends_generation(cfg):
    stop = threading.Event()
    a = make(cfg, "word " * 200)
    count = 0
    for _ in a.stream("rare earth deal", stop=stop):
        count += 1
        if count == 3:
            stop.set()
    assert count < 10


def test_empty_index_says_so(tmp_path):
    (tmp_path / "seeds").mkdir()
    c = Config(seeds_dir=tmp_path / "seeds", index_dir=tmp_path / "index")
    a = make(c, "x")
    answer = a.ask("anything?")
    assert answer.abstained and "python -m assistant index" in answer.text


def test_rebuild_swaps_in_new_documents_while_old_keeps_serving(cfg):
    a = make(cfg, "The documents do not contain the answer.")
    assert not any(d["id"] == "new.txt" for d in a.documents())
    (cfg.seeds_dir / "new.txt").write_text("The Antarctic research base Halley VI moved in 2017.")
    assert a.retrieve("Halley VI Antarctic", k=1)[0].chunk.doc_id != "new.txt"
    report = a.rebuild()
    assert report.added == ["new.txt"]
    assert a.retrieve("Halley VI Antarctic", k=1)[0].chunk.doc_id == "new.txt"


def test_cli_ask_json_shape(cfg, fake_models, capsys):
    fake_models.reply = cite("The goal is to finalize the rare earth deal by April 26", "April 26")
    code = cli.main(
        [
            "ask",
            "When is the rare earth deal due?",
            "--json",
            "--seeds",
            str(cfg.seeds_dir),
            "--index",
            str(cfg.index_dir),
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    # The shape of earlier releases, plus the evidence units and the decision.
    assert set(out) == {
        "answer",
        "abstained",
        "citations",
        "passages",
        "timings",
        "evidence",
        "decision",
    }
    assert set(out["citations"][0]) == {"n", "doc_id", "passage_id", "supported", "quote"}
    assert set(out["passages"][0]) == {"n", "doc_id", "title", "text", "score"}
    assert set(out["timings"]) >= {"retrieval_ms", "first_token_ms", "total_ms", "tokens_per_s"}
    unit = out["evidence"][0]
    assert set(unit) == {"n", "passage", "doc_id", "text", "start", "end", "similarity"}
    text = (cfg.seeds_dir / unit["doc_id"]).read_text("utf-8")
    assert text[unit["start"] : unit["end"]] == unit["text"]
    assert 0 <= out["decision"]["probability"] <= 1


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    code = cli.main(["index", "--seeds", str(tmp_path / "missing"), "--index", str(tmp_path / "i")])
    err = capsys.readouterr().err
    assert code == 1 and "error: seeds folder" in err and "Traceback" not in err
