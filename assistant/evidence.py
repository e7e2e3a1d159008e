"""Evidence units: the sentences of the retrieved passages that bear on the question, numbered.

The model reads these instead of whole passages: a few sentences make a short prompt, and a
numbered sentence is something it can cite. Each unit keeps its exact place in its document
(`text == document.text[start:end]`), so the window highlights it inside its passage.

Example:
    >>> spans("Rubio spoke. He left Paris. The deal is due April 26.")
    [(0, 12), (13, 27), (28, 53)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from . import dates
from .chunking import HEADING, unwrap
from .citations import _INJECTION, _SENTENCE_END, DATE, key_terms
from .decision import asked_type, holds_type
from .retrieval import keywords
from .schema import Evidence, Hit

# A sentence that opens with one of these leans on the sentence before it for its subject.
_LEANS_BACK = re.compile(
    r"^(he|she|it|its|they|their|them|his|her|this|these|that|those|the company|the group|"
    r"the move|the deal|there|then|but|and|also)\b",
    re.I,
)
# A search-snippet dateline ("Mar 15, 2023 ...") or a lone date: not a statement.
_DATELINE_ONLY = re.compile(rf"^\W*{DATE}\W*$")
_DATE = re.compile(rf"\b{DATE}\b")
_PRONOUN = re.compile(r"\b(he|she|they|him|her|them|his|their|its|it)\b", re.I)
# A sentence that ends in a label ("... ; Director.") whose value is the next sentence: the two
# are one unit ("Director. Justin Kurzel ; ..."). A lone date after a short sentence is that
# sentence's value too ("Release date. December 1, 2017 ...").
_ENDS_IN_LABEL = re.compile(r"[;·|:]\s*[^\W\d][\w'’-]*(?:\s+[a-z][\w'’-]*){0,2}\s*[.:]$")
MIN_WORDS = 4  # a shorter sentence gets the one before it as context
QUOTE_WORDS = 80  # a quote left open joins the sentences after it up to this length
# An edition's number in digits: "the 92nd Academy Awards", "the 61st Grammys".
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b", re.I)


def spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of text, whitespace trimmed; line breaks end sentences too,
    unless they only wrap a line (`chunking.unwrap`)."""
    out = []
    text = unwrap(text)
    for line in re.finditer(r"[^\n]+", text):
        pos = line.start()
        pieces = _SENTENCE_END.split(line.group(0))
        cursor = 0
        for piece in pieces:
            at = line.group(0).index(piece, cursor) if piece else cursor
            cursor = at + len(piece)
            stripped = piece.strip()
            if stripped:
                lead = len(piece) - len(piece.lstrip())
                out.append((pos + at + lead, pos + at + lead + len(stripped)))
    return out


def _leans_on(sentence: str, before: str, names: set[str]) -> bool:
    """Whether a sentence needs the one before it: it opens with a pronoun or a connective, is
    very short, or speaks of "he"/"she"/"they" while only the sentence before names whom the
    question asks about."""
    if _LEANS_BACK.match(sentence) or len(sentence.split()) < MIN_WORDS:
        return True
    if not names or not _PRONOUN.search(sentence):
        return False
    here, there = sentence.lower(), before.lower()
    return any(n in there and n not in here for n in names)


def _open_quote(text: str) -> bool:
    """Whether text opens with a quotation mark that it does not close (within QUOTE_WORDS)."""
    text = text.lstrip()
    if not text.startswith(('"', "“")) or len(text.split()) > QUOTE_WORDS:
        return False
    return text.count('"') % 2 == 1 if text[0] == '"' else text.count("“") > text.count("”")


def _about_another_year(text: str, date: str, years: set[int]) -> bool:
    """Whether text states years and all of them lie two or more from the question's `years`,
    in a document not dated in one of them. A year apart is the same edition often enough (a
    season announced the year before, "the 2017-18 season"); two or more is another one."""
    stated = {int(y) for y in dates.years_named(text)}
    if not stated or {int(y) for y in dates.years_named(date)} & years:
        return False
    return all(abs(s - y) >= 2 for s in stated for y in years)


def _about_another_edition(text: str, editions: set[str]) -> bool:
    """Whether text numbers editions ("the 93rd Academy Awards") and none is the question's."""
    stated = {n.lstrip("0") for n in _ORDINAL.findall(text)}
    return bool(stated) and not stated & editions


def passage_date(hit: Hit) -> str:
    """The date a passage speaks from: its document's date, else its first dateline."""
    if hit.chunk.date:
        return hit.chunk.date
    match = _DATE.search(hit.chunk.text[:80])
    return match.group(0) if match else ""


