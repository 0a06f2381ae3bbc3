"""The notifier's emails written straight to bytes: header encoding and a text+HTML
multipart/alternative, without the `email` package's header objects.

`email.message.EmailMessage` parses every header it is given into a tree and folds it again
when the message is serialized: that was two thirds of the time spent per digest (about 4 ms
on the bench machine), and aiosmtplib serialized each message once more at every send. Here
a message is serialized once, when it is rendered; `email.message_from_bytes` reads it back
for previews and tests.

What is written:
- header lines of at most 78 characters where they can be folded, CRLF line ends;
- non-ASCII text in headers (a subject, a display name) as RFC 2047 encoded words (UTF-8,
  "Q" or "B", the shorter), only where needed; ASCII display names with specials as quoted
  strings;
- both parts quoted-printable (binascii, in C), so the message is 7-bit clean and needs no
  8BITMIME; the boundary starts with "=_", which quoted-printable text never contains.
An address with non-ASCII characters is written as is (RFC 6532) and the email is marked
`smtputf8`: the server must offer SMTPUTF8, as aiosmtplib's `send_message` requires.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from typing import Any, Final, cast

__all__ = ["POLICY", "WireEmail", "address_header", "build_message", "header_line", "unstructured_header"]

MAX_LINE: Final = 78  # RFC 5322: SHOULD; the MUST is 998
_CRLF: Final = "\r\n"
# RFC 2047 5(3): what may stand for itself in an encoded word in a phrase (the strictest
# context; used everywhere). Space is written "_", every other byte "=XX".
_Q_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_BYTE: Final = tuple(
    chr(b) if b in _Q_SAFE else "_" if b == 0x20 else f"={b:02X}" for b in range(256)
)
_WORD_MAX: Final = 75  # RFC 2047: an encoded word is at most 75 characters
# RFC 5322 atext: an ASCII display name of only these and single spaces needs no quotes.
_ATOMS: Final = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
# What an address may not contain to be written between angle brackets as is.
_UNSAFE_IN_ADDRESS: Final = re.compile(r"[\s<>\x00-\x1f\x7f]")


class _VerbatimHeader(UnstructuredHeader):
    """Written as is, never folded: the default policy would turn a URL longer than a line
    into RFC 2047 encoded words, which mail clients do not decode in List-Unsubscribe."""

    def fold(self, *, policy: Any) -> str:
        name: str = getattr(self, "name")  # noqa: B009 - set by the header factory, unknown to typeshed
        return f"{name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", cast(type[BaseHeader], _VerbatimHeader))
# The policy of the messages read back from the bytes: serializing one again keeps
# List-Unsubscribe whole.
POLICY: Final[Any] = email.policy.default.clone(header_factory=_HEADERS)


@dataclass(frozen=True, slots=True)
class WireEmail:
    """One email ready for SMTP: its envelope and its bytes, serialized once.

    `data` is the whole message (RFC 5322, CRLF line ends). `smtputf8` says an address in it
    is not ASCII, so it may only go to a server that offers SMTPUTF8.
    """

    message_id: str
    envelope_from: str
    envelope_to: tuple[str, ...]
    data: bytes
    smtputf8: bool = False

    def message(self, policy: Any = POLICY) -> EmailMessage:
        """The message as a receiver reads it (previews, tests), with "\n" line ends like an
        `EmailMessage` built in code."""
        data = self.data.replace(b"\r\n", b"\n")
        if self.smtputf8:  # UTF-8 headers (RFC 6532): the bytes parser would read them as ASCII
            return cast(EmailMessage, email.message_from_string(data.decode("utf-8"), policy=policy))
        return cast(EmailMessage, email.message_from_bytes(data, policy=policy))


# ------------------------------------------------------------------------------ headers


def _needs_encoding(text: str) -> bool:
    # Control characters cannot be written as they are, and "=?" in plain text would be taken
    # for the start of an encoded word by a receiver.
    return not (text.isascii() and text.isprintable()) or "=?" in text


def _q(chunk: bytes) -> str:
    return "".join(_Q_BYTE[b] for b in chunk)


def _b_size(n: int) -> int:
    return 4 * ((n + 2) // 3)


def _encoded_words(text: str, first_room: int) -> list[str]:
    """`text` as UTF-8 encoded words, "Q" (readable for mostly Latin text) or "B" (base64),
    whichever is shorter, as few as fit: each at most 75 characters and the first at most
    `first_room`, never splitting a character. RFC 2047 decoders drop the whitespace between
    encoded words, so together they decode to exactly `text` (Python's own parser does so in
    unstructured headers, not in display names: a name that needs several words reads there
    with a space at each join)."""
    raw = text.encode("utf-8")
    use_b = _b_size(len(raw)) < len(_q(raw))
    prefix = "=?utf-8?b?" if use_b else "=?utf-8?q?"
    overhead = len(prefix) + 2  # and "?=" at the end
    words: list[str] = []
    chunk, size, room = b"", 0, max(first_room, overhead + 12)
    for char in text:
        piece = char.encode("utf-8")
        grown = _b_size(len(chunk) + len(piece)) if use_b else size + len(_q(piece))
        if chunk and overhead + grown > room:
            words.append(prefix + (base64.b64encode(chunk).decode("ascii") if use_b else _q(chunk)) + "?=")
            chunk, room = b"", _WORD_MAX
            grown = _b_size(len(piece)) if use_b else len(_q(piece))
        chunk += piece
        size = grown
    words.append(prefix + (base64.b64encode(chunk).decode("ascii") if use_b else _q(chunk)) + "?=")
    return words


def _fold(name: str, tokens: Sequence[str]) -> str:
    """`Name: token token ...`, with a new line (CRLF and a space) before a token that would
    pass 78 characters. A token longer than a line stays whole (up to the RFC's 998); an
    empty token (two spaces in a row) never starts a line, which must not be blank."""
    lines: list[str] = []
    line, empty = f"{name}:", True
    for token in tokens:
        if token and not empty and len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = ""
        line = f"{line} {token}"
        empty = False
    lines.append(line)
    return _CRLF.join(lines)


def unstructured_header(name: str, text: str) -> str:
    """A header line (no final CRLF) of free text such as Subject: folded at spaces when it is
    ASCII, encoded words when it is not. `text` must be one line (no CR or LF)."""
    if "\r" in text or "\n" in text:
        raise ValueError(f"{name} must be one line")
    if not _needs_encoding(text):
        return _fold(name, text.split(" ") if text else [""])
    return _fold(name, _encoded_words(text, MAX_LINE - len(name) - 2))


def _phrase(display_name: str, room: int) -> list[str]:
    if not display_name:
        return []
    if _needs_encoding(display_name):
        return _encoded_words(display_name, room)
    if _ATOMS.fullmatch(display_name):
        return display_name.split(" ")
    quoted = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return [f'"{quoted}"']


def address_header(name: str, display_name: str, address: str) -> str:
    """`Name: Display Name <address>` (no final CRLF); the display name quoted or encoded as
    needed. Raises ValueError for an address that cannot be written in a header."""
    if not address or _UNSAFE_IN_ADDRESS.search(address) or address.count("@") < 1:
        raise ValueError(f"not a usable email address: {address!r}")
    if "\r" in display_name or "\n" in display_name:
        raise ValueError(f"{name}: the display name must be one line")
    phrase = _phrase(display_name, MAX_LINE - len(name) - 2)
    return _fold(name, [*phrase, f"<{address}>"] if phrase else [address])


def header_line(name: str, value: str) -> str:
    """A header written as given (no folding), for values that are ASCII and short by
    construction (ids, dates, MIME parameters) or must not be folded (List-Unsubscribe)."""
    if not value.isascii() or "\r" in value or "\n" in value:
        raise ValueError(f"{name} must be one ASCII line")
    line = f"{name}: {value}"
    if len(line) > 998:
        raise ValueError(f"{name} is longer than a header line may be")
    return line


# ------------------------------------------------------------------------------- bodies


def _quoted_printable(text: str) -> bytes:
    # One kind of line end first; b2a_qp keeps "\n" and encodes a lone "\r".
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")


def build_message(headers: Sequence[str], text: str, html: str) -> bytes:
    """The message's bytes: `headers` (complete lines, no CRLF), then a multipart/alternative
    of `text` (first: clients show the last alternative they understand) and `html`."""
    boundary = f"=_{uuid.uuid4().hex}"
    head = _CRLF.join([
        *headers,
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative;{_CRLF} boundary="{boundary}"',
    ])
    part_head = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    # The CRLF before a boundary belongs to the boundary (RFC 2046): one more keeps the
    # body's own final line end.
    return b"".join([
        head.encode("utf-8"), b"\r\n\r\n",
        f"--{boundary}\r\n".encode(), part_head.format("plain").encode(), _quoted_printable(text),
        f"\r\n--{boundary}\r\n".encode(), part_head.format("html").encode(), _quoted_printable(html),
        f"\r\n--{boundary}--\r\n".encode(),
    ])
