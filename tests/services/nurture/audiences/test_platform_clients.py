"""The Meta and Google clients against a local HTTP server that checks the documented request formats."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest

from services.nurture.audiences.destinations import Member, SyncError
from services.nurture.audiences.destinations.google import GoogleCustomerMatch
from services.nurture.audiences.destinations.meta import MetaCustomAudience
from services.nurture.audiences.identifiers import hashes
from tests.services.nurture.audiences.fake_platforms import DEVELOPER_TOKEN, GOOGLE_TOKEN, META_TOKEN, fake_platforms


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def people(n: int) -> list[Member]:
    return [Member(uuid.UUID(int=i), hashes(f" Person{i}@Shop.example ", f"+44 7700 9{i:05d}")) for i in range(n)]


async def test_meta_adds_and_removes_in_batches_of_at_most_10000_hashed_rows() -> None:
    async with fake_platforms() as fake, httpx.AsyncClient() as client:
        fake.forbidden = {"Person1@Shop.example", "person1@shop.example", "+44 7700 900001", "447700900001"}
        meta = MetaCustomAudience(client, fake.url, "v25.0", "6123", META_TOKEN, 10_000)
        await meta.push(people(25_000), [])
        assert fake.violations == []
        assert [(m, n) for m, _, n in fake.requests] == [("POST", 10_000), ("POST", 10_000), ("POST", 5_000)]
        assert (sha("person7@shop.example"), sha("447700900007")) in fake.meta["6123"]
        assert len(fake.meta["6123"]) == 25_000

        await meta.push([], people(3))
        assert fake.requests[-1] == ("DELETE", "/v25.0/6123/users", 3)
        assert (sha("person1@shop.example"), sha("447700900001")) not in fake.meta["6123"]
        assert len(fake.meta["6123"]) == 24_997
        assert fake.violations == []


async def test_meta_sends_nothing_for_members_without_identifiers_and_reports_errors() -> None:
    async with fake_platforms() as fake, httpx.AsyncClient() as client:
        meta = MetaCustomAudience(client, fake.url, "v25.0", "6123", META_TOKEN, 10_000)
        await meta.push([Member(uuid.UUID(int=1), {})], [])
        assert fake.requests == []
        fake.fail_next = 1
        with pytest.raises(SyncError, match="HTTP 500"):
            await meta.push(people(1), [])
        wrong = MetaCustomAudience(client, fake.url, "v25.0", "6123", "wrong-token", 10_000)
        with pytest.raises(SyncError, match="HTTP 400"):
            await wrong.push(people(1), [])


async def test_google_runs_one_job_for_removals_and_one_for_additions() -> None:
    async with fake_platforms() as fake, httpx.AsyncClient() as client:
        google = GoogleCustomerMatch(
            client, fake.url, "v26", "123-456-7890", "555",
            {"access_token": GOOGLE_TOKEN, "developer_token": DEVELOPER_TOKEN}, None, 10_000,
        )  # fmt: skip
        await google.push(people(12_000), [])
        assert fake.violations == []
        members = fake.google["customers/1234567890/userLists/555"]
        assert ("hashedEmail", sha("person5@shop.example")) in members
        assert ("hashedPhoneNumber", sha("+447700900005")) in members
        adds = [n for m, p, n in fake.requests if p.endswith(":addOperations")]
        assert adds == [10_000, 2_000]
        await google.push([], people(2))
        assert ("hashedEmail", sha("person1@shop.example")) not in members
        assert ("hashedEmail", sha("person2@shop.example")) in members
        assert all(job.ran for job in fake.jobs.values()) and len(fake.jobs) == 2
        assert fake.violations == []
