"""fold() works word by word with a translate table, sort keys format numbers word by word
(text.py): the same results as the plain definitions, for any text."""

from __future__ import annotations

import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from services.client_directory.projections.text import (
    _DIGITS,
    _LAST_COMBINING,
    _LIGATURES,
    _number,
    fold,
    name_keys,
    sort_key,
)


def fold_char_by_char(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def sort_key_by_pattern(name: str) -> str:
    original = unicodedata.normalize("NFC", name)
    primary = _DIGITS.sub(_number, fold_char_by_char(name))
    return f"{primary}\x01{original.casefold()}\x01{original}"


def test_no_combining_mark_lies_beyond_the_table() -> None:
    assert not [cp for cp in range(_LAST_COMBINING + 1, sys.maxunicode + 1) if unicodedata.combining(chr(cp))]


@settings(max_examples=300)
@given(st.text() | st.text(st.sampled_from("aeEÉéèœŒßİıǰ\u0301\u0327 \t2Ø\u1e9e\ufb01٣0019-")))
def test_fold_is_the_char_by_char_definition(text: str) -> None:
    assert fold(text) == fold_char_by_char(text)
    assert name_keys(text) == (sort_key(text), fold(text)) == (sort_key_by_pattern(text), fold(text))


def test_fold_of_every_character_that_folding_changes_in_and_around_words() -> None:
    changed = [ch for ch in map(chr, range(_LAST_COMBINING + 1))
               if ch.isspace() or unicodedata.combining(ch) or unicodedata.normalize("NFKD", ch) != ch
               or ch.casefold() != ch
               or ch in "".join(map(chr, _LIGATURES))]
    for start in range(0, len(changed), 256):
        text = " ".join(f"a{ch}b {ch} {ch}{ch}Z é{ch}" for ch in changed[start:start + 256])
        assert fold(text) == fold_char_by_char(text), text
        assert sort_key(text) == sort_key_by_pattern(text), text


def test_folds_of_names() -> None:
    assert fold("  Société\tGénérale ") == "societe generale"
    assert fold("Œuvre Ørsted ÅLBORG") == "oeuvre orsted alborg"
    assert fold("Plain ASCII  Name") == "plain ascii name"
