"""The [n] contract: number passages for the prompt, parse markers, check each sentence's support.

Example:
    >>> strip_unknown_markers("Talks stall [1][7]. Deal by April 26 [2, 9].", 2)
    'Talks stall [1]. Deal by April 26 [2].'
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import numpy as np

from .chunking import unwrap
from .dates import MONTH_NAMES
from .retrieval import STOPWORDS, keywords
from .schema import Citation, Hit, Sentence

MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_MARKER_SEPARATOR = re.compile(r"\s*[,;]\s*")
# A sentence ends at . ! ? before a capital or digit, but not after an initial or a title
# ("U.S. Open", "Mr. Sibiha"), nor after a month's abbreviation before its day ("Nov. 12").
_SENTENCE_END = re.compile(
    r"(?<!\b[A-Z]\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bMrs\.)"
    r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])"
    r"(?<!\b(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\.\s(?=\d))"
)
# A date as news snippets write it: "Mar 15, 2023", "15 March 2023", "2023-03-15".
DATE = r"(?:[A-Z][a-z]{2,8}\.? \d{1,2}, \d{4}|\d{1,2} [A-Z][a-z]{2,8}\.? \d{4}|\d{4}-\d{2}-\d{2})"
_DATELINE = re.compile(rf"^{DATE}\W*$")
# Words a finished sentence does not end on (articles, prepositions, conjunctions, copulas).
_DANGLING = frozenset(
    "a an the and or but nor of in on at to for from by with as into onto about after before "
    "between under over until than that which whose is are was were be been being its their "
    "his our your my".split()
)
# "..., as stated in [3]": where the claim comes from, not part of it.
_SOURCE_TAIL = re.compile(
    r",?\s*(?:as\s+(?:stated|mentioned|noted|reported|shown|announced|said|described)\s+in"
    r"|according\s+to|see)(?:\s+(?:the\s+)?passages?)?\s*$",
    re.I,
)
_CAPITALISED = re.compile(r"\b[A-Z][\w’'.-]*")
# Capitalised words that are not names when they open a sentence or a question.
_NOT_NAMES = frozenset(
    "according although however yes no because while after before during since despite "
    "question answer passage passages document documents".split()
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# An amount of money: a currency sign before the number ("$6 billion", "US$6.9"), or a
# currency after it ("1.65 billion dollars").
_MONEY = re.compile(
    rf"[$€£¥₹]\s?({_NUMBER.pattern})"
    rf"|({_NUMBER.pattern})(?:\s+(?:thousand|million|billion|trillion))?\s+"
    r"(?:dollars?|euros?|pounds?|yen|rupees?)\b",
    re.I,
)
# Sentences in documents that try to steer the model; left out of the prompt (kept in the UI).
_INJECTION = re.compile(
    r"(ignore|disregard|forget)\b.{0,40}\b(instruction|prompt|rule|above|previous)"
    r"|system prompt|you are now|new instructions|reveal (your|the) (prompt|instructions)"
    r"|(reply|respond|answer) (only )?with\b"
    r"|\b(answer|reply|respond)\s+(to\s+)?(every|all|each|any)\s+(question|query|message)"
    r"|\b(always|only)\s+(answer|reply|respond|say|output|write)\b|\bfrom now on\b",
    re.I,
)
_REFUSAL = re.compile(
    r"(do|does|did)\s*n[o']t\s+(contain|say|mention|state|provide|specify|include|know)"
    r"|not (mentioned|stated|specified|provided|given|available|included)"
    r"|no (information|mention|answer)|cannot answer|can't answer|unable to answer|don't know"
    r"|cannot be (determined|answered|found)",
    re.I,
)

REFUSAL = "The documents do not contain the answer."


def find_quote(text: str, quote: str) -> re.Match | None:
    r"""Where `quote` stands in `text`, whatever spaces or line breaks stand between its words
    (a hard-wrapped sentence runs over lines; its quote reads on one).

    >>> find_quote("deal due\nby April 26.", "due by April 26.").span()
    (5, 21)
    """
    words = quote.split()
    return re.search(r"\s+".join(map(re.escape, words)), text) if words else None


def sentences_of(text: str) -> list[str]:
    """Split prose into sentences, each with its markers.

    Markers right after a full stop close that sentence ("Paris. [1]"), unless the text starts
    with a marker: then the writer puts markers first ("[1] Paris. [2] Rome.").
    """
    marker = MARKER.pattern
    if not re.match(rf"\s*{marker}", text):
        text = re.sub(rf"([.!?])\s*((?:{marker}\s*)*{marker})", r" \2\1 ", text)
    out: list[str] = []
    # A line break ends a sentence too (headlines, list items), unless it only wraps a line.
    for line in unwrap(text).splitlines():
        out.extend(p.strip() for p in _SENTENCE_END.split(" ".join(line.split())) if p.strip())
    return out


def evidence_messages(
    question: str, units: Sequence, system_prompt: str, request: str = ""
) -> list[dict[str, str]]:
    """The chat messages that put numbered evidence units before the model, then the question
    (and a `request` line after it, when given).

    The system prompt comes first and never changes, so an engine with a prompt cache
    processes only the units and the question of each request. A unit's date is not put
    before it: the decision reads it (decision.unit_features), and on rgb-noise it cost 37
    prompt tokens a question without changing the answers' accuracy (docs/EVAL.md).
    """
    lines = [f"[{u.n}] {' '.join(u.text.split())}" for u in units]
    user = "\n".join(lines) + f"\n\nQuestion: {question}" + (f"\n{request}" if request else "")
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def strip_unknown_markers(text: str, n_passages: int) -> str:
    """Drop marker numbers that point at no given passage (paper-qa: cite only what was given)."""

    def keep(match: re.Match) -> str:
        valid = list(dict.fromkeys(n for n in marker_numbers(match) if 1 <= n <= n_passages))
        return "".join(f"[{n}]" for n in valid)

    out = MARKER.sub(keep, text)
    return re.sub(r"[ \t]+([.,;!?])", r"\1", out).strip()


def marker_numbers(match: re.Match) -> list[int]:
    """The passage numbers of one MARKER match, in the order written: "[2, 5]" -> [2, 5]."""
    return [int(x) for x in _MARKER_SEPARATOR.split(match.group(1))]


def markers_in(sentence: str) -> tuple[int, ...]:
    """Every passage number the text's markers name, once each, in order of first use."""
    nums: list[int] = []
    for match in MARKER.finditer(sentence):
        nums.extend(marker_numbers(match))
    return tuple(dict.fromkeys(nums))


