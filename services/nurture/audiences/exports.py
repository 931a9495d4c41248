"""CSV files of an audience's current members in the platforms' customer-list formats, hashed.

Meta's customer list file takes identifier columns named `email` and `phone` and accepts values already
SHA-256 hashed with the same normalisation as the API; Google Ads' Customer Match upload template names
its columns `Email` and `Phone`, hashed values allowed (SHA-256 of the normalised email, of the E.164
phone). Members with neither identifier are left out: they cannot be matched.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Literal

Format = Literal["meta", "google"]
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "meta": (("email", "email"), ("phone", "phone")),
    "google": (("Email", "email"), ("Phone", "phone_e164")),
}


def csv_lines(kind: Format, members: Iterable[dict[str, str]]) -> Iterable[str]:
    """The header, then one line per member with at least one identifier."""
    columns = COLUMNS[kind]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([name for name, _ in columns])
    for hashes in members:
        row = [hashes.get(key, "") for _, key in columns]
        if any(row):
            writer.writerow(row)
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
