"""Folding and collation keys for names: search is case- and accent-insensitive, sorting is
natural (numbers by value) and puts accented letters beside their base letter.

Both keys are plain strings compared code point by code point (bytewise in UTF-8), which is
what SQLite's BINARY and PostgreSQL's "C" collation do: the database, the keyset cursor and
Python agree on the order without depending on the server's locale.
"""

from __future__ import annotations

import re
import unicodedata

_DIGITS = re.compile(r"[0-9]+")

# Letters that Unicode does not decompose but a French (or Nordic, German) reader files under
# their base letters: `Œuvre` sorts and is found as `oeuvre`.
_LIGATURES = str.maketrans({
    "œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d",
    "ł": "l", "Ł": "l", "ß": "ss", "ẞ": "ss", "þ": "th", "Þ": "th",
})


def fold(text: str) -> str:
    """`Société Générale` -> `societe generale`: no accents, no case, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


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
    original = unicodedata.normalize("NFC", name)
    primary = _DIGITS.sub(_number, fold(name))
    return f"{primary}\x01{original.casefold()}\x01{original}"


def like_pattern(query: str) -> str:
    """A LIKE pattern (escape character `\\`) matching names that contain the folded query."""
    escaped = fold(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
