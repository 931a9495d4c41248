"""Where a marked payload ended up in a page: as text (escaped: harmless) or as markup (injected)."""

from __future__ import annotations

from html.parser import HTMLParser

URL_ATTRIBUTES = {"href", "src", "action", "formaction", "xlink:href"}


class _Injections(HTMLParser):
    def __init__(self, marker: str) -> None:
        super().__init__(convert_charrefs=True)
        self.marker = marker
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.marker in tag:
            self.found.append(f"element <{tag}>")
        self._in_script = tag == "script"
        for name, value in attrs:
            value = value or ""
            if self.marker in name:
                self.found.append(f"attribute {name} of <{tag}>")
            elif self.marker in value and name.startswith("on"):
                self.found.append(f"event handler {name}={value!r} on <{tag}>")
            elif self.marker in value and name in URL_ATTRIBUTES and value.strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in {name} of <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and self.marker in data:
            self.found.append(f"script text {data.strip()[:80]!r}")


def injections(html: str, marker: str) -> list[str]:
    """Every way `marker` (a word inside an XSS payload) became markup or script in `html`."""
    parser = _Injections(marker)
    parser.feed(html)
    parser.close()
    return parser.found


def shown_as_text(html: str, marker: str) -> bool:
    """The payload reached the page (so the check above had something to check) and nowhere as markup."""
    return marker in html and not injections(html, marker)
