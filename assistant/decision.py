"""Which evidence unit an answer rests on, and whether to give it at all: one measured decision.

The model writes a short answer and cites a unit; the system then rates each unit as the
answer's support: how many of the answer's words it holds, whether the model cited it, whether
it (and the answer) hold the kind of answer asked for (a date, a number, a name), the question's
own numbers and names, its similarity and retrieval rank, and the model's own token scores (its
confidence in the answer, and how likely it was to reply "not found" instead). A logistic model
over these features, fitted on the shared dev sets and the shipped article's questions by
`benchmarks/decision.py` (its output is `WEIGHTS` below), gives the probability that the answer
is right; below `Config.answer_threshold` the assistant refuses.
A statement's answer (a unit's own words) has weights and a threshold of its own
(`STATEMENT_WEIGHTS`, `Config.statement_threshold`).

Example:
    >>> asked_type("How many people died?"), asked_type("When was GPT-3 released?")
    ('number', 'date')
    >>> asked_type("What did Rubio say about the talks?"), asked_type("Why did the deal fail?")
    ('statement', 'statement')
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from . import dates
from .citations import (
    _CAPITALISED,
    _NOT_NAMES,
    _content,
    _found,
    _numbers,
    _words,
    holds_all,
    key_terms,
)
from .retrieval import STOPWORDS
from .schema import Evidence

_HAS_DATE = re.compile(
    rf"\b{dates.YEAR}\b|\b{dates.MONTH}\.?\s+\d{{1,2}}\b|\b\d{{1,2}}\s+{dates.MONTH}\b"
    r"|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|today|tomorrow)\b",
    re.I,
)
_HAS_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|thousand|million|billion|trillion|dozens?|half)\b",
    re.I,
)
# What is left of an answer that is only a date once its dates are taken out.
_AROUND_DATE = re.compile(r"^(?:\W|\b(?:on|in|at|by|next|last|this|the|of)\b)*$", re.I)
# A question that asks for a year or a month, not a day ("In what year did Russia invade?").
_ASKS_PART = re.compile(r"\b(?:what|which) (?:year|month)\b", re.I)
_AMOUNT = re.compile(r"\d|hundred|thousand|million|billion|trillion|dozen|half", re.I)
_COUNTED = re.compile(r"\bhow many (?:of (?:the )?)?(\w+)", re.I)
_ASKS = (
    (
        # What something means, where it comes from, what its purpose is: a sentence answers
        # it, as below; checked first, since "where" and "when" also open these.
        "statement",
        re.compile(
            r"\b(?:where|how) (?:does|did|do|is|was)\b[^?]*\b(?:come from|originate|get (?:its"
            r"|their|his|her|the) name)|\bmeaning\b|\bdifference between\b|\bwhat(?: is|'s| was"
            r"| are| were) the (?:purpose|meaning|origin|process|reason|role|function|"
            r"significance|cause|effect|impact|importance|goal)s?\b",
            re.I,
        ),
    ),
    (
        # Who someone is ("Who is Steve Witkoff?": a name alone after "who is", as written):
        # what the documents say of them answers, not the name again. "Who is Ukraine's
        # foreign minister?" (or "Ukraine's Foreign Minister") asks for a name.
        "statement",
        re.compile(r"^\W*[Ww]ho (?:is|was|are|were) (?:[A-Z](?:[\w.-]|['’](?!s\b))*\s*)+\W*$"),
    ),
    (
        "number",
        re.compile(
            r"\bhow (many|much|long|old|far|big|large|tall|high|fast)\b|"
            r"\b(what|which) (is|was) the (number|amount|price|cost|population|"
            r"score|size)\b|\bwhat percent",
            re.I,
        ),
    ),
    (
        "date",
        re.compile(
            r"\bwhen\b|\bwhat (year|date|day|month|time)\b|\bwhich (year|date|day|"
            r"month)\b|\bwhat time\b",
            re.I,
        ),
    ),
    (
        "name",
        re.compile(
            r"\bwho(m|se)?\b|\bwhere\b|\bwhich (company|country|team|city|person|"
            r"player|film|movie|club|state|university)\b",
            re.I,
        ),
    ),
    (
        # What someone said, why or how something happens: its answer is a sentence of the
        # documents, not a few words, so the model points at the unit instead (rag.py).
        "statement",
        re.compile(
            r"^\W*(?:why|how (?:do|does|did|is|are|was|were|can|could|will|would|should|has"
            r"|have))\b"
            r"|\bwhat (?:did|does|do|has|have|had|will|would)\b[^?]*?\b(?:say|said|think|argue|"
            r"claim|mean|want|warn|propose|announce|suggest|tell|do)\b"
            r"|\bwhat happen|\b(?:explain|describe|tell me about)\b"
            # A yes/no question: the sentence that settles it is the answer, not "yes".
            r"|^\W*(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|should)\b",
            re.I,
        ),
    ),
)

# Feature names, in the order WEIGHTS uses them.
FEATURES = (
    "support",  # share of the answer's own words (beyond the question's) found with the unit
    "cited",  # 1 if the model's reply cites this unit, else 0
    "answer_type",  # 1 if the answer itself is of the kind asked (a date for "when"), else 0
    "type",  # 1 if the unit holds the kind of answer asked (date, number, name), 0 if not
    "names",  # share of the question's names found with the unit
    "numbers",  # 1 if every number of the question (a year, an edition) is found with it, else 0
    "similarity",  # cosine between the question and the unit
    "best_similarity",  # the highest cosine of any unit
    "rank",  # 1 / the place of the unit's document among the retrieved passages' documents
    "confidence",  # the model's own: geometric mean of its answer tokens' probabilities
    "score",  # the unit's evidence score: cosine plus keyword share plus answer-type bonus
    "not_found",  # log of the model's probability of beginning its reply "not" ("not found")
)
# Fitted by `python benchmarks/decision.py --sample 100 --fit ...` (docs/EVAL.md) on the
# passages chosen with the year ranking and read by relevance (retrieval.py), `rank` that of the
# unit's document, the article set among the sets so that the fit sees a person's own news
# article beside RGB's snippets.
# Intercept last.
# fmt: off
WEIGHTS = (
    1.560, -1.012, -0.024, 0.422, 0.193, -0.181, -0.055, -0.195, 1.839, 0.778, -0.407, -0.503,
    -5.037,
)
# fmt: on
# The same features for a statement's answer, a unit's own words (`attribute_statement`),
# fitted on the statement questions alone by the same command; `not_found` left out (0): asked
# to point at a sentence, how nearly the model declines says little (docs/EVAL.md).
# fmt: off
STATEMENT_WEIGHTS = (
    0.0, 0.513, 0.0, 0.0, 0.0, -0.036, 0.897, 0.880, 0.862, 0.439, 1.099, 0.0, -3.057
)
# fmt: on
# The model's features' values when the engine gives no scores (the transformers engine): the
# medians over the answers the weights were fitted on.
UNKNOWN_CONFIDENCE = 0.901
UNKNOWN_NOT_FOUND = -3.945
# The least probability `not_found` reads (its log is the feature): below it, no difference.
NOT_FOUND_FLOOR = 1e-6


@dataclass(frozen=True)
class ModelScores:
    """What the model's own token scores say of its reply; None where the engine gave none."""

    confidence: float | None = None  # `confidence`
    not_found: float | None = None  # P(the reply begins "not"), at its first position