def is_refusal(text: str) -> bool:
    """Whether the model said the passages do not hold the answer."""
    return bool(_REFUSAL.search(text))


def _content(text: str) -> set[str]:
    return _with_months(set(keywords(MARKER.sub(" ", text))))


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(MARKER.sub(" ", text))}


def _amounts(text: str) -> set[str]:
    """The numbers text gives as amounts of money: {"180000"} for "$180,000"."""
    return {(a or b).replace(",", "") for a, b in _MONEY.findall(MARKER.sub(" ", text))}


def _plain_word(word: str) -> str:
    word = re.sub(r"[’']s$", "", word).replace(".", "").replace("’", "").replace("'", "")
    return word.strip("-").lower()


_TOKEN = re.compile(r"[A-Za-z][A-Za-z’'-]*")


def cased(question: str, texts: Sequence[str]) -> str:
    """A question typed all in lower case, its words written as the documents write them.

    A word the documents capitalise more often than not inside a sentence is a name there
    ("did rubio meet european leaders in paris" -> "Did Rubio meet European leaders in Paris"),
    so that key_terms finds the question's names. A question with any capital letter is left
    as typed.
    """
    if question != question.lower():
        return question
    forms: dict[str, dict[str, int]] = {}
    for text in texts:
        for m in _TOKEN.finditer(text):
            i = m.start() - 1
            while i >= 0 and text[i] in ' \t"“‘(':
                i -= 1
            if i < 0 or text[i] in ".!?\n:#|":
                continue  # a sentence's or a line's first word is capitalised anyway
            word = re.sub(r"[’']s$", "", m.group(0))
            counts = forms.setdefault(word.lower(), {})
            counts[word] = counts.get(word, 0) + 1

    def restore(m: re.Match) -> str:
        word = m.group(0)
        base = re.sub(r"[’']s$", "", word)
        counts = forms.get(base, {})
        if base in STOPWORDS or not counts:
            return word
        form = max(counts, key=lambda f: counts[f])
        if form == base or counts.get(base, 0) * 2 >= sum(counts.values()):
            return word
        return form + word[len(base) :]

    out = _TOKEN.sub(restore, question)
    return out[:1].upper() + out[1:]


