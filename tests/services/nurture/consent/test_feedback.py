"""Provider feedback payloads parsed to bounces, complaints and unsubscribes; provider signatures."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from services.nurture.consent.feedback import (
    FeedbackError,
    funnelstream_feedback,
    postmark_feedback,
    sendgrid_feedback,
    ses_feedback,
)
from services.nurture.consent.provider_auth import (
    sendgrid_signature_valid,
    sns_cert_url_allowed,
    sns_signature_valid,
)
from tests.services.nurture.consent.samples import (
    SendGridSigner,
    SnsSigner,
    postmark_bounce,
    postmark_complaint,
    sendgrid_events,
    ses_bounce,
    ses_complaint,
    sns_envelope,
)

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def test_ses_permanent_bounce_is_hard_transient_is_soft() -> None:
    [hard] = ses_feedback(ses_bounce("Ann@Example.com"), NOW)
    assert (hard.email, hard.kind, hard.bounce_type, hard.message_id) == (
        "ann@example.com",
        "bounce",
        "hard",
        "ses-msg-1",
    )
    assert hard.at.tzinfo is not None and hard.at != NOW
    [soft] = ses_feedback(ses_bounce("ann@example.com", permanent=False, feedback_id="fb-2"), NOW)
    assert soft.bounce_type == "soft" and soft.dedup_key != hard.dedup_key


def test_ses_complaint_and_other_notifications() -> None:
    [complaint] = ses_feedback(ses_complaint("ann@example.com"), NOW)
    assert complaint.kind == "complaint"
    assert ses_feedback({"notificationType": "Delivery", "delivery": {}}, NOW) == []
    assert ses_feedback({"eventType": "Bounce", "bounce": ses_bounce("b@c.io")["bounce"]}, NOW)[0].email == "b@c.io"


def test_the_same_provider_event_gets_the_same_dedup_key() -> None:
    first, again = ses_feedback(ses_bounce("a@b.co"), NOW), ses_feedback(ses_bounce("a@b.co"), NOW)
    assert [f.dedup_key for f in first] == [f.dedup_key for f in again]


def test_sendgrid_events_map_and_unrelated_ones_are_ignored() -> None:
    items = sendgrid_feedback(sendgrid_events("a@b.co"), NOW)
    assert [(i.kind, i.bounce_type) for i in items] == [("bounce", "soft"), ("bounce", "hard"), ("complaint", None)]
    assert items[1].dedup_key == "sendgrid:ev-2"
    dropped = sendgrid_feedback(
        [{"email": "x@y.io", "event": "dropped", "reason": "Unsubscribed Address", "sg_event_id": "d"}], NOW
    )
    assert [i.kind for i in dropped] == ["unsubscribe"]
    with pytest.raises(FeedbackError):
        sendgrid_feedback({"event": "bounce"}, NOW)


def test_postmark_bounce_types_complaints_and_subscription_changes() -> None:
    [hard] = postmark_feedback(postmark_bounce("a@b.co"), NOW)
    assert (hard.kind, hard.bounce_type, hard.at.microsecond % 1000) == ("bounce", "hard", 456)
    [soft] = postmark_feedback(postmark_bounce("a@b.co", "SoftBounce", 44), NOW)
    assert soft.bounce_type == "soft"
    [spam] = postmark_feedback(postmark_complaint("a@b.co"), NOW)
    assert spam.kind == "complaint"
    change = {"RecordType": "SubscriptionChange", "Recipient": "a@b.co", "SuppressSending": True,
              "SuppressionReason": "ManualSuppression", "ChangedAt": "2026-03-01T10:00:00Z"}  # fmt: skip
    assert [i.kind for i in postmark_feedback(change, NOW)] == ["unsubscribe"]
    assert postmark_feedback({**change, "SuppressSending": False}, NOW) == []


def test_our_format_is_checked_field_by_field() -> None:
    [item] = funnelstream_feedback({"email": "a@b.co", "type": "bounce", "bounce_type": "soft"}, "d", NOW)
    assert (item.kind, item.bounce_type, item.at) == ("bounce", "soft", NOW)
    with pytest.raises(FeedbackError, match="type"):
        funnelstream_feedback({"email": "a@b.co", "type": "open"}, "d", NOW)
    with pytest.raises(FeedbackError, match="email"):
        funnelstream_feedback([{"email": "nope", "type": "complaint"}], "d", NOW)
    with pytest.raises(FeedbackError, match="at"):
        funnelstream_feedback({"email": "a@b.co", "type": "complaint", "at": "yesterday"}, "d", NOW)


def test_sns_signatures_version_1_and_2_verify_and_tampering_fails() -> None:
    signer = SnsSigner()
    for version in ("1", "2"):
        signed = signer.sign(sns_envelope(ses_bounce("a@b.co")), version)
        assert sns_signature_valid(signed, signer.pem)
        tampered = {**signed, "Message": orjson.dumps(ses_bounce("victim@b.co")).decode()}
        assert not sns_signature_valid(tampered, signer.pem)
    confirmation = signer.sign(sns_envelope(None, "SubscriptionConfirmation"))
    assert sns_signature_valid(confirmation, signer.pem)
    assert not sns_signature_valid(confirmation, SnsSigner().pem)


def test_only_amazon_sns_hosts_may_supply_the_certificate() -> None:
    assert sns_cert_url_allowed("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem")
    assert sns_cert_url_allowed("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem")
    for url in (
        "http://sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.io/x.pem",
        "https://evil.io/sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com/x.txt",
    ):
        assert not sns_cert_url_allowed(url)


def test_sendgrid_ecdsa_signature() -> None:
    signer = SendGridSigner()
    body = orjson.dumps(sendgrid_events("a@b.co"))
    headers = signer.headers(body)
    signature = headers["X-Twilio-Email-Event-Webhook-Signature"]
    timestamp = headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    assert sendgrid_signature_valid(signer.public_key, signature, timestamp, body)
    assert not sendgrid_signature_valid(signer.public_key, signature, timestamp, body + b" ")
    assert not sendgrid_signature_valid(signer.public_key, signature, "1772359201", body)
    assert not sendgrid_signature_valid(SendGridSigner().public_key, signature, timestamp, body)
    assert not sendgrid_signature_valid(signer.public_key, None, timestamp, body)
