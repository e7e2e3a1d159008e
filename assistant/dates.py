"""Dates as news text writes them, and completing a partial date from the evidence.

A short answer often drops what the evidence states: "Nov. 12" where a unit says "November 12,
2020", "2015" where one says "December 2015". A date without its year is ambiguous to the person
reading it, so the answer takes the fuller date the evidence gives, when the evidence gives
exactly one that agrees with it.

Example:
    >>> complete("Nov. 12", ["The season premiered November 12, 2020 on ABC."])
    ('November 12, 2020', 0)
    >>> complete("2015", ["Founded in 2015.", "Founded in December 2015."])
    ('December 2015', 1)
    >>> complete("Nov. 12", ["Aired November 12, 2019.", "Aired Nov. 12, 2020."]) is None
    True

A date in digits ("27/10/2017", "6/19/2020") reads two ways; the answer takes it as the
evidence writes it when exactly one written date there reads the same:
    >>> as_written("27/10/2017", ["Super Mario Odyssey came out on October 27, 2017."])
    'October 27, 2017'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
YEAR = r"(?:1[5-9]\d\d|20\d\d)"  # a year as news text writes one
_YEAR = re.compile(rf"\b{YEAR}\b")
_ORDINAL = r"(?:st|nd|rd|th)?"
# As much of a date as is written: "November 12, 2020", "Nov. 12", "12 November 2020",
# "19th October", "June 2020", "2015". The alternatives are tried in this order at each place.
_DATE = re.compile(
    rf"\b(?P<m1>{MONTH})\.?\s+(?P<d1>\d{{1,2}}){_ORDINAL}(?:,?\s+(?P<y1>{YEAR}))?\b"
    rf"|\b(?P<d2>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?(?P<m2>{MONTH})\b\.?(?:,?\s+(?P<y2>{YEAR})\b)?"
    rf"|\b(?P<m3>{MONTH})\.?(?:\s+of)?,?\s+(?P<y3>{YEAR})\b"
    rf"|\b(?P<y4>{YEAR})\b",
    re.I,
)
# A date in digits, day and month in either order: "27/10/2017", "6/19/2020", "1.12.2017".
_NUMERIC = re.compile(rf"\b(\d{{1,2}})([/.])(\d{{1,2}})\2({YEAR})\b")
_ISO = re.compile(rf"({YEAR})-(\d\d)-(\d\d)")  # a document's date from its metadata
MONTH_NAMES = (
    "january february march april may june july august september october november december"
).split()
_MONTHS = tuple(name[:3] for name in MONTH_NAMES)


@dataclass(frozen=True)
class Date:
    """A date as written: the parts it states (None where it does not) and where it stands."""

    month: int | None
    day: int | None
    year: int | None
    start: int
    end: int
    text: str

    @property
    def parts(self) -> tuple[int | None, int | None, int | None]:
        return self.month, self.day, self.year

    def refines(self, other: Date) -> bool:
        """Whether self states every part other states, the same, and more."""
        agree = all(b is None or a == b for a, b in zip(self.parts, other.parts))
        return (
            agree
            and self.parts != other.parts
            and all(a is not None for a, b in zip(self.parts, other.parts) if b is not None)
        )


def years_named(text: str | None) -> set[str]:
    """The years a text names: {"2019"} for "Sep 7, 2019"."""
    return set(_YEAR.findall(text or ""))


def find(text: str) -> list[Date]:
    """The dates written in text, in order."""
    found = []
    numeric = [m.span() for m in _NUMERIC.finditer(text)]
    for m in _DATE.finditer(text):
        if any(a <= m.start() < b for a, b in numeric):
            continue  # the year of "27/10/2017": that date is read by as_written, not here
        g = m.groupdict()
        month = next((g[k] for k in ("m1", "m2", "m3") if g[k]), None)
        day = g["d1"] or g["d2"]
        year = next((g[k] for k in ("y1", "y2", "y3", "y4") if g[k]), None)
        if day is not None and not 1 <= int(day) <= 31:
            continue
        found.append(
            Date(
                _MONTHS.index(month[:3].lower()) + 1 if month else None,
                int(day) if day else None,
                int(year) if year else None,
                m.start(),
                m.end(),
                m.group(0),
            )
        )
    return found


def complete(answer: str, texts: Sequence[str]) -> tuple[str, int] | None:
    """(the answer with its one date completed, the index of the text that completes it), or None.

    None when the answer holds no date or more than one, its date is already whole (day, month
    and year), no text refines it, or the texts refine it in ways that disagree.
    """
    dates = find(answer)
    if len(dates) != 1 or None not in dates[0].parts:
        return None
    short = dates[0]
    if short.month is None and short.day is not None:
        return None
    finer = [(d, i) for i, text in enumerate(texts) for d in find(text) if d.refines(short)]
    if not finer:
        return None
    best, index = max(finer, key=lambda f: sum(p is not None for p in f[0].parts))
    if any(d.parts != best.parts and not best.refines(d) for d, _ in finer):
        return None  # two different fuller dates: which one is meant is not ours to guess
    return answer[: short.start] + best.text.strip(" .,") + answer[short.end :], index


def year_from(answer: str, dateline: str) -> str | None:
    """The answer with its one month-and-day date ("Nov. 15") given the year that puts it
    nearest the dateline it was written on ("Nov 12, 2020" or "2020-11-12" -> "Nov. 15,
    2020"), or None.

    News writes "premieres Nov. 15" for the coming one and "launched on April 29" for the last;
    a date more than four months from the dateline either way is left as it is (its year would
    be a guess).

    >>> year_from("December 20", "Jan 5, 2021"), year_from("May 1", "Nov 12, 2020")
    ('December 20, 2020', None)
    """
    found, at = find(answer), _day_of(dateline)
    if len(found) != 1 or at is None:
        return None
    short, (year, month, day) = found[0], at
    if short.month is None or short.day is None or short.year is not None:
        return None
    here = year * 12 + month + day / 31  # in months
    off = {y: abs(y * 12 + short.month + short.day / 31 - here) for y in (year - 1, year, year + 1)}
    best = min(off, key=off.__getitem__)
    if off[best] > 4:
        return None
    return f"{answer[: short.end].rstrip(' .,')}, {best}{answer[short.end :]}"


def _day_of(dateline: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a dateline that is one whole date: "Nov 12, 2020", "2020-11-12"."""
    iso = _ISO.fullmatch(dateline.strip())
    if iso:
        return int(iso[1]), int(iso[2]), int(iso[3])
    found = find(dateline)
    date = found[0] if len(found) == 1 else None
    if date is None or date.month is None or date.day is None or date.year is None:
        return None
    return date.year, date.month, date.day


def as_written(answer: str, texts: Sequence[str]) -> str:
    """The answer with each date in digits ("27/10/2017") written as the texts write it
    ("October 27, 2017"), where exactly one whole date written in them reads the same (as day
    and month, or as month and day); otherwise left as it is."""

    def written(m: re.Match) -> str:
        a, b, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        readings = {(x, y, year) for x, y in ((a, b), (b, a)) if 1 <= x <= 12 and 1 <= y <= 31}
        same = {d.parts: d.text for t in texts for d in find(t) if d.parts in readings}
        return next(iter(same.values())).strip(" .,") if len(same) == 1 else m.group(0)

    return _NUMERIC.sub(written, answer)
