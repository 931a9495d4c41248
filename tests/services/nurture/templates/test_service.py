"""Validating and rendering email templates, pure: what a marketer and a recipient would notice."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.nurture.templates.context import SAMPLE_URLS, context_for, sample_context
from services.nurture.templates.sandbox import compiled
from services.nurture.templates.service import (
    SAMPLE_CONTEXT,
    TemplateContent,
    TemplateProblem,
    TemplateRenderError,
    problems,
    render,
)

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
# Visitor text: anything printable, including markup and quotes (control characters are not text).
VISITOR_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=60)


def html(body: str, subject: str = "Hello", text: str | None = None) -> TemplateContent:
    return TemplateContent(subject=subject, html=body, text=text)


def for_lead(traits: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return context_for(
        {"email": "x@example.com", "user_id": "u1", "traits": traits}, now=NOW, extra=extra, **SAMPLE_URLS
    )


class Markup(HTMLParser):
    """Tags, attributes and text of an HTML document, as a browser would see them."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


# -- what a marketer sees on save -----------------------------------------------------------------


def test_misspelled_variable_names_part_line_and_variable() -> None:
    body = "\n".join(["<p>line</p>"] * 11 + ["<p>Hi {{ lead.frist_name }}</p>"])
    assert problems(html(body)) == [TemplateProblem("html", 12, "'lead' has no attribute 'frist_name'")]
    assert str(problems(html(body))[0]) == "html line 12: 'lead' has no attribute 'frist_name'"


def test_syntax_errors_are_reported_for_every_part_with_their_line() -> None:
    content = TemplateContent(subject="{{ lead.first_name", html="<p>\n{% if lead.stage %}\n</p>", text="a\n\n{{ }}")
    found = {(p.part, p.line) for p in problems(content)}
    assert found == {("subject", 1), ("html", 2), ("text", 3)}  # html: the `if` left open


def test_unknown_top_level_variable_and_unknown_filter() -> None:
    [undefined] = problems(html("<p>{{ unsubscribe_link }}</p>"))
    assert undefined.message == "'unsubscribe_link' is undefined"
    [filtered] = problems(html("<p>\n{{ lead.email | shout }}</p>"))
    assert (filtered.line, filtered.message) == (2, "No filter named 'shout'.")


def test_a_trait_without_default_is_reported_since_not_every_lead_has_it() -> None:
    [problem] = problems(html("<p>\n\nFrom {{ lead.traits.company }}</p>"))
    assert problem.line == 3
    assert problem.message.startswith("for a lead without name or traits: 'lead.traits' has no attribute 'company'")
    assert problems(html("<p>From {{ lead.traits.company | default('your team') }}</p>")) == []
    assert problems(html("{% if lead.traits.company is defined %}{{ lead.traits.company }}{% endif %}")) == []


def test_a_subject_that_renders_empty_is_a_problem() -> None:
    assert [str(p) for p in problems(html("<p>x</p>", subject="{{ lead.first_name }}"))] == [
        "subject: for a lead without name or traits: the subject renders empty"
    ]


def test_extra_is_validated_against_the_given_sample() -> None:
    content = html("<p>{{ extra.coupon.code }}</p>")
    [problem] = problems(content)
    assert problem.message.startswith("'extra' has no attribute 'coupon'")
    assert problems(content, {"coupon": {"code": "SPRING"}}) == []


def test_a_valid_template_has_no_problems() -> None:
    content = TemplateContent(
        subject="{{ lead.first_name or 'Hello' }}, your {{ extra.cart['items'] | length }} items",
        html="<p>Hi {{ lead.first_name or 'there' }}</p>{% for i in extra.cart.items %}<p>{{ i.name }}</p>{% endfor %}"
        '<a href="{{ unsubscribe_url }}">Unsubscribe</a> {{ now.year }} {{ lead.score }} {{ lead.grade }}',
        text="Hi {{ lead.first_name or 'there' }}\nUnsubscribe: {{ unsubscribe_url }}",
    )
    assert problems(content) == []


# -- the sandbox ----------------------------------------------------------------------------------

ESCAPES = [
    "{{ lead.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ lead | attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ '{0.__class__}'.format(lead) }}",
    "{{ self._TemplateReference__context }}",
    "{{ lead.traits.update({'plan': 'free'}) }}",
    "{{ lead.stages.clear() }}",
    "{{ 'x' * 10000000 }}",
    "{{ 10 ** 100000 }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_refuses_internals_mutation_and_blowups(source: str) -> None:
    [problem] = problems(html(f"<p>ok</p>\n{source}"))
    assert problem.part == "html" and problem.line == 2
    assert "sandbox refuses" in problem.message
    with pytest.raises(TemplateRenderError, match="sandbox refuses"):
        render(html(source), SAMPLE_CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "{{ lead.traits.bio | safe }}",
        "{% autoescape false %}{{ lead.traits.bio }}{% endautoescape %}",
        "{% include 'footer.html' %}",
        "{% extends 'layout.html' %}",
    ],
)
def test_escaping_cannot_be_turned_off_and_nothing_is_loaded(source: str) -> None:
    [problem] = problems(html(source))
    assert problem.part == "html" and problem.line == 1
    assert "not allowed" in problem.message or "not available" in problem.message or "cannot" in problem.message


def test_range_is_capped() -> None:
    [problem] = problems(html("{% for i in range(10000000) %}{% endfor %}"))
    assert "Range too big" in problem.message