def model_scores(pieces: Sequence[str]) -> ModelScores:
    """The model's scores of a reply streamed as Tokens (generation.Token)."""
    first = getattr(pieces[0], "not_found", None) if pieces else None
    return ModelScores(confidence(pieces), first)


def confidence(pieces: Sequence[str]) -> float | None:
    """The model's confidence in its answer, from the streamed pieces' log-probabilities.

    The geometric mean of the probabilities of the answer's tokens: those before the reply's
    first marker ("Paris [2]" -> "Paris"), or the marker itself when nothing comes before it.
    None when the engine gave no scores (plain str pieces).

    >>> from assistant.generation import Token
    >>> round(confidence([Token("Par", -0.1), Token("is", -0.3), Token(" [2]", -2.0)]), 3)
    0.819
    """
    scores: list[float] = []
    said = ""
    for piece in pieces:
        logprob = getattr(piece, "logprob", None)
        if logprob is None:
            return None
        if "[" in piece and re.search(r"\w", said):
            break  # the answer's words are done; its marker follows
        said += piece
        scores.append(logprob)
        if "]" in piece:
            break  # a bare marker: its own tokens
    return math.exp(sum(scores) / len(scores)) if scores else None


def asked_type(question: str) -> str:
    """The kind of answer a question asks for: 'number', 'date', 'name', 'statement' (what
    someone said, why or how: a sentence) or '' (anything)."""
    for kind, pattern in _ASKS:
        if pattern.search(question):
            return kind
    return ""