def key_terms(text: str) -> set[str]:
    """The facts a sentence hinges on: its numbers and the names in it (capitalised words)."""
    text = MARKER.sub(" ", text)
    names = {_plain_word(w) for w in _CAPITALISED.findall(text)}
    # A lone letter is an initial ("J. K. Rowling" beside "J.K. Rowling") or a stray piece of
    # the model's reply ("S Slovenia's Tadej Pogačar"), never a name to look for on its own.
    names = {w for w in names if len(w) > 1 and w not in STOPWORDS and w not in _NOT_NAMES}
    return names | _numbers(text)


def _words(text: str) -> set[str]:
    """The plain words of text, the parts of its hyphenated words, its numbers, the numbers its
    number words name, and each month both written out and abbreviated ("Nov. 15" holds
    "November")."""
    text = MARKER.sub(" ", text)
    words = _with_months({_plain_word(w) for w in re.findall(r"[\w’'.-]+", text)})
    parts = {p for w in words if "-" in w for p in w.split("-") if p}
    return words | parts | _numbers(text) | {n for w in words if (n := _number_named(w))}


# A month's written-out name and its abbreviations name the same month.
_MONTH_FORMS = {form: (name, name[:3]) for name in MONTH_NAMES for form in (name, name[:3])}
_MONTH_FORMS["sept"] = _MONTH_FORMS["september"]


def _with_months(words: set[str]) -> set[str]:
    """The words, each month among them both written out and abbreviated."""
    return words | {form for w in words for form in _MONTH_FORMS.get(w, ())}


_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_SMALL_NTH = (
    "zeroth first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = {
    **{w: i for i, w in enumerate(_SMALL)},
    **{w: i for i, w in enumerate(_SMALL_NTH)},
    **{w: 20 + 10 * i for i, w in enumerate(_TENS)},
    **{w[:-1] + "ieth": 20 + 10 * i for i, w in enumerate(_TENS)},
}


def _number_named(word: str) -> str:
    """The number a number word names, as digits: "eleventh" -> "11", "twenty-first" -> "21",
    so "Season 11" is found in "the eleventh season"; "" for any other word."""
    parts = word.split("-")
    if not all(p in _NUMBER_WORDS for p in parts) or len(parts) > 2:
        return ""
    if len(parts) == 2 and not (_NUMBER_WORDS[parts[0]] >= 20 and _NUMBER_WORDS[parts[1]] < 10):
        return ""
    return str(sum(_NUMBER_WORDS[p] for p in parts))


