"""Meta Marketing API, Customer File Custom Audiences: add and remove users of a custom audience.

As documented (https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences,
"Add users" / "Remove users"): `POST /{version}/{audience_id}/users` adds and `DELETE` on the same path
removes, with a `payload` of `{"schema": [...], "data": [[...], ...]}`. We send the multi-key schema
`["EMAIL", "PHONE"]`, each row the SHA-256 hex of the trimmed, lower-cased email and of the phone's
digits with country code ("" when unknown), at most 10,000 rows per request ("You can add ... only up to
10000 at a time"). The access token goes in the Authorization header, never in the URL.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.nurture.audiences.destinations import Member, SyncError, batches

SCHEMA = ["EMAIL", "PHONE"]
MAX_RECORDS = 10_000


def rows(members: list[Member]) -> list[list[str]]:
    """Members with at least one identifier, as rows of the multi-key schema."""
    return [
        [m.hashes.get("email", ""), m.hashes.get("phone", "")]
        for m in members
        if m.hashes.get("email") or m.hashes.get("phone")
    ]


class MetaCustomAudience:
    def __init__(
        self, client: httpx.AsyncClient, base_url: str, version: str, audience_id: str, access_token: str, batch: int
    ) -> None:
        self.client = client
        self.url = f"{base_url.rstrip('/')}/{version}/{audience_id}/users"
        self.headers = {"Authorization": f"Bearer {access_token}"}
        self.batch = min(batch, MAX_RECORDS)

    async def _send(self, method: str, members: list[Member]) -> None:
        data = rows(members)
        for part in batches(data, self.batch):
            body: dict[str, Any] = {"payload": {"schema": SCHEMA, "data": part}}
            try:
                response = await self.client.request(method, self.url, json=body, headers=self.headers)
            except httpx.HTTPError as exc:
                raise SyncError(f"meta: {type(exc).__name__}: {exc}") from exc
            if response.status_code >= 300:
                raise SyncError(f"meta: HTTP {response.status_code}: {response.text[:200]}")

    async def push(self, added: list[Member], removed: list[Member]) -> None:
        """Removals first: someone who left must leave even if the adds fail."""
        await self._send("DELETE", removed)
        await self._send("POST", added)
