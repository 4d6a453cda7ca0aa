"""generated-name: the name looks machine-made rather than chosen by a person.

What it detects, among the name shapes token farms generate in bulk:
- `adjective_animal_suffix`: three or more underscore-joined words ending in a short random
  tag or number (`damp_spoonbill_coral-60`, `damp_gayal_z3n`);
- a word followed by a long number (`balladoriel-8396`, `word-word-1234`), years excepted;
- `name-dish9-suffix`: a middle word with one digit glued on, between two words;
- random alphanumerics: a word that alternates letters and digits three or more times
  (`p1fss5`, `2qq4p45gt`) with no pronounceable piece of four letters, or a long word without
  vowels;
- a leading hyphen, which current npm clients never produce.

Names are weak evidence alone (it is `suspicious` at most), but they corroborate tea.yaml,
cloned or trivial code.

Known false positives: names with standard identifiers (`iso-3166`, `token-2022`, `i18next`,
`ed25519`, `base64url`), which the shapes above avoid (years, short numbers and at most two
letter/digit switches pass), and scoped packages named after commit hashes or build ids.
"""

from __future__ import annotations

import functools
import re

from proxy.detect.facts import Subject
from proxy.detect.model import Confidence, Finding, Role, Severity, SignalSpec

SPEC = SignalSpec(
    "generated-name", "machine-generated name", Severity.MEDIUM, Confidence.MEDIUM,
    role=Role.FARM,
)  # fmt: skip

_UNDERSCORE_TRIPLE = re.compile(
    r"^[a-z]+(?:_[a-z]+)+_[a-z0-9]*\d[a-z0-9]*$|^[a-z]+(?:_[a-z]+){2,}-\d+$"
)
_LONG_NUMBER = re.compile(r"^(?:[a-z]+-){1,3}(\d{4,})$")
_DISH9 = re.compile(r"^[a-z]{3,}-[a-z]{3,}\d-[a-z]{3,}$")
_SWITCH = re.compile(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")
_VOWELS = set("aeiouy")
_WORD = re.compile(r"[a-z0-9]+")
MIN_SWITCHES = 3  # letter/digit alternations inside one word
MIN_VOWELLESS = 9  # letters in a word without any vowel


@functools.lru_cache(maxsize=4096)  # a function of the name: once per package
def shape(bare: str) -> tuple[str, Confidence] | None:
    if bare.startswith("-"):
        return "starts with a hyphen, which npm no longer accepts for new names", Confidence.LOW
    if _UNDERSCORE_TRIPLE.match(bare):
        return "adjective_noun_suffix shape with a random tag", Confidence.MEDIUM
    m = _LONG_NUMBER.match(bare)
    if m and not 1990 <= int(m[1]) <= 2039:
        return f"a word followed by the number {m[1]}", Confidence.LOW
    if _DISH9.match(bare):
        return "word-word9-word shape", Confidence.LOW
    for w in _WORD.findall(bare):
        runs = re.findall(r"[a-z]+", w)
        wordlike = any(len(r) >= 4 and _VOWELS & set(r) for r in runs)
        if len(_SWITCH.findall(w)) >= MIN_SWITCHES and len(w) >= 5 and not wordlike:
            return f"random-looking alphanumeric word {w!r}", Confidence.MEDIUM
        letters = re.sub(r"\d", "", w)
        if len(letters) >= MIN_VOWELLESS and not _VOWELS & set(letters):
            return f"vowelless word {w!r}", Confidence.LOW
    return None


def check(s: Subject) -> Finding | None:
    bare = s.name.lower().rsplit("/", 1)[-1]
    found = shape(bare)
    if found is None:
        return None
    what, confidence = found
    return SPEC.finding(
        f"the name looks generated: {what}", {"name": s.name}, confidence=confidence
    )
