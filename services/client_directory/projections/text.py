"""Folding and collation keys for names: search is case- and accent-insensitive, sorting is
natural (numbers by value) and puts accented letters beside their base letter."""

from __future__ import annotations

import re
import unicodedata

_DIGITS = re.compile(r"\d+")


def fold(text: str) -> str:
    """`Société Générale` -> `societe generale`."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def sort_key(name: str) -> str:
    """A string whose byte order is the natural, accent-aware order of names.

    Primary: folded letters with numbers zero-padded (`Client 2` < `Client 10`); secondary:
    the case-folded original, so `Elodie` and `Élodie` still have a stable order.
    """
    primary = _DIGITS.sub(lambda m: m.group().lstrip("0").rjust(20, "0"), fold(name))
    return f"{primary}\x01{name.casefold()}"


def like_pattern(query: str) -> str:
    escaped = fold(query).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
