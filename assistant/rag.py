"""The Assistant: retrieval + generation + citations, and building its index from config."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence

from . import dates, decision, evidence
from .chunking import HEADING
from .citations import (
    MARKER,
    REFUSAL,
    SupportChecker,
    _found,
    _words,
    adds_information,
    cased,
    evidence_messages,
    holds_all,
    is_refusal,
    key_terms,
    markers_in,
    sentences_of,
)
from .config import Config
from .embedding import BACKENDS, Embedder
from .errors import AssistantError
from .indexing import BuildReport, ChunkerSettings, Progress, build
from .retrieval import Retriever, keywords, reading_order
from .schema import Answer, Citation, Evidence, Hit, IndexedDocument, Sentence
from .store import Index, IndexLoadError

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000


class QuestionError(AssistantError):
    """A question the assistant cannot take; the message is shown to the user as is."""


def make_embedder(cfg: Config) -> Embedder:
    """The configured embedder on the configured backend (loaded on first use)."""
    return BACKENDS[cfg.embed_backend](cfg.embedder, cfg.embed_batch_size, cfg.cache_dir)


def chunker_settings(cfg: Config) -> ChunkerSettings:
    return ChunkerSettings(cfg.chunk_tokens, cfg.chunk_overlap)


def build_index(
    cfg: Config,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    lock_wait_s: float = 0.0,
    ray: str | None = None,
) -> BuildReport:
    """Bring cfg.index_dir up to date with cfg.seeds_dir.

    With `ray` (an address, or "auto" for a local instance) the new or changed documents are
    read, split and embedded on a Ray cluster, each worker with its own make_embedder(cfg).
    """
    runner = None
    if ray is not None:
        from .distributed import RayRunner

        runner = RayRunner(functools.partial(make_embedder, cfg), address=ray)
    return build(
        cfg.seeds_dir,
        cfg.index_dir,
        embedder or make_embedder(cfg),
        chunker_settings(cfg),
        exact_limit=cfg.exact_search_limit,
        compressed_limit=cfg.compressed_search_limit,
        max_document_bytes=cfg.max_document_bytes,
        follow_external_links=cfg.follow_external_links,
        progress=progress,
        lock_wait_s=lock_wait_s,
        runner=runner,
    )


def clean_question(question: str) -> str:
    """The question with control characters removed, or QuestionError saying what is wrong."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", question)  # terminal colour codes, whole
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text)
    text = " ".join(text.split())
    if not text:
        raise QuestionError("Please type a question.")
    if len(text) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(text):,} characters long; please keep it under "
            f"{MAX_QUESTION_CHARS:,} characters."
        )
    if not re.search(r"\w", text):
        raise QuestionError("The question has no words in it; please ask in words.")
    return text


REWRITE_PROMPT = (
    "Rewrite the user's follow-up question as one standalone question that can be understood "
    "without the conversation: replace pronouns and vague references with the names they refer "
    "to. Reply with the rewritten question only."
)
_NOT_FOUND = re.compile(r"not found\b", re.I)
# Why the assistant refused, in words; it follows REFUSAL in the answer's text. Where the closest
# passages are shown is the front end's to say (the window's Sources panel, the CLI's list).
NOT_CLOSE = "No passage is close enough to the question."
NO_EVIDENCE = "No sentence of the closest passages bears on the question."
NOT_FOUND = "The model found no answer in the closest passages."
NOT_SUPPORTED = "The answer the model wrote is not clearly supported by the closest passages."
INVENTED = "What the model wrote is not in the passages."
FAR = "No sentence of the closest passages is close enough to the question to answer it."
# Why a sentence of the model's reply was left out of the answer, in words.
UNSUPPORTED = "no passage states it: a name, number or date in it is not there"
NOT_SHOWN = "it cites a passage the model was not given"
RESTATES = "it adds nothing to the question, or breaks off mid-claim"
_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|what about|how about)\b|\b(it|its|they|them|their|he|him|his|she|her|"
    r"this|that|these|those|there|then)\b",
    re.I,
)