# -- what a recipient gets ------------------------------------------------------------------------


@given(first=VISITOR_TEXT, bio=VISITOR_TEXT)
def test_visitor_text_never_becomes_markup_in_html(first: str, bio: str) -> None:
    content = html('<p>{{ lead.first_name }}</p><p title="{{ lead.traits.bio }}">{{ lead.traits.bio }}</p>')
    email = render(content, for_lead({"firstName": first, "bio": bio}))
    parsed = Markup(email.html)
    assert [tag for tag, _ in parsed.tags] == ["html", "head", "body", "p", "p"]
    assert parsed.tags[-1][1] == [("title", bio)]
    assert "".join(parsed.text) == (first.strip() + bio)


@given(company=VISITOR_TEXT)
def test_subject_is_one_line_whatever_the_traits(company: str) -> None:
    email = render(
        html("<p>x</p>", subject="News\n for {{ lead.traits.company }}\r\n!"), for_lead({"company": company})
    )
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject == " ".join(f"News for {company} !".split())


def test_script_in_a_name_is_escaped_in_html_and_plain_in_text() -> None:
    content = html("<p>Hi {{ lead.first_name }}</p>", text="Hi {{ lead.first_name }}")
    email = render(content, for_lead({"firstName": "<script>alert(1)</script>"}))
    assert "<script>" not in email.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert email.text == "Hi <script>alert(1)</script>"


def test_text_part_is_derived_with_links_as_text_and_url() -> None:
    content = html(
        "<h1>Spring news</h1><p>Hi {{ lead.first_name }}, read <a href='https://example.com/blog'>our blog</a>.</p>"
        "<ul><li>One</li><li>Two</li></ul><p><a href='{{ unsubscribe_url }}'>Unsubscribe</a>"
        " <a href='https://example.com'>https://example.com</a></p><style>p{color:red}</style>"
    )
    email = render(content, SAMPLE_CONTEXT)
    assert "Hi Ada, read our blog (https://example.com/blog)." in email.text
    assert "Unsubscribe (https://funnelstream.invalid/preview/unsubscribe)" in email.text
    assert "https://example.com (https://example.com)" not in email.text and "https://example.com" in email.text
    assert "  * One\n  * Two" in email.text and "Spring news" in email.text
    assert "color" not in email.text and "<" not in email.text


def test_css_is_inlined_media_queries_kept_remote_sheets_not_fetched() -> None:
    content = html(
        "<html><head><style>p.note { color: #c00; } @media (max-width: 600px) { p.note { font-size: 18px } }</style>"
        # Nothing listens on port 9: fetching this would fail the render.
        '<link rel="stylesheet" href="http://127.0.0.1:9/evil.css"></head>'
        '<body><p class="note">Hi</p></body></html>'
    )
    email = render(content, SAMPLE_CONTEXT)
    assert 'style="color: #c00;"' in email.html
    assert "@media (max-width: 600px)" in email.html
    assert "evil.css" not in email.html


def test_unknown_name_prints_nothing_and_names_come_from_traits() -> None:
    content = html("<p>Hi {{ lead.first_name }}!</p>", subject="Hi {{ lead.first_name }} {{ lead.last_name }}")
    assert render(content, for_lead({})).html.endswith("<p>Hi !</p></body></html>")
    assert render(content, for_lead({"name": "Grace Brewster Hopper"})).subject == "Hi Grace Brewster Hopper"
    assert render(content, for_lead({"first_name": " Ann ", "lastName": "Lee"})).subject == "Hi Ann Lee"


def test_a_strict_undefined_fails_the_render_with_its_line() -> None:
    with pytest.raises(TemplateRenderError) as failed:
        render(html("<p>a</p>\n<p>{{ lead.traits.plan }}</p>"), for_lead({}))
    assert str(failed.value) == (
        "html line 2: 'lead.traits' has no attribute 'plan' "
        "(leads differ in traits: write `| default('…')` or test `is defined`)"
    )


def test_data_keys_win_over_dict_methods_and_renders_do_not_touch_the_context() -> None:
    cart = {"items": [{"name": "Pen", "values": "blue"}]}
    context = for_lead({}, extra={"cart": cart})
    email = render(html("{% for i in extra.cart.items %}<p>{{ i.name }} {{ i.values }}</p>{% endfor %}"), context)
    assert "<p>Pen blue</p>" in email.html
    assert context["extra"] == {"cart": cart}


def test_sample_context_has_every_documented_variable() -> None:
    context = sample_context()
    assert set(context) == {"lead", "unsubscribe_url", "preferences_url", "view_in_browser_url", "now", "extra"}
    assert set(context["lead"]) == {
        "email",
        "user_id",
        "first_name",
        "last_name",
        "traits",
        "score",
        "grade",
        "stage",
        "stages",
        "referral_code",
    }


def test_templates_compile_once_per_content() -> None:
    source = "<p>{{ lead.email }} cached</p>"
    assert compiled(source, "html") is compiled(source, "html")
    assert compiled(source, "html") is not compiled(source, "text")


def test_only_data_is_visible_on_a_mapping() -> None:
    [problem] = problems(html("<p>{{ lead.traits.path | default('none') }} {{ lead._path }}</p>"))
    assert "sandbox refuses" in problem.message
    email = render(html("<p>{{ lead.traits.path | default('none') }}</p>"), SAMPLE_CONTEXT)
    assert "<p>none</p>" in email.html
