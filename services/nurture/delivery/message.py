"""Building an email: MIME structure, headers, addresses, DKIM. Pure: no I/O, no clock.

Messages are rendered straight to their wire bytes (CRLF, 7-bit: quoted-printable parts, RFC 2047
headers). That is several times faster than composing an EmailMessage, and everything after building —
DKIM, the stored copy for an operator's resend, SMTP, the dev mailbox — works on those exact bytes.
`build_message` parses them into an EmailMessage for whoever wants to inspect one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import SMTP, EmailPolicy
from email.utils import format_datetime, formataddr, getaddresses
from functools import lru_cache

import dkim  # type: ignore[import-untyped]

ONE_CLICK = "List-Unsubscribe=One-Click"
# Headers that render_message sets itself; extra headers may not replace them.
RESERVED = frozenset(
    (
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "dkim-signature",
    )
)
DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)
# Headers parsed from bytes are written back exactly as they came (an EmailMessage made from our bytes,
# e.g. by build_message, serializes to the same bytes).
WIRE: EmailPolicy[EmailMessage] = SMTP.clone(refold_source="none")
ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
HEADER_NAME = re.compile(r"[!-9;-~]+")
UNSUBSCRIBE_URL = re.compile(r"https?://[^\s<>,\"]{1,900}", re.IGNORECASE)
LINE = 78


@dataclass(frozen=True)
class Outgoing:
    """A message ready for the wire: the SMTP envelope and the exact bytes."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes

    @classmethod
    def of(cls, message: EmailMessage) -> Outgoing:
        """From an EmailMessage: envelope from its From and To headers."""
        return cls.from_bytes(message.as_bytes(policy=WIRE))

    @classmethod
    def from_bytes(cls, data: bytes) -> Outgoing:
        """From wire bytes: envelope from their From and To headers."""
        headers = BytesHeaderParser(policy=WIRE).parsebytes(data)
        return cls(check_address(str(headers["From"])), (check_address(str(headers["To"])),), data)


def check_address(address: str) -> str:
    """The addr-spec (user@domain) of exactly one ASCII mailbox, `Name <user@domain>` or bare; else ValueError."""
    return _parse_mailbox(address)[1]


@lru_cache(maxsize=4096)  # a batch repeats its From and Reply-To, and checks each To twice
def _parse_mailbox(address: str) -> tuple[str, str]:
    if "\r" in address or "\n" in address:
        raise ValueError("an address may not contain line breaks")
    if len(address) <= 254 and ADDR_SPEC.fullmatch(address):
        return "", address
    pairs = getaddresses([address]) if len(address) <= 320 else []
    # The address must appear as written: the parser quietly "repairs" obsolete forms such as spaces.
    if len(pairs) != 1 or len(pairs[0][1]) > 254 or not ADDR_SPEC.fullmatch(pairs[0][1]) or pairs[0][1] not in address:
        raise ValueError(f"not one valid email address: {address!r}")
    return pairs[0]


def address_domain(address: str) -> str:
    """The domain of a `Name <user@domain>` or `user@domain` address; ValueError unless there is exactly one."""
    return check_address(address).rpartition("@")[2].lower()


def new_message_id(domain: str) -> str:
    """`<uuid@domain>`: unique, and naming the sender's domain as RFC 5322 recommends."""
    return f"<{uuid.uuid4()}@{domain}>"


