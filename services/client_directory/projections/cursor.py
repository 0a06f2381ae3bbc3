"""The Clients page's keyset cursor: the tab, the sort order and the last row's keys (and its
figure, under a sort by a figure), as
URL-safe base64 of a JSON object. Decoding is total: any string gives either a cursor or
`BadCursor` (a ValueError) saying why, never another error."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

MAX_KEY = 2000  # characters of a sort key or client id in a cursor
MAX_FIGURE = 2**31 - 1  # the figures are INTEGER columns: a bigger one is no row's
SORTED_BY = ("missing_receipts", "ready_to_export")  # `s`: a figure; none for the name


class BadCursor(ValueError):
    """A cursor this API did not return (HTTP 422)."""


InvalidCursor = BadCursor


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The cursor's values: `t` (tab), `d` (descending), `k` (sort key), `i` (client id), and
    under a sort by a figure `s` (which) and `f` (the row's figure); no `s`: the name sort."""
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise BadCursor("cursor is not base64") from None
    # A cursor is one flat object: checking the first byte before parsing keeps deeply nested
    # JSON (a RecursionError in the parser) out of json.loads altogether.
    if not raw.lstrip(b" \t\r\n").startswith(b"{"):
        raise BadCursor("cursor is not a JSON object")
    try:
        values = json.loads(raw, object_pairs_hook=_flat)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadCursor("cursor is not JSON") from None
    for key in ("k", "i", "t"):
        value = values.get(key)
        if not isinstance(value, str) or "\x00" in value or len(value) > MAX_KEY:
            raise BadCursor(f"cursor has no valid {key!r}")
    if not isinstance(values.get("d"), bool):
        raise BadCursor("cursor has no valid 'd'")
    # Cursors of the name sort have neither `s` nor `f` (as before the figure sorts).
    if "s" in values:
        if values["s"] not in SORTED_BY:
            raise BadCursor("cursor has no valid 's'")
        figure = values.get("f")
        if type(figure) is not int or abs(figure) > MAX_FIGURE:  # not a bool, a float or a string
            raise BadCursor("cursor has no valid 'f'")
    return dict(values)


def _flat(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object of the cursor: its values are never objects or arrays."""
    if any(isinstance(value, dict | list) for _, value in pairs):
        raise ValueError("nested")
    return dict(pairs)
