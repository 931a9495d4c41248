"""The XSS detector the security tests rely on finds injected markup and passes escaped text."""

from __future__ import annotations

from markupsafe import escape

from tests.security.html_check import injections, shown_as_text

PAYLOADS = [
    "<script>alert('fsxss')</script>",
    "\"><img src=x onerror=alert('fsxss')>",
    "'><svg onload=alert('fsxss')>",
    "<a href=\"javascript:alert('fsxss')\">x</a>",
    "<fsxss>",
]


def test_raw_payloads_are_found_and_escaped_ones_are_not() -> None:
    for payload in PAYLOADS:
        assert injections(f'<p title="x">{payload}</p>', "fsxss"), payload
        escaped = f'<p title="{escape(payload)}">{escape(payload)}</p>'
        assert shown_as_text(escaped, "fsxss"), payload
    assert not shown_as_text("<p>nothing</p>", "fsxss")  # absent is not "escaped"
