"""The form page renders whatever a visitor or marketer wrote as text: never markup."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from services.forms.pages import form_page
from services.forms.schemas import FormDefinition
from tests.services.forms.helpers import definition

DEFINITION = FormDefinition.model_validate(definition())
OWN_TAGS = {"html", "head", "meta", "title", "script", "style", "body", "main", "h1", "p", "form", "input", "div",
            "label", "select", "option", "span", "button"}  # fmt: skip


class Page(HTMLParser):
    """The tags, the input values and the text of each element with an id, as a browser would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.values: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "input" and found.get("name"):
            self.values[str(found["name"])] = found.get("value") or ""
        self._open = found.get("id") if tag == "p" else None

    def handle_endtag(self, tag: str) -> None:
        self._open = None

    def handle_data(self, data: str) -> None:
        if self._open:
            self.texts[self._open] = self.texts.get(self._open, "") + data


@settings(max_examples=200)
@given(st.text(max_size=60), st.text(min_size=1, max_size=60), st.text(max_size=60))
def test_values_errors_and_hidden_inputs_come_back_as_the_same_text(value: str, error: str, aid: str) -> None:
    page = Page()
    page.feed(
        form_page(
            DEFINITION,
            action="/forms/x",
            token="t",
            hidden={"fs_aid": aid},
            values={"first_name": value},
            errors={"company": error},
            error=error,
        )
    )
    assert set(page.tags) <= OWN_TAGS and page.tags.count("script") == 1  # no tag came from a value
    assert page.values["first_name"] == value and page.values.get("fs_aid", "") == aid
    assert page.texts["error-company"] == error and page.texts["form-error"] == error
