"""Folding and collation keys for names: search is case- and accent-insensitive, sorting is
natural (numbers by value) and puts accented letters beside their base letter.

Both keys are plain strings compared code point by code point (bytewise in UTF-8), which is
what SQLite's BINARY and PostgreSQL's "C" collation do: the database, the keyset cursor and
Python agree on the order without depending on the server's locale.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_DIGITS = re.compile(r"[0-9]+")

# Letters that Unicode does not decompose but a French (or Nordic, German) reader files under
# their base letters: `Œuvre` sorts and is found as `oeuvre`.
_LIGATURES = str.maketrans({
    "œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d",
    "ł": "l", "Ł": "l", "ß": "ss", "ẞ": "ss", "þ": "th", "Þ": "th",
})


# No code point above U+1FFFF has a combining class (the last is U+1E94A; a test watches it).
_LAST_COMBINING = 0x1FFFF


@functools.cache
def _combining_marks() -> dict[int, None]:
    """A str.translate table deleting every combining mark, built once, when first needed."""
    return {cp: None for cp in range(_LAST_COMBINING + 1) if unicodedata.combining(chr(cp))}


# Folds of the words seen (names reuse words: `Société`, `Boulangerie`...), so that a name is
# mostly dictionary look-ups (folding showed in a projection's profile). Bounded: emptied
# when full.
_WORD_FOLDS: dict[str, str] = {}
_WORD_FOLDS_MAX = 100_000


def _fold_word(word: str) -> str:
    folded = _WORD_FOLDS.get(word)
    if folded is None:
        decomposed = unicodedata.normalize("NFKD", word.translate(_LIGATURES))
        folded = " ".join(decomposed.translate(_combining_marks()).casefold().split())
        if len(_WORD_FOLDS) >= _WORD_FOLDS_MAX:
            _WORD_FOLDS.clear()
        _WORD_FOLDS[word] = folded
    return folded


def fold(text: str) -> str:
    """`Société Générale` -> `societe generale`: no accents, no case, single spaces.

    Word by word: decomposing, stripping marks and case folding work character by character
    and never join two words (a mark after a space is dropped either way); a word may fold to
    nothing (a lone mark) or to several (`¨` decomposes to a space and a mark).
    """
    if text.isascii():  # nothing to translate, decompose or strip
        return " ".join(text.casefold().split())
    words = (word.casefold() if word.isascii() else _fold_word(word) for word in text.split())
    return " ".join(word for word in words if word)


def _number(match: re.Match[str]) -> str:
    # Length first, then digits: any number of digits orders by value (`2` < `10` < `100`).
    digits = match.group().lstrip("0") or "0"
    return f"{len(digits):03d}{digits}"


def sort_key(name: str) -> str:
    """A string whose code point order is the natural, accent-aware order of names.

    Primary: folded letters with numbers by value (`Client 2` < `Client 10`), so `Élodie`
    files between `Edgar` and `Fabrice`; then, after a separator below every printable
    character, the case-folded original (`Elodie` before `Élodie`) and the original itself
    (`A` before `a`). Equal names are ordered by client_id where the key is used.
    """
    return name_keys(name)[0]


def _numbers_by_value(word: str) -> str:
    """A folded word with its numbers as `_number` writes them (a word at a time: a run of
    digits never spans a space), without a pattern for the words that need none."""
    if word.isalpha():
        return word
    if word.isdigit() and word.isascii():
        digits = word.lstrip("0") or "0"
        return f"{len(digits):03d}{digits}"
    return _DIGITS.sub(_number, word)


def name_keys(name: str) -> tuple[str, str]:
    """`(sort_key(name), fold(name))`, folding once: what the read model keeps of a name."""
    folded = fold(name)
    original = name if name.isascii() else unicodedata.normalize("NFC", name)
    primary = " ".join(map(_numbers_by_value, folded.split(" ")))
    return f"{primary}\x01{original.casefold()}\x01{original}", folded


def like_pattern(query: str) -> str:
    """A LIKE pattern (escape character `\\`) matching names that contain the folded query."""
    escaped = fold(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
