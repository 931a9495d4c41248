"""The public consent pages, rendered on the server: no script, every value escaped.

One sandboxed Jinja2 environment with autoescape and StrictUndefined, built once (shared/STYLE.md):
labels and addresses shown on these pages come from data that others wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

ENV = SandboxedEnvironment(
    loader=PackageLoader("services.nurture.consent", "pages"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Pages reached through a personal link: never cached by proxies, never indexed, not framed.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class TopicChoice:
    id: str
    label: str
    description: str
    on: bool


def render(template: str, **values: Any) -> str:
    return ENV.get_template(template).render(**values)


def unsubscribe_page(*, address: str, topic_label: str | None, action: str, done: bool, preferences: str | None) -> str:
    title = "You are unsubscribed" if done else "Unsubscribe"
    return render(
        "unsubscribe.html",
        title=title,
        address=address,
        topic_label=topic_label,
        action=action,
        done=done,
        preferences_action=preferences,
    )


def preferences_page(*, address: str, topics: list[TopicChoice], action: str, saved: str | None) -> str:
    return render(
        "preferences.html", title="Email preferences", address=address, topics=topics, action=action, saved=saved
    )


def message_page(title: str, message: str) -> str:
    return render("message.html", title=title, message=message)