def _root(word: str) -> str:
    """A word without its inflection, as far as spelling shows it: "taking" and "take" -> "tak",
    "signed" and "signs" -> "sign", "winning" -> "win"."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if suffix in ("ing", "ed") and len(word) > 2 and word[-1] == word[-2]:
                word = word[:-1]  # "winning", "stopped"
            break
    return word.rstrip("e") or word


def holds_all(terms: set[str], text: str) -> bool:
    """Whether every key term is found among the words of text."""
    words = _words(text)
    return all(_found(t, words) for t in terms)


def _found(term: str, words: set[str]) -> bool:
    """Whether a key term is among the words; long words match on a 6-letter stem, and a
    hyphenated one ("air-to-air") on its parts, however the text spaces its hyphens."""
    if term in words:
        return True
    if "-" in term.strip("-"):
        return all(_found(p, words) for p in term.split("-") if p)
    if len(term) < 5 or term[0].isdigit():
        return False
    stem = term[:6]
    return any(len(w) >= 5 and (w.startswith(stem) or term.startswith(w[:6])) for w in words)


def windows_of(hit: Hit) -> list[set[str]]:
    """Word sets of each passage sentence with the sentences before and after it, plus the
    passage's title, date and datelines ("Jul 9, 2022"), which date every sentence in it.

    (Treating the "..." of search snippets as a hard border between fragments was measured:
    it lost more right answers on rgb-noise than wrong ones on rgb-reject; see docs/EVAL.md.)
    """
    sents = [s for s in sentences_of(hit.chunk.text) if s.strip(" .,;:-")]
    context = f"{hit.chunk.title} {hit.chunk.date or ''} " + " ".join(
        s for s in sents if _DATELINE.match(s.strip())
    )
    shared = _words(context)
    words = [_words(s) for s in sents]
    out = [set().union(*words[max(0, i - 1) : i + 2]) | shared for i in range(len(sents))]
    return out or [shared]


def adds_information(sentence: str, question: str) -> bool:
    """Whether a sentence says something beyond restating the question, and says it whole.

    "The release date of X is [1]." restates the question; "... came in at [1]." stops
    mid-claim (the model copied a snippet that was cut off). Neither answers anything.
    """
    plain = MARKER.sub(" ", sentence).strip().rstrip(" .!?;:,")
    plain = _SOURCE_TAIL.sub("", plain).rstrip(" .!?;:,")
    words = re.findall(r"\w+", plain.lower())
    if not words or words[-1] in _DANGLING:
        return False
    new = (_content(plain) | _numbers(plain)) - (_content(question) | _numbers(question))
    return bool(new)


def anchored(question: str, hits: Sequence[Hit]) -> bool:
    """Whether the passages an answer rests on mention what the question is about.

    Every number of the question (a year, an edition) and at least half of its names must occur
    in them; otherwise the answer is about something else (another year's winner, another
    company's acquisition), however well it copies its passage.
    """
    terms = key_terms(question)
    if not terms:
        return True
    words: set[str] = set()
    for hit in hits:
        words |= _words(f"{hit.chunk.title} {hit.chunk.date or ''} {hit.chunk.text}")
    numbers = {t for t in terms if t[0].isdigit()}
    names = terms - numbers
    if not all(_found(n, words) for n in numbers):
        return False
    return sum(_found(n, words) for n in names) * 2 >= len(names)


class SupportChecker:
    """Decides whether a passage supports an answer sentence, and which of its sentences does.

    Evidence is lexical (share of the sentence's content words found in the passage; every number
    in the sentence must appear there) and semantic (cosine between the sentence and the best
    passage sentence under the embedder). There is no NLI model that installs offline here.
    """

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray] | None,
        min_lexical: float = 0.5,
        min_combined: float = 0.55,
    ) -> None:
        self.embed = embed
        self.min_lexical = min_lexical
        self.min_combined = min_combined

    def check(
        self, answer: str, hits: Sequence[Hit], question: str = ""
    ) -> tuple[str, tuple[Sentence, ...], tuple[Citation, ...]]:
        """Clean markers, then judge each sentence; returns (text, sentences, citations).

        A passage supports a sentence when enough of the sentence's content words are in it
        (lexically, or lexically and semantically combined) and all the sentence's key terms
        (numbers, names) occur together in one of its windows (a sentence and its neighbours).
        When the supporting passages do not mention the question's own numbers and names, a
        sentence is cited to a passage that supports it and does; without one, no sentence counts
        as supported.
        """
        text = strip_unknown_markers(answer, len(hits))
        sents = sentences_of(text)
        if not sents or not hits:
            return text, tuple(Sentence(s, markers_in(s), False) for s in sents), ()
        passage_sents = [sentences_of(h.chunk.text) or [h.chunk.text] for h in hits]
        flat = [s for ps in passage_sents for s in ps]
        plain = [MARKER.sub("", s).strip() for s in sents]
        vectors = self.embed(plain + flat) if self.embed else None
        svec = vectors[: len(sents)] if vectors is not None else None
        pvec = vectors[len(sents) :] if vectors is not None else None

        offset_of = np.cumsum([0] + [len(ps) for ps in passage_sents])
        windows: dict[int, list[set[str]]] = {}
        asked = {_root(w) for w in _words(question)}
        judged: list[tuple[str, tuple[int, ...], list[tuple[bool, float, int, str]]]] = []
        for i, sent in enumerate(sents):
            words = _content(sent)
            # The sentence's numbers and the names it adds to the question must hold together
            # in one window; names restated from the question only need the passage (anchored),
            # and so does a question's word it restates capitalised, in another form ("Taking
            # the first step ..." for "What did Ukraine take the first step towards?").
            keys = {k for k in key_terms(sent) if k[0].isdigit() or _root(k) not in asked}
            marks = markers_in(sent)
            # An amount of money is supported by that amount of money, not by the same number
            # counting something else ("$180,000" for revenue, from "180,000 vehicles").
            money = _amounts(sent)
            if len(words) < 2 and not marks:  # "Yes." / connective fragments: nothing to check
                judged.append((sent, marks, []))
                continue
            scored = []
            for n, hit in enumerate(hits, 1):
                lo, hi = offset_of[n - 1], offset_of[n]
                lexical = len(words & _content(hit.chunk.text)) / max(len(words), 1)
                if keys and n not in windows:
                    windows[n] = windows_of(hit)
                keys_ok = not keys or any(all(_found(k, w) for k in keys) for w in windows[n])
                keys_ok = keys_ok and (not money or money <= _amounts(hit.chunk.text))
                # The quote is the passage sentence that shares the most content words with the
                # answer sentence, cosine breaking ties: lexical overlap locates facts better.
                overlaps = np.array(
                    [len(words & _content(s)) / max(len(words), 1) for s in passage_sents[n - 1]]
                )
                cos = (
                    pvec[lo:hi] @ svec[i]
                    if svec is not None and pvec is not None
                    else np.zeros(len(overlaps))
                )
                best = int(np.argmax(overlaps + 0.5 * cos))
                semantic = float(cos.max())
                combined = 0.5 * lexical + 0.5 * semantic
                ok = keys_ok and (lexical >= self.min_lexical or combined >= self.min_combined)
                scored.append((ok, combined, n, passage_sents[n - 1][best]))
            judged.append((sent, marks, scored))

        def supporting(marks: tuple[int, ...], scored: list) -> list:
            chosen = [s for s in scored if s[2] in marks and s[0]]
            if not chosen:
                # The model cited the wrong passage or none: point at the one that does support it.
                best_any = max(scored, key=lambda s: (s[0], s[1]))
                chosen = [best_any] if best_any[0] else []
            return chosen

        picks = [supporting(marks, scored) if scored else [] for _, marks, scored in judged]
        used = {s[2] for chosen in picks for s in chosen}
        if question and used and not anchored(question, [hits[n - 1] for n in used]):
            # The passages cited are about something else (another year's final), while another
            # passage that supports the same words is about what was asked ("World Cup 2014
            # winner - Germany."): that one is cited.
            about = {n for n in range(1, len(hits) + 1) if anchored(question, [hits[n - 1]])}
            for i, (_, _, scored) in enumerate(judged):
                better = [s for s in scored if s[0] and s[2] in about]
                if better:
                    picks[i] = [max(better, key=lambda s: s[1])]

        results: list[Sentence] = []
        citations: dict[tuple[int, str], Citation] = {}
        for (sent, marks, scored), chosen in zip(judged, picks):
            if not scored:
                results.append(Sentence(sent, marks, True))
                continue
            if chosen and not set(marks) & {s[2] for s in chosen}:
                sent = MARKER.sub("", sent).rstrip(" .!?") + f" [{chosen[0][2]}]."
                marks = (chosen[0][2],)
            for ok, _, n, quote in chosen or [s for s in scored if s[2] in marks]:
                hit = hits[n - 1]
                citations.setdefault(
                    (n, quote), Citation(n, hit.chunk.doc_id, hit.chunk.id, ok, quote)
                )
            results.append(Sentence(sent, marks, bool(chosen)))
        used = {c.n for c in citations.values() if c.supported}
        if question and used and not anchored(question, [hits[n - 1] for n in used]):
            results = [dataclasses.replace(s, supported=False) for s in results]
            citations = {k: dataclasses.replace(c, supported=False) for k, c in citations.items()}
        text = " ".join(s.text for s in results)
        ordered = sorted(citations.values(), key=lambda c: (c.n, c.quote))
        return text, tuple(results), tuple(ordered)
