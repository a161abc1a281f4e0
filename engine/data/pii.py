"""Spot strings that look like personal data: e-mail addresses and phone numbers.

Phone formats: Japanese mobile and landline numbers with or without hyphens (090-1234-5678,
03-1234-5678, 0120-123-456, 09012345678), +81 and other international numbers, and North
American numbers; full-width digits and dashes (０９０－…) too, which Japanese text often uses.
A phone number has at least 9 digits and is not part of a longer number, so dates
(2024-01-15), prices and version numbers do not match.

Every record is scanned, so the common case (no "@", no long run of digits) costs one cheap scan.
"""

from __future__ import annotations

import re

from engine.phrases import Phrase, phrase

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_DIGIT = re.compile(r"[0-9０-９]")
_D = "[0-9０-９]"
_DASH = "[-‐‑–—−－ー]"
_PHONE = re.compile(
    "|".join((
        rf"[+＋]{_D}{{1,3}}[ \-－(（]*{_D}{{1,4}}[ \-－)）]*{_D}{{1,4}}[ \-－]*{_D}{{3,4}}",  # +81 90-1234-5678
        rf"[0０]{_D}{{1,4}}(?:{_DASH}|[(（]|[)）] ?){_D}{{1,4}}(?:{_DASH}|[)）]){_D}{{3,4}}",  # 03-1234-5678
        rf"[0０][5789５７８９][0０]{_D}{{8}}",  # 09012345678
        rf"\({_D}{{3}}\) ?{_D}{{3}}[-.]{_D}{{4}}",  # (555) 123-4567
        rf"(?:1[-.])?{_D}{{3}}[-.]{_D}{{3}}[-.]{_D}{{4}}",  # 555-123-4567, 1-800-555-0199
    ))
)
# A stretch of digits and separators long enough to hold a phone number; only such stretches
# are examined closely, so text with a year or a price in it stays on the fast path.
_CANDIDATE = re.compile(r"[0-9０-９][0-9０-９ .()（）\-‐‑–—−－ー]{7,}[0-9０-９]")  # plain classes scan fastest
_OPENERS = "+＋(（"
_NUMBER_PART = set("0123456789０１２３４５６７８９.-－")


def find_personal_data(text: str) -> Phrase | None:
    """The first thing in `text` that looks like personal data, in words: its kind and the match masked."""
    if "@" in text:
        match = _EMAIL.search(text)
        if match:
            return phrase("e-mail address {value}", value=_masked(match.group()))
    for candidate in _CANDIDATE.finditer(text):
        start = candidate.start()
        if start and text[start - 1] in _OPENERS:
            start -= 1
        found = _phone_in(text[start:candidate.end()])
        if found:
            return phrase("phone number {value}", value=_masked(found))
    return None


def _phone_in(stretch: str) -> str | None:
    for match in _PHONE.finditer(stretch):
        start, end = match.span()
        inside_number = (start and stretch[start - 1] in _NUMBER_PART) or (
            end < len(stretch) and stretch[end] in _NUMBER_PART
        )
        if not inside_number and len(_DIGIT.findall(match.group())) >= 9:
            return match.group()
    return None


def _masked(found: str) -> str:
    """Enough to find it in the file, not enough to repeat it in a report."""
    keep = 2 if len(found) > 6 else 1
    return found[:keep] + "*" * (len(found) - 2 * keep) + found[-keep:]
