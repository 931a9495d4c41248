"""Feedback payloads as the providers send them (shapes from their documentation), and signers for tests."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from services.nurture.consent.provider_auth import sns_string_to_sign


def now_iso() -> str:
    """Feedback arrives after the consent it overrides: sample events happen now, not at a fixed date."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ses_bounce(email: str, *, permanent: bool = True, feedback_id: str = "fb-1") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent" if permanent else "Transient",
            "bounceSubType": "General" if permanent else "MailboxFull",
            "bouncedRecipients": [
                {"emailAddress": email, "action": "failed", "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
            ],
            "timestamp": now_iso(),
            "feedbackId": feedback_id,
        },
        "mail": {"timestamp": now_iso(), "messageId": "ses-msg-1", "destination": [email]},
    }


def ses_complaint(email: str, feedback_id: str = "fb-c1") -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": email}],
            "timestamp": now_iso(),
            "feedbackId": feedback_id,
            "complaintFeedbackType": "abuse",
        },
        "mail": {"messageId": "ses-msg-2"},
    }


def sns_envelope(message: dict[str, Any] | None, kind: str = "Notification", msg_id: str = "sns-1") -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "Type": kind,
        "MessageId": msg_id,
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
        "Message": orjson.dumps(message).decode() if message is not None else "You have chosen to subscribe…",
        "Timestamp": "2026-03-01T10:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
    }
    if kind != "Notification":
        envelope["Token"] = "tok"
        envelope["SubscribeURL"] = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok"
    return envelope


def sendgrid_events(email: str) -> list[dict[str, Any]]:
    # SendGrid's timestamps are whole seconds; the event comes after the consent imported this second.
    base = {"email": email, "timestamp": int(datetime.now(UTC).timestamp()) + 1, "sg_message_id": "sg-msg-1.filter"}
    return [
        {**base, "event": "delivered", "sg_event_id": "ev-0"},
        {**base, "event": "bounce", "type": "blocked", "sg_event_id": "ev-1", "reason": "rate limited"},
        {**base, "event": "bounce", "type": "bounce", "sg_event_id": "ev-2", "status": "5.1.1"},
        {**base, "event": "spamreport", "sg_event_id": "ev-3"},
    ]


def postmark_bounce(email: str, kind: str = "HardBounce", bounce_id: int = 42) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "ID": bounce_id,
        "Type": kind,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": "pm-msg-1",
        "Description": "The server was unable to deliver your message",
        "Email": email,
        "From": "news@example.com",
        "BouncedAt": now_iso().replace("Z", "4567Z"),  # Postmark sends 7 fractional digits
        "Inactive": True,
        "MessageStream": "broadcast",
    }


def postmark_complaint(email: str) -> dict[str, Any]:
    return {**postmark_bounce(email, "SpamComplaint", 43), "RecordType": "SpamComplaint"}


class SnsSigner:
    """A certificate and key standing in for Amazon's: signs envelopes as SNS does."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(1)
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = cert.public_bytes(serialization.Encoding.PEM)

    def sign(self, envelope: dict[str, Any], version: str = "1") -> dict[str, Any]:
        signed = {**envelope, "SignatureVersion": version}
        data = sns_string_to_sign(signed)
        assert data is not None
        algorithm: hashes.HashAlgorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303
        signed["Signature"] = base64.b64encode(self.key.sign(data, padding.PKCS1v15(), algorithm)).decode()
        return signed


class SendGridSigner:
    """An ECDSA key pair like SendGrid's signed Event Webhook: the public key is what SendGrid shows."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: str = "1772359200") -> dict[str, str]:
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
