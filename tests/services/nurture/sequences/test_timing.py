"""Quiet hours and the frequency cap, across time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.nurture.sequences.timing import SendPolicy, is_quiet, next_send_time, zone

POLICY = SendPolicy(quiet_start=time(21, 0), quiet_end=time(8, 0), cap=timedelta(hours=16))
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC", "America/Sao_Paulo"]
# hypothesis takes naive bounds and attaches the zone itself
moments = st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC))  # noqa: DTZ001


@settings(max_examples=400, deadline=None)
@given(moments, st.sampled_from(ZONES), st.one_of(st.none(), st.timedeltas(timedelta(0), timedelta(hours=30))))
def test_a_send_is_never_in_quiet_hours_never_early_and_never_needlessly_late(
    now: datetime, name: str, since_last: timedelta | None
) -> None:
    tz = zone(name)
    last = now - since_last if since_last is not None else None
    at = next_send_time(now, tz, POLICY, last_marketing_at=last)
    assert at >= now
    assert not is_quiet(at.astimezone(tz).time(), POLICY)
    if last is not None:
        assert at >= last + POLICY.cap
    earliest = max(now, last + POLICY.cap) if last is not None else now
    # Deferred at most to the end of one night (plus an hour when the clocks change that night).
    assert at - earliest <= timedelta(hours=12)


def test_quiet_hours_follow_the_local_clock_across_the_spring_and_autumn_changes() -> None:
    berlin = zone("Europe/Berlin")
    # 22:30 local on the evening before clocks go forward (29 March 2026, 02:00 → 03:00).
    spring = datetime(2026, 3, 28, 21, 30, tzinfo=UTC)
    assert next_send_time(spring, berlin, POLICY, last_marketing_at=None) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    # 22:30 local before clocks go back (25 October 2026, 03:00 → 02:00): 08:00 is UTC+1 again.
    autumn = datetime(2026, 10, 24, 20, 30, tzinfo=UTC)
    assert next_send_time(autumn, berlin, POLICY, last_marketing_at=None) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)


def test_a_capped_send_waits_for_the_cap_then_for_morning() -> None:
    ny = zone("America/New_York")
    last = datetime(2026, 6, 1, 14, 0, tzinfo=UTC)  # 10:00 in New York
    now = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)
    # The cap ends 16 h after the last send: 02:00 in New York, inside the night, so 08:00 local.
    assert next_send_time(now, ny, POLICY, last_marketing_at=last) == datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
    assert next_send_time(now, ny, POLICY, last_marketing_at=last, capped=False) == now


def test_an_unknown_zone_falls_back_and_no_quiet_hours_means_now() -> None:
    assert zone("Mars/Olympus_Mons").key == "UTC"
    always = SendPolicy(quiet_start=time(0, 0), quiet_end=time(0, 0))
    now = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    assert next_send_time(now, zone("UTC"), always, last_marketing_at=None) == now