def holds_type(kind: str, text: str, question: str = "") -> bool:
    """Whether text holds an answer of that kind (beyond what the question itself states)."""
    asked = _words(question)
    if kind == "number":
        numbers = [m for m in _HAS_NUMBER.finditer(text) if m.group(0).lower() not in asked]
        counted = _COUNTED.search(question)
        if counted is None:
            # "How much ...": digits or an amount ("1.65 billion", "a dozen"), not "the two
            # countries".
            return any(_AMOUNT.match(m.group(0)) for m in numbers)
        # "How many troops": a number that counts them, within three words before the noun
        # ("5,000 troops", "two hundred of the troops"), not any number in the sentence.
        stem = counted.group(1).lower()[:5]
        for m in numbers:
            after = re.findall(r"\w+", text[m.end() :])[:4]
            if any(w.lower().startswith(stem) for w in after):
                return True
        return False
    if kind == "date":
        return any(m.group(0).lower() not in asked for m in _HAS_DATE.finditer(text))
    if kind == "name":
        names = {w.lower().strip(".'’") for w in _CAPITALISED.findall(text)}
        names = {w for w in names if w and w not in STOPWORDS and w not in _NOT_NAMES}
        return bool(names - asked)
    return True


def is_date(text: str) -> bool:
    """Whether text is a date and nothing more ("Thursday", "on April 26", "2018")."""
    return bool(_HAS_DATE.search(text)) and bool(_AROUND_DATE.match(_HAS_DATE.sub(" ", text)))


def answer_terms(answer: str, question: str) -> set[str]:
    """The words and numbers an answer adds to its question: what a unit must hold to back it."""
    return (_content(answer) | _numbers(answer)) - (_content(question) | _numbers(question))


def unit_features(
    question: str,
    answer: str,
    unit: Evidence,
    cited: Sequence[int],
    best_similarity: float,
    scores: ModelScores = ModelScores(),
) -> dict[str, float]:
    """The features of `answer` resting on `unit` (read with its title and date)."""
    terms = key_terms(question)
    numbers = {t for t in terms if t[0].isdigit()}
    names = terms - numbers
    read = f"{unit.title} {unit.date} {unit.text}"
    words = _words(read)
    claims = answer_terms(answer, question)
    held = _content(read) | _numbers(read)  # the same stemmed words as the claims
    kind = asked_type(question)
    sure = scores.confidence
    declined = None if scores.not_found is None else max(scores.not_found, NOT_FOUND_FLOOR)
    return {
        "support": sum(_found(t, held) for t in claims) / len(claims) if claims else 0.0,
        "cited": float(unit.n in cited),
        "answer_type": float(holds_type(kind, answer, question)),
        "type": float(holds_type(kind, unit.text, question)),
        "names": sum(_found(n, words) for n in names) / len(names) if names else 1.0,
        "numbers": float(all(_found(n, words) for n in numbers)),
        "similarity": unit.similarity,
        "best_similarity": best_similarity,
        "rank": 1.0 / unit.doc_rank,
        "confidence": UNKNOWN_CONFIDENCE if sure is None else sure,
        "score": unit.score,
        "not_found": UNKNOWN_NOT_FOUND if declined is None else math.log(declined),
    }


