"""Google Ads API, Customer Match through an OfflineUserDataJob (REST).

As documented (https://developers.google.com/google-ads/api/docs/remarketing/audience-types/customer-match,
OfflineUserDataJobService: CreateOfflineUserDataJob, AddOfflineUserDataJobOperations, RunOfflineUserDataJob):
1. `POST /{version}/customers/{customer_id}/offlineUserDataJobs:create` with a job of type
   `CUSTOMER_MATCH_USER_LIST` naming the user list; the answer carries the job's `resourceName`;
2. `POST /{version}/{resourceName}:addOperations` with `operations` of `create` (add) or `remove`, each a
   `UserData` whose `userIdentifiers` hold one identifier apiece: `hashedEmail` (SHA-256 of the trimmed,
   lower-cased email) and `hashedPhoneNumber` (SHA-256 of the E.164 number, `+16502531234`);
3. `POST /{version}/{resourceName}:run`.
Removals and additions go in separate jobs, removals first. Headers: `Authorization: Bearer`,
`developer-token`, and `login-customer-id` when a manager account is used.
"""

from __future__ import annotations

from typing import Any

import httpx

from services.nurture.audiences.destinations import Member, SyncError, batches


def user_data(member: Member) -> dict[str, Any] | None:
    identifiers = []
    if member.hashes.get("email"):
        identifiers.append({"hashedEmail": member.hashes["email"]})
    if member.hashes.get("phone_e164"):
        identifiers.append({"hashedPhoneNumber": member.hashes["phone_e164"]})
    return {"userIdentifiers": identifiers} if identifiers else None


class GoogleCustomerMatch:
    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        version: str,
        customer_id: str,
        user_list_id: str,
        credentials: dict[str, Any],
        login_customer_id: str | None,
        batch: int,
        consent: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.root = f"{base_url.rstrip('/')}/{version}"
        self.customer_id = customer_id.replace("-", "")
        self.user_list = f"customers/{self.customer_id}/userLists/{user_list_id}"
        self.headers = {
            "Authorization": f"Bearer {credentials.get('access_token', '')}",
            "developer-token": str(credentials.get("developer_token", "")),
        }
        if login_customer_id:
            self.headers["login-customer-id"] = login_customer_id.replace("-", "")
        self.batch = batch
        self.consent = consent or {}

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.client.post(f"{self.root}/{path}", json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise SyncError(f"google: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 300:
            raise SyncError(f"google: HTTP {response.status_code} on {path.rsplit(':', 1)[-1]}: {response.text[:200]}")
        try:
            found: dict[str, Any] = response.json() if response.content else {}
        except ValueError as exc:
            raise SyncError(f"google: answer is not JSON: {response.text[:200]}") from exc
        return found

    async def _job(self, operation: str, members: list[Member]) -> None:
        data = [d for d in (user_data(m) for m in members) if d is not None]
        if not data:
            return
        metadata: dict[str, Any] = {"userList": self.user_list}
        if self.consent:  # CustomerMatchUserListMetadata.consent: adUserData / adPersonalization (EEA)
            metadata["consent"] = self.consent
        job = {"type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}
        created = await self._post(f"customers/{self.customer_id}/offlineUserDataJobs:create", {"job": job})
        resource = created.get("resourceName")
        if not isinstance(resource, str) or not resource:
            raise SyncError("google: job creation answered without a resourceName")
        for part in batches(data, self.batch):
            body = {"operations": [{operation: d} for d in part], "enablePartialFailure": True}
            await self._post(f"{resource}:addOperations", body)
        await self._post(f"{resource}:run", {})

    async def push(self, added: list[Member], removed: list[Member]) -> None:
        await self._job("remove", removed)
        await self._job("create", added)
