"""When a marketing message may go: quiet hours in the recipient's time zone and the frequency cap.

Pure: `now` is passed in. A capped or quiet send is deferred to the time computed here, never
dropped. Quiet hours are wall-clock times in the recipient's zone, so they follow daylight saving:
the end of the night is found on the local calendar and converted to UTC only at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class SendPolicy:
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    cap: timedelta = timedelta(hours=16)


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The recipient's zone from a trait such as `timezone`; an unknown name falls back to `default`."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def is_quiet(local: time, policy: SendPolicy) -> bool:
    start, end = policy.quiet_start, policy.quiet_end
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the night wraps midnight


def end_of_quiet(at: datetime, tz: ZoneInfo, policy: SendPolicy) -> datetime:
    """The first moment at or after `at` (aware) that is outside quiet hours in `tz`."""
    local = at.astimezone(tz)
    if not is_quiet(local.time().replace(tzinfo=None), policy):
        return at
    day = local.date()
    if policy.quiet_start > policy.quiet_end and local.time() >= policy.quiet_start:
        day += timedelta(days=1)  # evening: the night ends tomorrow morning
    end = datetime.combine(day, policy.quiet_end, tzinfo=tz)
    # A wall-clock end inside a spring-forward gap does not exist; the zone's fold=0 reading lands
    # just after the gap, which is what "08:00 local" means on such a morning.
    return max(end.astimezone(at.tzinfo), at)


def next_send_time(
    now: datetime,
    tz: ZoneInfo,
    policy: SendPolicy,
    *,
    last_marketing_at: datetime | None,
    capped: bool = True,
    quiet: bool = True,
) -> datetime:
    """The earliest time at or after `now` when a marketing message may go to this recipient."""
    at = now
    if capped and last_marketing_at is not None and last_marketing_at + policy.cap > at:
        at = last_marketing_at + policy.cap
    if quiet:
        at = end_of_quiet(at, tz, policy)
    return at