def render_message(
    *,
    subject: str,
    html: str,
    text: str,
    to: str,
    from_: str,
    reply_to: str | None,
    message_id: str,
    list_unsubscribe_url: str | None,
    date: datetime,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The wire bytes of a multipart/alternative (text, then HTML) UTF-8 message. `message_id` is the header
    value, `<…@…>`; with an unsubscribe URL it carries `List-Unsubscribe` and RFC 8058's one-click
    `List-Unsubscribe-Post`. ValueError for a bad address, URL or extra header."""
    lines = [
        _header("From", _mailbox(from_)),
        _header("To", _mailbox(to)),
    ]
    if reply_to:
        lines.append(_header("Reply-To", _mailbox(reply_to)))
    lines += [
        _header("Subject", " ".join(subject.split())),
        _header("Date", format_datetime(date)),
        _header("Message-ID", message_id),
    ]
    if list_unsubscribe_url:
        if not UNSUBSCRIBE_URL.fullmatch(list_unsubscribe_url):
            raise ValueError("list_unsubscribe_url must be an http(s) URL without spaces, commas or angle brackets")
        # Verbatim, never encoded or folded inside: clients must read it as a URL.
        lines.append(f"List-Unsubscribe: <{list_unsubscribe_url}>\r\n")
        lines.append(f"List-Unsubscribe-Post: {ONE_CLICK}\r\n")
    for name, value in (headers or {}).items():
        if name.lower() in RESERVED or not HEADER_NAME.fullmatch(name):
            raise ValueError(f"header {name!r} cannot be set as an extra header")
        lines.append(_header(name, value))
    # Derived from the Message-ID: pure, unique per message, and "=_" never occurs in quoted-printable.
    boundary = "=_fs" + hashlib.sha256(message_id.encode()).hexdigest()[:28]
    lines += [
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n',
        "\r\n",
    ]
    head = "".join(lines).encode("ascii")
    part = 'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    sep = f"--{boundary}\r\n".encode()
    return b"".join(
        (
            head,
            sep,
            part.format("plain").encode(),
            _quoted_printable(text),
            sep,
            part.format("html").encode(),
            _quoted_printable(html),
            f"--{boundary}--\r\n".encode(),
        )
    )


def build_message(
    *,
    subject: str,
    html: str,
    text: str,
    to: str,
    from_: str,
    reply_to: str | None,
    message_id: str,
    list_unsubscribe_url: str | None,
    date: datetime,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """render_message's message as an EmailMessage (its `as_bytes(policy=WIRE)` gives the same bytes)."""
    return parse(
        render_message(
            subject=subject,
            html=html,
            text=text,
            to=to,
            from_=from_,
            reply_to=reply_to,
            message_id=message_id,
            list_unsubscribe_url=list_unsubscribe_url,
            date=date,
            headers=headers,
        )
    )


def _mailbox(address: str) -> str:
    return formataddr(_parse_mailbox(address), charset="utf-8")


def _header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name}: line breaks are not allowed")
    if not value.isascii():
        return f"{name}: {_encoded_words(value)}\r\n"
    return f"{name}: {_fold(len(name) + 2, value)}\r\n"


def _fold(used: int, value: str) -> str:
    """Fold an ASCII value at spaces so lines stay near 78 characters."""
    if used + len(value) <= LINE:
        return value
    out, line = [], ""
    for word in value.split(" "):
        if line and used + len(line) + 1 + len(word) > LINE:
            out.append(line)
            line, used = word, 1
        else:
            line = f"{line} {word}" if line else word
    out.append(line)
    return "\r\n ".join(out)


def _encoded_words(value: str) -> str:
    """RFC 2047 base64 words of at most 45 UTF-8 bytes (whole characters), one per folded line."""
    words: list[str] = []
    chunk: list[str] = []
    size = 0
    for ch in value:
        n = len(ch.encode())
        if size + n > 45:
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(ch)
        size += n
    words.append("".join(chunk))
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def _quoted_printable(body: str) -> bytes:
    data = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    # The CRLF before the next boundary belongs to the boundary: the body's own last line break stays.
    return binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n") + b"\r\n"


def dkim_sign(message_bytes: bytes, selector: str, domain: str, private_key_pem: str | bytes) -> bytes:
    """The message with a DKIM-Signature header (rsa-sha256, relaxed/simple) prepended."""
    key = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    signature: bytes = dkim.sign(
        message_bytes,
        selector.encode("ascii"),
        domain.encode("ascii"),
        key,
        # From once more: "oversigned", so nobody can add a second From without breaking the signature.
        include_headers=[h for h in DKIM_HEADERS if _has_header(message_bytes, h)] + [b"from"],
    )
    return signature + message_bytes


def _has_header(message_bytes: bytes, name: bytes) -> bool:
    head = message_bytes.partition(b"\r\n\r\n")[0]
    return re.search(rb"(?im)^" + re.escape(name) + rb"\s*:", head) is not None


def parse(message_bytes: bytes) -> EmailMessage:
    """A message from its wire bytes; `message.as_bytes(policy=WIRE)` gives the same bytes back."""
    return message_from_bytes(message_bytes, _class=EmailMessage, policy=WIRE)


def compress(message_bytes: bytes) -> bytes:
    return zlib.compress(message_bytes, 1)


def decompress(stored: bytes) -> bytes:
    return zlib.decompress(stored)