def probability(features: dict[str, float], weights: Sequence[float] = WEIGHTS) -> float:
    """The fitted probability that answering from these features is right."""
    z = weights[-1] + sum(w * features[name] for w, name in zip(weights, FEATURES))
    return 1.0 / (1.0 + math.exp(-z))


def attribute(
    question: str,
    answer: str,
    units: Sequence[Evidence],
    cited: Sequence[int],
    weights: Sequence[float] = WEIGHTS,
    scores: ModelScores = ModelScores(),
) -> tuple[Evidence, dict[str, float], float]:
    """(the unit the answer rests on, its features, the probability the answer is right).

    The unit is the one holding most of the answer's words, and among those the one rated most
    likely right (cited, about the question's year and names): a model that cites the wrong
    number is corrected by what the units say. An answer to a question asking for a number or a
    date is never backed by a unit without one, and a date never answers who or where.
    """
    best_similarity = max(u.similarity for u in units)
    kind = asked_type(question)
    strict = kind in ("number", "date")
    # A date names no one and no place: "Thursday" does not say where a deal will be signed.
    dated = kind == "name" and is_date(answer)
    claims = answer_terms(answer, question)
    rated = []
    for unit in units:
        features = unit_features(question, answer, unit, cited, best_similarity, scores)
        p = 0.0 if (strict and not features["type"]) or dated else probability(features, weights)
        # An answer that adds no words of its own (a restated question) rests on the unit it cites.
        first = features["support"] if claims else features["cited"]
        rated.append(((first, p, -unit.n), unit, features, p))
    _, unit, features, p = max(rated, key=lambda r: r[0])
    return unit, features, p


def attribute_statement(
    question: str,
    units: Sequence[Evidence],
    cited: Sequence[int],
    weights: Sequence[float] = STATEMENT_WEIGHTS,
    scores: ModelScores = ModelScores(),
) -> tuple[Evidence, dict[str, float], float]:
    """(the unit whose own words answer a statement question, its features, the probability).

    For a question asking what someone said, why or how, the best-ranked unit answers, unless
    another holds more of the question's names (another speaker's words), the best-ranked of
    those then. The unit the model points at is a feature (`cited`: the model agrees), not the
    pick: on CLAPnq's statement questions the best-ranked unit states the answer more often
    (docs/EVAL.md). A unit that lacks one of the question's names is not about what it asks
    ("Did Putin attend the Paris meeting?": a sentence on the Paris meeting without Putin).
    """
    best_similarity = max(u.similarity for u in units)
    rated = {u.n: unit_features(question, u.text, u, cited, best_similarity, scores) for u in units}
    unit = units[0]
    named = [u for u in units if rated[u.n]["names"] > rated[unit.n]["names"]]
    if named:
        unit = max(named, key=lambda u: (rated[u.n]["names"], u.score))
    features = rated[unit.n]
    return unit, features, probability(features, weights) if features["names"] == 1.0 else 0.0


def complete_date(
    question: str, answer: str, unit: Evidence, units: Sequence[Evidence]
) -> tuple[str, Evidence]:
    """(the answer, the unit it rests on), with a partial date completed from the evidence.

    "Nov. 12" becomes "November 12, 2020" when a unit holding every name and number of the
    question states that date in full, and no such unit states another; the answer then rests
    on that unit. Else a month and day take the year of the unit's dateline (dates.year_from).
    """
    if asked_type(question) not in ("date", ""):  # "2015" may answer "how many", not "when"
        return answer, unit
    if _ASKS_PART.search(question):  # the year asked is the answer, not a day in it
        return answer, unit
    terms = key_terms(question)
    about = [unit] + [
        u for u in units if u is not unit and holds_all(terms, f"{u.title} {u.date} {u.text}")
    ]
    done = dates.complete(answer, [u.text for u in about])
    if done is not None:
        return done[0], about[done[1]]
    # No unit states it in full: the year is that of the date the unit's passage speaks from.
    return dates.year_from(answer, unit.date) or answer, unit
