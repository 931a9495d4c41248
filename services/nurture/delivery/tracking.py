"""Open and click tracking of an email's HTML: the pixel and signed click redirects (shared/tokens.py). Pure."""

from __future__ import annotations

import html as htmllib
import re
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from shared.tokens import EMAIL_SOURCE_ID, make_click_token, make_open_token

_LINK = re.compile(
    r"""(<(?:a|area)(?:\s+[^\s>"'=/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*?\s+href\s*=\s*)"""
    r"""("[^"]*"|'[^']*'|[^\s>"']+)""",
    re.IGNORECASE,
)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


def add_tracking(
    html: str,
    *,
    secret_key: str,
    base_url: str,
    message_id: str,
    user_id: str | None,
    anonymous_id: str | None,
    sent_at: datetime,
    source_id: uuid.UUID | None = None,
    keep: Collection[str] = (),
) -> str:
    """Point every http(s) link of `html` at the signed click redirect and add the open pixel.

    `mailto:`, relative links, anchors, links in `keep` (the unsubscribe link) and URLs a click token
    cannot hold stay as they are. Each link gets its own token, bound to its URL."""
    base = base_url.rstrip("/")
    ids: dict[str, Any] = {
        "message_id": message_id,
        "sent_at": sent_at,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "source_id": source_id or EMAIL_SOURCE_ID,
    }

    def rewrite(match: re.Match[str]) -> str:
        raw = match.group(2)
        url = htmllib.unescape(raw[1:-1] if raw[:1] in "\"'" else raw).strip()
        if not url.lower().startswith(("http://", "https://")) or url in keep:
            return match.group(0)
        try:
            token = make_click_token(secret_key, url=url, **ids)
        except ValueError:
            return match.group(0)
        return f'{match.group(1)}"{base}/t/c/{token}"'

    tracked = _LINK.sub(rewrite, html)
    pixel = (
        f'<img src="{base}/t/o/{make_open_token(secret_key, **ids)}.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0">'
    )
    ends = list(_BODY_END.finditer(tracked))
    if not ends:
        return tracked + pixel
    at = ends[-1].start()
    return tracked[:at] + pixel + tracked[at:]
