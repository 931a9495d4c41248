"""Provider signatures on feedback webhooks: Amazon SNS messages and SendGrid's signed Event Webhook.

Both need the `cryptography` package (RSA and ECDSA). It is imported lazily: when it is missing, SNS
verification is refused (503, logged) unless FUNNELSTREAM_SNS_VERIFY_SIGNATURES is false, and SendGrid
verification is refused when a verification key is configured. Every feedback endpoint also requires
the source's webhook secret, so turning a signature check off never leaves an endpoint open.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

SNS_CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
SNS_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
MAX_CERTS = 32
CERT_TIMEOUT_SECONDS = 5.0


class SignatureUnavailable(Exception):
    """The check cannot run here (no `cryptography`, or the certificate could not be fetched)."""


def crypto_available() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def sns_cert_url_allowed(url: str) -> bool:
    """Only Amazon's own SNS hosts, over https, may supply the certificate a message is checked with."""
    parts = urlsplit(url)
    return parts.scheme == "https" and bool(SNS_CERT_HOST.match(parts.hostname or "")) and parts.path.endswith(".pem")


def sns_string_to_sign(message: dict[str, Any]) -> bytes | None:
    """The canonical text SNS signs: `Key\\nValue\\n` for the type's fields present, in order."""
    fields = SNS_FIELDS.get(str(message.get("Type")))
    if fields is None:
        return None
    parts = []
    for key in fields:
        value = message.get(key)
        if value is None:
            if key == "Subject":
                continue
            return None
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode()


def sns_signature_valid(message: dict[str, Any], cert_pem: bytes) -> bool:
    """True when `Signature` is the certificate's RSA signature (SignatureVersion 1: SHA1, 2: SHA256)."""
    try:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as exc:
        raise SignatureUnavailable("the cryptography package is not installed") from exc
    data = sns_string_to_sign(message)
    version = message.get("SignatureVersion")
    algorithm: hashes.HashAlgorithm = hashes.SHA256() if version == "2" else hashes.SHA1()  # noqa: S303 - SNS v1
    if data is None or version not in ("1", "2") or not isinstance(message.get("Signature"), str):
        return False
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
        key = x509.load_pem_x509_certificate(cert_pem).public_key()
    except (binascii.Error, ValueError):
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


class SnsCertificates:
    """Signing certificates fetched from Amazon once per URL and kept in memory (they rotate rarely)."""

    def __init__(self) -> None:
        self._pems: dict[str, bytes] = {}

    async def get(self, url: str) -> bytes:
        if not sns_cert_url_allowed(url):
            raise ValueError("SigningCertURL is not an Amazon SNS certificate URL")
        pem = self._pems.get(url)
        if pem is not None:
            return pem
        try:
            async with httpx.AsyncClient(timeout=CERT_TIMEOUT_SECONDS, follow_redirects=False) as client:
                response = await client.get(url)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("fetching the SNS signing certificate %s failed: %s", url, exc)
            raise SignatureUnavailable("the SNS signing certificate could not be fetched") from None
        if len(self._pems) >= MAX_CERTS:
            self._pems.clear()
        self._pems[url] = response.content
        return response.content


def sendgrid_signature_valid(public_key: str, signature: str | None, timestamp: str | None, body: bytes) -> bool:
    """SendGrid's signed Event Webhook: ECDSA (P-256, SHA-256) over timestamp + raw body, with the
    verification key from SendGrid's settings (base64 DER, as SendGrid shows it)."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_der_public_key
    except ImportError as exc:
        raise SignatureUnavailable("the cryptography package is not installed") from exc
    if not signature or not timestamp or len(signature) > 512 or len(timestamp) > 32:
        return False
    try:
        key = load_der_public_key(base64.b64decode(public_key))
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
