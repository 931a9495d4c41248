"""The pure message builder: MIME structure, headers, tracked links, DKIM."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.nurture.delivery.message import WIRE, Outgoing, build_message, check_address, render_message
from services.nurture.delivery.tracking import add_tracking
from shared.tokens import read_click_token, read_open_token

SENT = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
KEY = "k"


def message(**overrides: object) -> EmailMessage:
    values: dict[str, object] = {
        "subject": "Hello",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "to": "ann@example.com",
        "from_": "Acme <news@acme.example>",
        "reply_to": None,
        "message_id": "<m1@acme.example>",
        "list_unsubscribe_url": None,
        "date": SENT,
        **overrides,
    }
    return build_message(**values)  # type: ignore[arg-type]


def tracked(html: str, keep: tuple[str, ...] = ()) -> str:
    return add_tracking(
        html,
        secret_key=KEY,
        base_url="https://t.example/",
        message_id="<m1@acme.example>",
        user_id="u1",
        anonymous_id=None,
        sent_at=SENT,
        keep=keep,
    )


def clicks(html: str) -> list[str]:
    return [read_click_token(KEY, t).url for t in re.findall(r'href="https://t\.example/t/c/([^"]+)"', html, re.I)]


def test_text_and_html_alternatives_in_utf8_survive_the_round_trip() -> None:
    built = message(subject="Grüße, Ann — 50 % off", text="Grüße\n.dot line\n", html="<p>Grüße ✓</p>")
    got = message_from_bytes(built.as_bytes(policy=WIRE).replace(b"\r\n", b"\n"), _class=EmailMessage, policy=default)
    assert got.get_content_type() == "multipart/alternative"
    text, html = got.iter_parts()
    assert text.get_content() == "Grüße\n.dot line\n" and html.get_content() == "<p>Grüße ✓</p>"
    assert got["Subject"] == "Grüße, Ann — 50 % off"
    assert built.as_bytes(policy=WIRE).isascii()


def test_a_long_unsubscribe_url_stays_a_verbatim_header() -> None:
    url = "https://t.example/u/" + "x" * 300
    raw = render_message(
        subject="s",
        html="h",
        text="t",
        to="ann@example.com",
        from_="news@acme.example",
        reply_to="Help <help@acme.example>",
        message_id="<m1@acme.example>",
        list_unsubscribe_url=url,
        date=SENT,
        headers={"X-Campaign": "spring"},
    )
    assert f"\r\nList-Unsubscribe: <{url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n".encode() in raw
    assert Outgoing.from_bytes(raw) == Outgoing("news@acme.example", ("ann@example.com",), raw)
    parsed = message(list_unsubscribe_url=url, reply_to="Help <help@acme.example>")
    assert parsed["Reply-To"] == "Help <help@acme.example>"


@pytest.mark.parametrize(
    "field, value",
    [
        ("to", "ann@example.com, bob@example.com"),
        ("to", "not an address"),
        ("from_", "news@acme.example\r\nBcc: everyone@example.com"),
        ("list_unsubscribe_url", "javascript:alert(1)"),
        ("headers", {"Bcc": "x@example.com"}),
        ("headers", {"X-Bad": "a\nb"}),
    ],
)
def test_header_injection_and_bad_addresses_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        message(**{field: value})


def test_line_breaks_in_a_subject_become_spaces_not_headers() -> None:
    got = message(subject="Hi\r\nBcc: everyone@example.com\n")
    assert got["Subject"] == "Hi Bcc: everyone@example.com" and got["Bcc"] is None


def test_http_links_are_tracked_mailto_anchors_and_the_unsubscribe_link_are_not() -> None:
    html = (
        "<html><body>"
        '<a href="https://acme.example/a?x=1&amp;y=2">a</a>'
        "<A class='b' HREF='http://acme.example/b'>b</A>"
        '<a title="1 > 0" href=https://acme.example/c>c</a>'
        '<a data-href="https://acme.example/no" href="#top">top</a>'
        '<a href="mailto:help@acme.example">mail</a>'
        '<a href="https://t.example/u/tok">unsubscribe</a>'
        "</BODY></html>"
    )
    out = tracked(html, keep=("https://t.example/u/tok",))
    assert clicks(out) == ["https://acme.example/a?x=1&y=2", "http://acme.example/b", "https://acme.example/c"]
    assert 'href="#top"' in out and 'href="mailto:help@acme.example"' in out
    assert 'href="https://t.example/u/tok"' in out and 'data-href="https://acme.example/no"' in out
    [pixel] = re.findall(r'<img src="https://t\.example/t/o/([^"]+)\.gif"[^>]*></BODY>', out)
    assert read_open_token(KEY, pixel).user_id == "u1"


@given(
    st.lists(st.from_regex(r"https?://[a-z]{1,12}\.example(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,30}){0,3}", fullmatch=True))
)
def test_every_link_reads_back_to_its_own_url(urls: list[str]) -> None:
    html = "".join(f'<p><a href="{u.replace("&", "&amp;")}">x</a></p>' for u in urls)
    assert clicks(tracked(html)) == urls


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=200))
def test_any_subject_round_trips(subject: str) -> None:
    assert message(subject=subject)["Subject"] == " ".join(subject.split())


def test_addresses() -> None:
    assert check_address("Ann Ö <ann@example.com>") == "ann@example.com"
    assert check_address("noreply@localhost") == "noreply@localhost"
    with pytest.raises(ValueError):
        check_address("ann@exa mple.com")