class Line:
    """Questions take the model one at a time, in the order they came: the window's and the
    API's, which share their Assistant's line.

    The model answers one request at a time anyway (its engine holds a lock); the line makes
    the wait visible: each waiting question knows how many are ahead of it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[object] = []

    def join(self) -> object:
        """A ticket at the end of the line."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
        return ticket

    def ahead(self, ticket: object) -> int:
        """How many questions are before this ticket (0 once it is its turn or it left)."""
        with self._cond:
            return self._queue.index(ticket) if ticket in self._queue else 0

    def wait(self, ticket: object, stop: threading.Event) -> bool:
        """Block until it is the ticket's turn (True), or stop is set first (False)."""
        with self._cond:
            while self._queue and self._queue[0] is not ticket:
                if stop.is_set():
                    return False
                self._cond.wait(0.1)
            return True

    def leave(self, ticket: object) -> None:
        with self._cond:
            if ticket in self._queue:
                self._queue.remove(ticket)
            self._cond.notify_all()


class Assistant:
    """Answers questions from the indexed documents, citing the passages it uses."""

    def __init__(self, cfg: Config, embedder: Embedder, generator=None) -> None:
        self.cfg = cfg
        self.embedder = embedder
        self.generator = generator
        self.checker = SupportChecker(embedder.embed)
        self.index_error: str | None = None
        self.line = Line()  # the order in which the window's and the API's questions are answered
        self._retriever: Retriever | None = None
        self._swap = threading.Lock()
        self.reload()

    @classmethod
    def from_config(
        cls, cfg: Config, progress: Progress | None = None, load_generator: bool = True
    ) -> Assistant:
        """Real models from cfg; builds the index from cfg.seeds_dir first if there is none."""
        progress = progress or (lambda f, m: None)
        embedder = make_embedder(cfg)
        embedder.count_tokens("warm up")  # load the embedder now, not inside the first question
        try:
            # An index built by another embedder (an older release, another backend) is
            # rebuilt here too, rather than refused with a command to run.
            Index.load(cfg.index_dir).check_embedder(embedder.id)
        except IndexLoadError as e:
            progress(0.0, f"building the index from {cfg.seeds_dir} ({e})")
            try:
                report = build_index(cfg, embedder, progress=progress, lock_wait_s=600)
                log.info("%s", report.summary())
            except (OSError, AssistantError) as build_error:
                # Start anyway: the UI shows what is wrong and how to fix it.
                log.error("index build failed: %s", build_error)
        generator = None
        if load_generator:
            from .generation import load_generator as load

            progress(0.0, "loading the language model (the first start prepares it once)")
            generator = load(cfg)
            progress(1.0, f"language model ready: {generator.name}")
            # While the window opens.
            threading.Thread(
                target=read_ahead, args=(generator, cfg.system_prompt), name="prime"
            ).start()
        return cls(cfg, embedder, generator)

    # --- the index --------------------------------------------------------------------

    def reload(self) -> None:
        """Load the current index version; keep serving the old one if the new one fails."""
        try:
            index = Index.load(self.cfg.index_dir)
            index.check_embedder(self.embedder.id)
            retriever = Retriever(
                index,
                self.embedder,
                candidates=self.cfg.candidates,
                dense_weight=self.cfg.dense_weight,
                keyword_weight=self.cfg.keyword_weight,
                rrf_k=self.cfg.rrf_k,
                year_weight=self.cfg.year_weight,
            )
        except IndexLoadError as e:
            self.index_error = str(e)
            log.warning("%s", e)
            return
        with self._swap:
            self._retriever = retriever
            self.index_error = None

    def rebuild(self, progress: Progress | None = None) -> BuildReport:
        """Incremental build; questions keep using the old index until the new one is loaded."""
        report = build_index(self.cfg, self.embedder, progress=progress)
        if report.changed_anything or self._retriever is None:
            self.reload()
        return report

    def documents(self) -> list[IndexedDocument]:
        """Indexed documents (id, title, date, passages); empty without an index."""
        retriever = self._retriever
        return retriever.index.documents() if retriever else []

    def retrieve(self, question: str, k: int | None = None) -> list[Hit]:
        """The best passages for a standalone question, in the order they are chosen."""
        retriever = self._retriever
        if retriever is None:
            return []
        return retriever.search(question, k or self.cfg.top_k)

    # --- answering --------------------------------------------------------------------

    def ask(self, question: str, history: Sequence[tuple[str, str]] = ()) -> Answer:
        """The final Answer to a question, given earlier (user, assistant) turns."""
        *_, final = self.stream(question, history)
        return final

    def standalone(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """Rewrite a follow-up into a question that stands alone, using the chat history."""
        turns = [(u, a) for u, a in history if u and u.strip()][-3:]
        if not turns or not _follows_up(question) or self.generator is None:
            return question
        convo = "\n".join(f"User: {u}\nAssistant: {_first_sentence(a)}" for u, a in turns)
        messages = [
            {"role": "system", "content": REWRITE_PROMPT},
            {
                "role": "user",
                "content": f"Conversation:\n{convo}\n\nFollow-up: {question}\nStandalone question:",
            },
        ]
        text = "".join(self.generator.stream(messages, max_new_tokens=48)).strip()
        text = text.splitlines()[0].strip().strip('"') if text else ""
        said = _words(" ".join([question, *(f"{u} {a}" for u, a in turns)]))
        retriever = self._retriever
        names = {t for t in key_terms(text) if not t[0].isdigit() and not _found(t, said)}
        if (
            not text
            or len(text) > 4 * len(question) + 200
            or not keywords(text)
            # It must keep the question's names and bring in only the conversation's or the
            # documents': "What did he discuss with Rubio and Witkoff?" rewritten "... with
            # Donald Trump and John F. Kerry?" would answer another question.
            or not holds_all(key_terms(question), text)
            or (names and (retriever is None or not all(retriever.knows(n) for n in names)))
        ):
            # A poor rewrite. A question with words of its own is asked as it is (the evidence
            # for "What did he discuss with Rubio and Witkoff?" names him); one without them
            # is read with the question before it.
            return question if len(keywords(question)) >= 2 else f"{turns[-1][0]} {question}"
        return text

    def stream(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        stop: threading.Event | None = None,
    ) -> Iterator[Answer]:
        """Yield Answers whose text grows as tokens arrive; the last one is checked and final."""
        question = clean_question(question)
        started = time.perf_counter()
        timings: dict[str, float] = {}
        standalone = self.standalone(question, history)
        if standalone != question:
            timings["rewrite_ms"] = _ms(started)
        t0 = time.perf_counter()
        hits = reading_order(self.retrieve(standalone))
        timings["retrieval_ms"] = _ms(t0)
        base = Answer(question, "", False, tuple(hits), standalone_question=standalone)

        if not hits:
            msg = self.index_error or "There are no documents in the index yet."
            yield _final(base, f"{REFUSAL} {msg}", True, timings, started)
            return
        # Its names as the passages write them, for a question typed in lower case ("what
        # happened in paris", "who is steve witkoff"): the gate and its kind read names there.
        named = cased(standalone, [h.chunk.text for h in hits])
        if not _close(named, hits, self.cfg.min_relevance):
            yield _final(base, f"{REFUSAL} {NOT_CLOSE}", True, timings, started)
            return
        if self.generator is None:
            raise RuntimeError("no language model loaded: Assistant.from_config(cfg) loads one")

        units = evidence.select(
            standalone,
            hits,
            self.embedder.embed,
            limit=self.cfg.evidence_units,
            max_words=self.cfg.evidence_words,
            other_year_penalty=self.cfg.other_year_penalty,
        )
        timings["evidence_ms"] = _ms(started)
        base = _replace(base, evidence=tuple(units))
        if not units:
            yield _final(base, f"{REFUSAL} {NO_EVIDENCE}", True, timings, started)
            return
        yield _replace(base, timings=dict(timings))  # the evidence, before the model starts

        # The model writes a short answer citing a unit; the system then finds the unit it rests
        # on and decides whether to give it (decision.py).
        # A statement (what someone said, why, how) is answered by a unit's own words: the
        # model is asked to point at it.
        kind = decision.asked_type(named)
        statement = kind == "statement"
        # A short answer that reads as a unit's number is asked again for its words (below),
        # unless a number is what the question asks for.
        may_ask_again = kind not in ("statement", "number")
        request = self.cfg.point_request if statement else ""
        messages = evidence_messages(standalone, units, self.cfg.system_prompt, request)
        timings["prompt_tokens"] = sum(self.generator.count_tokens(m["content"]) for m in messages)
        text, first, pieces = "", None, []
        for piece in self.generator.stream(messages, self.cfg.max_new_tokens, stop=stop):
            if first is None:
                first = time.perf_counter()
                timings["first_token_ms"] = _ms(started)
            text += piece
            pieces.append(piece)
            # A statement's reply is a unit's number, its answer that unit; a short answer that
            # so far reads as a unit's number may be asked again (below): neither is shown yet.
            body = _body(text)
            if not statement and not (may_ask_again and _numbers_a_unit(body, units)):
                yield _replace(base, text=body, timings=dict(timings))
        if first is not None and len(pieces) > 1:
            gen_s = time.perf_counter() - first
            timings["tokens_per_s"] = round((len(pieces) - 1) / gen_s, 2) if gen_s > 0 else 0.0
        if may_ask_again and _numbers_a_unit(_body(text), units):
            # The model wrote a sentence's number as its answer ("4 [4]" for "How soon ...?",
            # its likeliest first tokens being 4, 2, 3 and 1): it pointed without answering. Asked
            # again for the answer's words (the prompt is cached up to the request line), it
            # writes them ("days [1]"); a reply that is a sentence's number again stands.
            t0 = time.perf_counter()
            again = evidence_messages(
                standalone, units, self.cfg.system_prompt, self.cfg.words_request
            )
            retold = list(self.generator.stream(again, self.cfg.max_new_tokens, stop=stop))
            timings["words_ms"] = _ms(t0)
            reply = "".join(retold)
            if not _numbers_a_unit(_body(reply), units):
                text, pieces = reply, retold
                yield _replace(base, text=_body(text), timings=dict(timings))
        if statement and _declined(text):
            # Asked to point, the model said "not found" where a unit may well state it ("Why
            # does the White House not give ...": "The White House argues that ..."). Its reply
            # is started with "[" so that its next token is a unit's number, and the decision,
            # not its refusal, says whether that unit answers. The prompt is cached: this reads
            # one new token and writes about two.
            t0 = time.perf_counter()
            pointing = [*messages, {"role": "assistant", "content": "["}]
            pointed = list(self.generator.stream(pointing, max_new_tokens=3, stop=stop))
            timings["pointing_ms"] = _ms(t0)
            reply = "[" + "".join(pointed)
            if any(u.n in markers_in(reply) for u in units):
                text, pieces = reply, pointed
        yield self._finish(base, text, timings, started, statement, decision.model_scores(pieces))

    def _finish(
        self,
        base: Answer,
        raw: str,
        timings: dict,
        started: float,
        asks_statement: bool,
        scores: decision.ModelScores,
    ) -> Answer:
        """The checked answer from the unit it rests on, or the refusal the decision made."""
        question = base.standalone_question or base.question
        body, cited = _body(raw), markers_in(raw)
        marked = [u for u in base.evidence if u.n in cited]
        statement = asks_statement and bool(marked)
        threshold = self.cfg.statement_threshold if statement else self.cfg.answer_threshold
        restated = not statement and not decision.answer_terms(body, question)
        if marked and (not re.search(r"\w", body) or (restated and not _refuses(body))):
            # A bare marker, or an answer that only restates the question ("Marco Rubio [1]"
            # for "What is Marco Rubio's position?"): the model pointed, and the unit's own
            # words answer, even where they say what is not so ("Eugene is not a scientist
            # ... does n't know how to cure the virus"). A heading states nothing: never that.
            stating = [u for u in marked if not HEADING.match(u.text)]
            body = " ".join(stating[0].text.split()) if stating else ""
        elif _refuses(body):
            body = ""
        if not re.search(r"\w", body):
            base = _replace(base, decision={"probability": 0.0, "threshold": threshold})
            return _final(base, f"{REFUSAL} {NOT_FOUND}", True, timings, started)
        if statement:
            # What someone said, why, how: the words of the best-ranked unit (or of one with
            # more of the question's names) answer; the model's pick is a feature.
            unit, features, p = decision.attribute_statement(
                question, base.evidence, cited, scores=scores
            )
        else:
            # A date in digits reads two ways ("6/7/2020"): the answer takes it as the evidence
            # writes it, so the decision and the person read the same date.
            body = dates.as_written(body, [u.text for u in base.evidence])
            unit, features, p = decision.attribute(
                question, body, base.evidence, cited, scores=scores
            )
        record = {"probability": round(p, 4), "threshold": threshold, "unit": float(unit.n)}
        base = _replace(base, decision={**record, **{k: round(v, 4) for k, v in features.items()}})
        if p < threshold:
            return _final(base, f"{REFUSAL} {NOT_SUPPORTED}", True, timings, started)
        asked = set(keywords(question))
        holds_question = bool(asked) and asked <= set(keywords(f"{unit.title} {unit.text}"))
        if (
            not statement
            and features["best_similarity"] < self.cfg.min_answer_similarity
            and not holds_question
        ):
            # The sentences talk around the question: a few words taken from them would be a
            # guess ("Ukraine" for which country will lead the contingent). A unit with every
            # word of the question in it is about it, however far a long sentence's cosine
            # puts it ("US Secretary of State Marco Rubio has questioned ..." for who the
            # Secretary of State is).
            return _final(base, f"{REFUSAL} {FAR}", True, timings, started)
        if statement:
            # The unit's own words, quoted whole and cited once: nothing in them to check.
            kept = [_quoted(unit)]
            c = Citation(unit.passage, unit.doc_id, unit.passage_id, True, unit.text)
            answer = _replace(base, sentences=tuple(kept), citations=(c,))
            return _final(answer, kept[0].text, False, timings, started)
        body, unit = decision.complete_date(question, body, unit, base.evidence)
        quotes: dict[int, str] = {unit.passage: unit.text}
        cited_text = " ".join(f"{s.rstrip(' .')} [{unit.passage}]." for s in sentences_of(body))
        # A claim the unit does not support may be supported by another passage the evidence
        # came from: it stands, citing that passage.
        _, sentences, found = self.checker.check(cited_text, base.passages, question)
        sources = {u.passage for u in base.evidence}
        kept = [
            s
            for s in sentences
            if s.supported and set(s.markers) <= sources and adds_information(s.text, question)
        ]
        for c in found:
            if c.supported:
                quotes.setdefault(c.n, c.quote)
        dropped = tuple(
            dataclasses.replace(s, reason=_why_dropped(s, sources))
            for s in sentences
            if s not in kept
        )
        if dropped:
            log.info("cut unsupported sentences from %r", body)
        if not kept and any(adds_information(s.text, question) for s in sentences):
            # It wrote claims, and no evidence supports any of them: an invention.
            log.info("abstained: no claim of the reply is supported: %r", body)
            return _final(base, f"{REFUSAL} {INVENTED}", True, timings, started)
        if not kept:
            # A restated question: the decision stands and the unit's own words answer.
            kept = [_quoted(unit)]
        used = dict.fromkeys(n for s in kept for n in s.markers)
        citations = tuple(
            Citation(
                n,
                base.passages[n - 1].chunk.doc_id,
                base.passages[n - 1].chunk.id,
                True,
                quotes[n],
            )
            for n in used
        )
        answer = _replace(base, sentences=tuple(kept), citations=citations, dropped=dropped)
        return _final(answer, " ".join(s.text for s in kept), False, timings, started)


def read_ahead(generator, system_prompt: str) -> None:
    """The system prompts into the engine's cache before the first question (`prime`, for an
    engine that keeps one): the follow-up rewrite's, then the answer's, which stays. The first
    question then waits only for what follows its system prompt and is answered as every later
    one is, and a follow-up's requests find theirs. A failure only costs that time."""
    if not hasattr(generator, "prime"):
        return
    started = time.perf_counter()
    try:
        generator.prime(REWRITE_PROMPT, system_prompt)
    except Exception as e:  # the first question reads the system prompt itself then
        log.warning("could not read the system prompt ahead: %s", e)
        return
    log.info("system prompts read ahead in %.1f s", time.perf_counter() - started)


def _close(question: str, hits: Sequence[Hit], min_relevance: float) -> bool:
    """Whether the passages are about the question at all: one is at least min_relevance
    similar to it, or one holds every name and number the question has. A short question
    dilutes its own vector ("What happened in Paris?": 0.11 to the passage that tells it);
    the name it asks about, found in a passage, says that passage is about it. The question
    comes with its names written as the passages write them (citations.cased)."""
    if max(h.similarity for h in hits) >= min_relevance:
        return True
    terms = key_terms(question)
    return bool(terms) and any(holds_all(terms, h.chunk.text) for h in hits)


def _follows_up(question: str) -> bool:
    """Whether a question leans on the conversation: a pronoun or a connective ("And when
    will it be finalized?"), or next to no words of its own ("When?", "How soon?")."""
    return bool(_FOLLOW_UP.search(question)) or len(re.findall(r"\w+", question)) <= 2


def _refuses(body: str) -> bool:
    """Whether the model's answer (markers removed) is a refusal: "not found" or the like."""
    return bool(_NOT_FOUND.match(body) or is_refusal(body))


def _numbers_a_unit(body: str, units: Sequence[Evidence]) -> bool:
    """Whether the model's answer (markers removed) is only the number of an evidence unit."""
    number = body.strip(" .")
    return number.isdigit() and 1 <= int(number) <= max((u.n for u in units), default=0)


def _declined(reply: str) -> bool:
    """Whether the model's reply is a refusal that cites nothing ("not found")."""
    return not markers_in(reply) and _refuses(_body(reply))


def _quoted(unit: Evidence) -> Sentence:
    """A unit's own words as the answer's one sentence, citing its passage."""
    quote = " ".join(unit.text.split()).rstrip(" .")
    return Sentence(f"{quote} [{unit.passage}].", (unit.passage,), True)


def _why_dropped(sentence: Sentence, sources: set[int]) -> str:
    if not sentence.supported:
        return UNSUPPORTED
    if not set(sentence.markers) <= sources:
        return NOT_SHOWN
    return RESTATES


def _body(reply: str) -> str:
    """The model's answer without its markers, without the labels of a reply that repeats the
    question first ("Question: ...\nAnswer: ...\nSentence: [1]"), and without the "#" of an
    answer copied from a heading (shown as a heading, it would fill the chat bubble)."""
    text = re.sub(r"^\s*Question:[^\n]*(?:\n|$)", "", reply)  # while streamed too
    text = re.sub(r"^\s*(?:Answer:)?\s*(?:#+\s+)?", "", text)
    text = re.sub(r"\n\s*Sentence:", " ", text)
    return re.sub(r"\s+([.,;!?])", r"\1", " ".join(MARKER.sub(" ", text).split()))


def _first_sentence(text: str) -> str:
    text = MARKER.sub("", text or "").strip()
    return text.split(". ")[0][:300]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _replace(answer: Answer, **changes) -> Answer:
    return dataclasses.replace(answer, **changes)


def _final(base: Answer, text: str, abstained: bool, timings: dict, started: float) -> Answer:
    timings = {**timings, "total_ms": _ms(started)}
    return _replace(base, text=text, abstained=abstained, timings=timings)