def select(
    question: str,
    hits: Sequence[Hit],
    embed: Callable[[list[str]], np.ndarray],
    limit: int = 6,
    max_words: int = 150,
    keyword_weight: float = 0.5,
    type_weight: float = 0.2,
    other_year_penalty: float = 1.0,
) -> list[Evidence]:
    """The `limit` sentences of `hits` that bear most on `question`, best first, numbered 1..n.

    A sentence's score is its cosine to the question plus `keyword_weight` times the share of
    the question's keywords it (with its context) contains, plus `type_weight` when it holds
    the kind of answer asked (a date, a number, a name). A sentence that states only years two
    or more from the question's (in a document not dated in one) is about another edition of the
    same event ("Angelique Kerber has won the 2018 Wimbledon ..." for 2021's winner) and loses
    `other_year_penalty`; so does one that numbers only other editions than the question's
    ("The 93rd Academy Awards" for the 92nd). A sentence that leans on the one before it
    ("He said ...") or is very short takes that one along. Units stop at `max_words` words in
    all; a passage's instructions to the model ("ignore the above ...") are never units.
    """
    candidates: list[tuple[int, int, int]] = []  # (passage index, start, end) in chunk text
    names = {t for t in key_terms(question) if not t[0].isdigit()}
    kind = asked_type(question)
    for p, hit in enumerate(hits):
        text = hit.chunk.text
        every = spans(text)
        # A label's value ("Release date." then "December 1, 2017 ...") joins the label first.
        joined: list[tuple[int, int]] = []
        for i, (a, b) in enumerate(every):
            before = text[every[i - 1][0] : every[i - 1][1]] if i else ""
            value = before and (
                _ENDS_IN_LABEL.search(before)
                or (len(before.split()) < MIN_WORDS and _DATELINE_ONLY.match(text[a:b]))
            )
            if value and joined[-1] == every[i - 1]:
                joined[-1] = (joined[-1][0], b)  # one label, one value: joins never chain
            else:
                joined.append((a, b))
        # A quote that runs over several sentences is one unit, up to the one that closes it
        # ('"We have a minerals deal ... next Thursday. Soon. ... on that," he said.'), so its
        # speaker, named after it or just before it, goes with all of it.
        quoted: list[tuple[int, int]] = []
        for a, b in joined:
            if quoted and _open_quote(text[quoted[-1][0] : quoted[-1][1]]):
                quoted[-1] = (quoted[-1][0], b)
            else:
                quoted.append((a, b))
        sents = [
            (a, b)
            for a, b in quoted
            if not _DATELINE_ONLY.match(text[a:b]) and re.search(r"\w", text[a:b])
        ]
        for i, (a, b) in enumerate(sents):
            sentence = text[a:b]
            if _INJECTION.search(sentence) or sentence.rstrip("\"'”’ ").endswith("?"):
                continue  # an instruction to the model, or a question (it answers nothing)
            if kind == "statement" and HEADING.match(sentence):
                continue  # a heading names a topic; it states no reason or meaning
            before = text[sents[i - 1][0] : sents[i - 1][1]] if i else ""
            if before and not _INJECTION.search(before) and _leans_on(sentence, before, names):
                a = sents[i - 1][0]
            candidates.append((p, a, b))
    if not candidates:
        return []
    texts = [hits[p].chunk.text[a:b] for p, a, b in candidates]
    vectors = embed([question] + texts)
    cosines = vectors[1:] @ vectors[0]
    asked = set(keywords(question))
    terms = key_terms(question)
    # A reason or a statement may well lie in another year (the cause before the event).
    years = {int(y) for y in dates.years_named(question)} if kind != "statement" else set()
    editions = {n.lstrip("0") for n in _ORDINAL.findall(question)} if kind != "statement" else set()
    scores = []
    for (p, _, _), text, cos in zip(candidates, texts, cosines):
        hit, date = hits[p], passage_date(hits[p])
        if (years and _about_another_year(text, date, years)) or (
            editions and _about_another_edition(text, editions)
        ):
            cos -= other_year_penalty
        context = f"{hit.chunk.title} {date} {text}"
        words = set(keywords(context))
        share = len(asked & words) / len(asked) if asked else 0.0
        found = {t for t in terms if t in context.lower()}
        score = float(cos) + keyword_weight * share + 0.1 * len(found) / max(len(terms), 1)
        # A sentence that holds the kind of answer asked (a date for "when") ranks above one
        # that only repeats the question's words.
        scores.append(score + (type_weight if kind and holds_type(kind, text, question) else 0.0))
    chosen: list[int] = []
    used_words = 0
    for i in sorted(range(len(candidates)), key=lambda i: (-scores[i], i)):
        p, a, b = candidates[i]
        if any(
            candidates[j][0] == p and a < candidates[j][2] and candidates[j][1] < b for j in chosen
        ):
            continue  # overlaps a unit already taken (its context sentence)
        n_words = len(texts[i].split())
        if chosen and used_words + n_words > max_words:
            continue
        chosen.append(i)
        used_words += n_words
        if len(chosen) >= limit:
            break
    # A document split into passages is found once, in the place of its best passage.
    documents = list(dict.fromkeys(hit.chunk.doc_id for hit in hits))
    out = []
    for n, i in enumerate(chosen, 1):
        p, a, b = candidates[i]
        chunk = hits[p].chunk
        out.append(
            Evidence(
                n=n,
                passage=p + 1,
                doc_id=chunk.doc_id,
                passage_id=chunk.id,
                text=chunk.text[a:b],
                start=chunk.start + a,
                end=chunk.start + b,
                date=passage_date(hits[p]),
                similarity=round(float(cosines[i]), 4),
                score=round(scores[i], 4),
                title=chunk.title,
                doc_rank=documents.index(chunk.doc_id) + 1,
            )
        )
    return out
