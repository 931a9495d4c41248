"""CSV files of contacts and suppressions: rows accepted whole or rejected with one reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.nurture.consent.imports import CsvError, parse_contacts, parse_suppressions

CONTACTS = (
    "email,user_id,first_name,last_name,company,consent,consent_text,consent_at,topics\n"
    "ann@example.com,u-ann,Ann,Lee,Acme,subscribed,Newsletter box on /signup,2025-05-01T10:00:00Z,news;product\n"
    "not-an-address,,Bob,,,,,,\n"
    "cat@example.com,,Cat,,,subscribed,,,\n"
    "ANN@example.com,,Ann,,,,,,\n"
    "dan@example.com,,,,,maybe,,,\n"
    "eve@example.com,,Eve,,,unsubscribed,,,\n"
)


def test_contacts_rows_are_accepted_or_rejected_with_a_reason_and_row_number() -> None:
    parsed = parse_contacts(CONTACTS.encode())
    assert parsed.total == 6
    assert [r.email for r in parsed.rows] == ["ann@example.com", "eve@example.com"]
    assert [(r.row, r.reason.split(":")[0]) for r in parsed.rejected] == [
        (3, "email"),
        (4, "consent_text"),
        (5, "duplicate of row 2"),
        (6, "consent"),
    ]
    ann = parsed.rows[0]
    assert ann.user_id == "u-ann" and ann.topics == ("news", "product")
    assert ann.traits == {"firstName": "Ann", "lastName": "Lee", "company": "Acme"}
    assert ann.consent_at == datetime(2025, 5, 1, 10, tzinfo=UTC)


def test_semicolon_files_from_spreadsheets_and_a_byte_order_mark_are_read() -> None:
    parsed = parse_contacts("\ufeffEmail;Consent;Consent_Text\nann@example.com;subscribed;Yes please\n".encode())
    assert [(r.email, r.consent) for r in parsed.rows] == [("ann@example.com", "subscribed")]


def test_a_file_without_an_email_column_is_refused() -> None:
    with pytest.raises(CsvError, match="email"):
        parse_contacts(b"name,phone\nAnn,1\n")
    with pytest.raises(CsvError, match="UTF-8"):
        parse_contacts("email\nanné@example.com\n".encode("latin-1"))


def test_suppression_rows() -> None:
    parsed = parse_suppressions(
        b"email,reason,at\nold@example.com,bounced,2024-01-01\nx@example.com,,\nbad,manual,\n"
        b"y@example.com,spam,\nold@example.com,manual,\n"
    )
    assert [(r.email, r.reason) for r in parsed.rows] == [("old@example.com", "bounced"), ("x@example.com", "manual")]
    assert [r.row for r in parsed.rejected] == [4, 5, 6]
