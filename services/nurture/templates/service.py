"""Email templates, pure: validate a template's parts and render them for one lead.

Subject and text parts render in the text sandbox, the HTML part in the autoescaping one
(see sandbox.py). Rendered HTML gets its CSS inlined for email clients; a template without a text
part gets one derived from the rendered HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import css_inline
from inscriptis import get_text  # type: ignore[import-untyped]
from inscriptis.css_profiles import CSS_PROFILES  # type: ignore[import-untyped]
from inscriptis.model.config import ParserConfig  # type: ignore[import-untyped]
from inscriptis.model.html_document_state import HtmlDocumentState  # type: ignore[import-untyped]
from inscriptis.model.tag import CustomHtmlTagHandlerMapping  # type: ignore[import-untyped]
from jinja2.exceptions import TemplateError, TemplateSyntaxError

from services.nurture.templates.context import (
    BARE_LEAD,
    SAMPLE_CONTEXT,
    SAMPLE_EXTRA,
    context_for,
    sample_context,
)
from services.nurture.templates.sandbox import Flavour, compiled, template_line, wrap

__all__ = [
    "SAMPLE_CONTEXT",
    "RenderedEmail",
    "TemplateContent",
    "TemplateProblem",
    "TemplateRenderError",
    "context_for",
    "derive_text",
    "inline_css",
    "problems",
    "render",
]

Part = Literal["subject", "html", "text"]
FLAVOURS: dict[Part, Flavour] = {"subject": "text", "html": "html", "text": "text"}


@dataclass(frozen=True)
class TemplateContent:
    subject: str
    html: str
    text: str | None  # None or blank: derived from the rendered HTML


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class TemplateProblem:
    part: Part
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.part if self.line is None else f"{self.part} line {self.line}"
        return f"{where}: {self.message}"


class TemplateRenderError(Exception):
    """A part failed to compile or render; `problem` says which part, which line and why."""

    def __init__(self, problem: TemplateProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def render(content: TemplateContent, context: Mapping[str, Any]) -> RenderedEmail:
    """Render all parts for one message (`context` from `context_for`); TemplateRenderError if one fails."""
    data = {name: wrap(name, value) for name, value in context.items()}
    subject = " ".join(_render("subject", content.subject, data).split())
    if not subject:
        raise TemplateRenderError(TemplateProblem("subject", None, "the subject renders empty"))
    html = _render("html", content.html, data)
    text = _render("text", content.text, data) if content.text and content.text.strip() else derive_text(html)
    return RenderedEmail(subject=subject, html=inline_css(html), text=text)


def problems(content: TemplateContent, extra: Mapping[str, Any] | None = None) -> list[TemplateProblem]:
    """What is wrong with a template: syntax errors, then what fails to render for the sample lead (with
    `extra`, default the sample cart) and for a lead without name or traits. Empty if it is fine."""
    parts: dict[Part, str] = {"subject": content.subject, "html": content.html}
    if content.text and content.text.strip():
        parts["text"] = content.text
    found: list[TemplateProblem] = []
    for part, source in parts.items():
        try:
            compiled(source, FLAVOURS[part])
        except TemplateSyntaxError as exc:
            found.append(TemplateProblem(part, exc.lineno, exc.message or str(exc)))
    if found:
        return found
    extra = SAMPLE_EXTRA if extra is None else extra
    samples = [
        ("", sample_context(extra=extra)),
        ("for a lead without name or traits: ", sample_context(BARE_LEAD, extra)),
    ]
    failed: set[Part] = set()
    for note, context in samples:
        data = {name: wrap(name, value) for name, value in context.items()}
        for part, source in parts.items():
            if part in failed:
                continue
            try:
                rendered = _render(part, source, data)
            except TemplateRenderError as exc:
                found.append(TemplateProblem(part, exc.problem.line, note + exc.problem.message))
                failed.add(part)
                continue
            if part == "subject" and not rendered.strip():
                found.append(TemplateProblem("subject", None, note + "the subject renders empty"))
                failed.add(part)
    return found


def _render(part: Part, source: str, data: Mapping[str, Any]) -> str:
    try:
        return compiled(source, FLAVOURS[part]).render(data)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(TemplateProblem(part, exc.lineno, exc.message or str(exc))) from exc
    except TemplateError as exc:  # undefined variables, sandbox refusals
        raise TemplateRenderError(TemplateProblem(part, template_line(exc), str(exc))) from exc
    except Exception as exc:  # a template's own mistake: 1/0, "a" + 1, recursion ...
        raise TemplateRenderError(TemplateProblem(part, template_line(exc), f"{type(exc).__name__}: {exc}")) from exc


# -- HTML for email clients -----------------------------------------------------------------------

# Remote stylesheets are never fetched (a template must not make the server request URLs); @media
# rules stay in a <style> element, since they cannot be inlined.
_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def inline_css(html: str) -> str:
    """`html` with the rules of its <style> elements moved into style attributes."""
    return _INLINER.inline(html)


def _link_start(state: HtmlDocumentState, attrs: dict[str, str]) -> None:
    href = (attrs.get("href") or "").strip()
    state.link_target = "" if href.startswith(("#", "javascript:")) else href


def _link_end(state: HtmlDocumentState) -> None:
    if state.link_target:
        state.tags[-1].write(f" ({state.link_target})")


_TEXT_CONFIG = ParserConfig(
    css=CSS_PROFILES["relaxed"],
    custom_html_tag_handler_mapping=CustomHtmlTagHandlerMapping(
        start_tag_mapping={"a": _link_start}, end_tag_mapping={"a": _link_end}
    ),
)
_URL_TWICE = re.compile(r"(\S+) \(\1\)")
_BLANK_LINES = re.compile(r"\n{3,}")


def derive_text(html: str) -> str:
    """The text part of a rendered HTML part: layout kept, links as "text (url)"."""
    text: str = get_text(html, _TEXT_CONFIG)
    text = _URL_TWICE.sub(r"\1", text)  # <a href="https://x">https://x</a> once, not twice
    lines = [line.rstrip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"
