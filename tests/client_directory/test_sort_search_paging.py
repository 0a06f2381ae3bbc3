"""Names sort naturally and accent-aware, search ignores case and accents, the filter keeps
clients with missing receipts, and paging by cursor neither skips nor repeats a client while
facts keep arriving."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.client_directory.projections.clients import BadCursor, decode_cursor, encode_cursor
from services.client_directory.projections.text import fold, like_pattern, sort_key
from tests.client_directory.support import (
    Directory,
    admin,
    connected,
    disconnected,
    firm,
    metrics,
    renamed,
)


def _sorted(names: list[str]) -> list[str]:
    return sorted(names, key=sort_key)


def test_accented_names_sort_beside_their_base_letter() -> None:
    assert _sorted(["Fabrice", "Élodie", "Edgar", "Zoé", "eve"]) == ["Edgar", "Élodie", "eve", "Fabrice", "Zoé"]


def test_numbers_in_names_sort_by_value() -> None:
    names = ["Client 10", "Client 2", "Client 1", "Client 100", "Client 02", "Client 9"]
    assert _sorted(names) == ["Client 1", "Client 02", "Client 2", "Client 9", "Client 10", "Client 100"]
    assert _sorted(["Lot 123456789012345678901234", "Lot 99"]) == ["Lot 99", "Lot 123456789012345678901234"]


def test_ligatures_case_and_spaces_do_not_change_the_order() -> None:
    assert _sorted(["Oz", "Œuvre", "Obélix", "ode"]) == ["Obélix", "ode", "Œuvre", "Oz"]
    assert _sorted(["b", "A", "a", "B"]) == ["A", "a", "B", "b"]  # case only breaks ties
    assert _sorted(["Acme T", "acme sa", "Acme  SA", "Acme SA"]) == ["Acme  SA", "Acme SA", "acme sa", "Acme T"]


def test_folding_is_what_search_compares() -> None:
    assert fold("Société Générale") == "societe generale"
    assert fold("  ŒUVRE   Straße ") == "oeuvre strasse"
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_the_admins_all_tab_sorts_by_name_both_ways(directory: Directory) -> None:
    f = firm()
    names = {"c1": "Fabrice", "c2": "Élodie", "c3": "Edgar", "c4": "Client 10", "c5": "Client 2"}
    for client_id, name in names.items():
        directory.send(connected(f, client_id, name))
    ascending = [names[i] for i in directory.ids(admin(f), "all")]
    assert ascending == ["Client 2", "Client 10", "Edgar", "Élodie", "Fabrice"]
    assert [names[i] for i in directory.ids(admin(f), "all", descending=True)] == ascending[::-1]


def test_clients_of_the_same_name_are_ordered_by_id_both_ways(directory: Directory) -> None:
    f = firm()
    for client_id in ("b", "a", "c"):
        directory.send(connected(f, client_id, "Same"))
    assert directory.every_id(admin(f), "all", limit=1) == ["a", "b", "c"]
    assert directory.every_id(admin(f), "all", limit=1, descending=True) == ["c", "b", "a"]


@pytest.mark.parametrize(
    ("q", "found"),
    [("societe", ["sg"]), ("GÉNÉ", ["sg"]), ("CAFE", ["pc"]), ("é", ["el", "oe", "pc", "sg"]), ("lodi", ["el"]),
     ("%", ["pc"]), ("_", []), ("  société   générale ", ["sg"]), ("oeuvre", ["oe"]), ("", ["el", "oe", "pc", "sg"])],
)
def test_search_is_a_case_and_accent_insensitive_substring(directory: Directory, q: str, found: list[str]) -> None:
    f = firm()
    for client_id, name in (("sg", "Société Générale"), ("el", "Élodie"), ("pc", "100% Café"), ("oe", "Œuvre")):
        directory.send(connected(f, client_id, name))
    assert sorted(directory.ids(admin(f), "all", q=q)) == found


def test_the_missing_receipts_filter_hides_clients_with_none(directory: Directory) -> None:
    f = firm()
    for client_id, missing in (("a", 0), ("b", 3), ("c", 1)):
        directory.send(connected(f, client_id, f"Client {client_id}"), metrics(f, client_id, missing))
    directory.send(connected(f, "d", "Client d"))  # no figures yet: none missing
    assert directory.ids(admin(f), "all", missing_receipts=True) == ["b", "c"]
    assert directory.every_id(admin(f), "all", missing_receipts=True, limit=1, descending=True) == ["c", "b"]
    directory.send(metrics(f, "b", 0, as_of="2026-09-01T00:00:00Z"))
    assert directory.ids(admin(f), "all", missing_receipts=True) == ["c"]


def test_paging_neither_skips_nor_repeats_while_clients_arrive_leave_and_are_renamed(directory: Directory) -> None:
    f = firm()
    for n in range(1, 21):
        directory.send(connected(f, f"c{n:02d}", f"Client {n}"))
    caller = admin(f)
    seen: list[str] = []
    page = directory.page(caller, "all", limit=5)
    seen += [i["client_id"] for i in page["items"]]
    # Between pages: a client sorts in before the cursor, one after it, one already seen is
    # renamed to sort first, one not seen yet leaves, one already seen leaves.
    directory.send(connected(f, "new-early", "Client 0"), connected(f, "new-late", "Client 99"),
                   renamed(f, "c03", "AAA first"), disconnected(f, "c15"), disconnected(f, "c01"))
    while page["next_cursor"]:
        page = directory.page(caller, "all", limit=5, cursor=page["next_cursor"])
        seen += [i["client_id"] for i in page["items"]]
    assert len(seen) == len(set(seen)), "a client was repeated"
    stayed = {f"c{n:02d}" for n in range(1, 21)} - {"c15"}
    assert stayed <= set(seen), f"skipped: {sorted(stayed - set(seen))}"
    assert "new-late" in seen and "new-early" not in seen and "c15" not in seen


def test_a_cursor_is_bound_to_its_tab_and_direction(directory: Directory) -> None:
    f = firm()
    for n in range(3):
        directory.send(connected(f, f"c{n}", f"Client {n}"))
    cursor = directory.page(admin(f), "all", limit=1)["next_cursor"]
    assert cursor is not None
    with pytest.raises(BadCursor):
        directory.page(admin(f), "all", limit=1, cursor=cursor, descending=True)
    with pytest.raises(BadCursor):
        directory.page(admin(f), "mine", limit=1, cursor=cursor)
    for forged in ("not base64 at all!", "e30", "eyJrIjoxfQ", "W10"):
        with pytest.raises(BadCursor):
            directory.page(admin(f), "all", cursor=forged)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_cursor_of_deeply_nested_json_is_refused_not_a_crash() -> None:
    """1,000 `[` made json.loads raise RecursionError (a 500); any string is a cursor or a 400-class refusal."""
    for raw in (b"[" * 1000, b'{"k":' + b"[" * 100_000, b"{" * 1000, b" " + b"[" * 5000):
        with pytest.raises(BadCursor):
            decode_cursor(b64(raw))


def test_a_cursor_this_api_returned_decodes_to_its_values() -> None:
    values = {"t": "all", "d": True, "k": "client 0000000012\u00e9", "i": "c-12"}
    assert decode_cursor(encode_cursor(values)) == values


JSON: Any = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                         lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(st.text() | JSON.map(lambda value: b64(json.dumps(value).encode()))
       | st.dictionaries(st.sampled_from("tdki"), JSON).map(lambda value: b64(json.dumps(value).encode()))
       | st.binary().map(b64))
def test_any_string_is_a_cursor_or_a_bad_cursor(cursor: str) -> None:
    try:
        values = decode_cursor(cursor)
    except BadCursor as refused:
        assert str(refused)
    else:
        assert isinstance(values["d"], bool) and all(isinstance(values[k], str) for k in "tki")
