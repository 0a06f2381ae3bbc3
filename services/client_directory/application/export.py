"""The Clients tab as CSV: keyset pages of the read model's public page query, each written as
a chunk of CSV, so an export of any size holds one page in memory.

Cells a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, a tab or a
carriage return) get a leading `'`, as OWASP advises for CSV injection; the numbers this
service writes itself (counts, a decimal wallet amount) are left as they are, so a negative
balance stays a number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Any

from contracts.api import TabId
from services.client_directory.projections.clients import Caller, ClientQueries
from services.client_directory.projections.page import NAME

HEADER = ("client_id", "name", "status", "missing_receipts", "ready_to_export", "wallet_amount",
          "wallet_currency", "accountants")
PAGE = 500  # rows per read: few reads for a big tab, a small chunk in memory
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def neutralise(cell: str) -> str:
    """A text cell as a spreadsheet will show it, never run it."""
    return f"'{cell}" if cell.startswith(FORMULA_START) else cell


def _number(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if DECIMAL.fullmatch(text) or not text else neutralise(text)


def row_of(item: dict[str, Any]) -> list[str]:
    wallet = item.get("wallet_balance") or {}
    accountants = "; ".join(a["name"] for a in item["accountants"])
    return [neutralise(item["client_id"]), neutralise(item["name"]), item["status"],
            _number(item["missing_receipts"]), _number(item["ready_to_export"]),
            _number(wallet.get("amount")), neutralise(str(wallet.get("currency") or "")), neutralise(accountants)]


def chunk(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)  # RFC 4180 line ends
    return buffer.getvalue().encode()


def header() -> bytes:
    return chunk([HEADER])


def page_of(queries: ClientQueries, caller: Caller, tab: TabId, *, q: str | None, missing_receipts: bool,
            descending: bool, cursor: str | None, by: str = NAME) -> tuple[bytes, str | None]:
    """One page as CSV rows, and the cursor of the next (None at the end), sorted `by` the name
    or a figure. Raises what `ClientQueries.page` raises (TabForbidden for a tab the role never sees)."""
    page = queries.page(caller, tab, q=q, missing_receipts=missing_receipts, descending=descending,
                        limit=PAGE, cursor=cursor, by=by)
    return chunk([row_of(item) for item in page["items"]]), page["next_cursor"]
