"""Secrets and signatures are compared in constant time: by inspecting every comparison in the product's
code, and by watching `hmac.compare_digest` being the path each verifier takes."""

from __future__ import annotations

import ast
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.ingest import shopify
from shared import security, signing

ROOT = Path(__file__).resolve().parents[2]
# Comparisons that look like secret checks and are not, with the reason.
NOT_SECRET_CHECKS = {
    ("services/console/screens_auth.py", "password != fields.get('password2', '')"): "a user's two typings",
    ("services/nurture/consent/pages_api.py", "email_digest(email) == link.email_digest"): "inside a verified token",
    ("shared/tokens.py", "base64_encode(base64_decode(signature)).decode() == signature"): "canonical-encoding check",
}
SECRET_WORDS = ("secret", "signature", "hmac", "digest", "mac", "token", "sig", "password")


def _names(node: ast.expr) -> str:
    return " ".join(
        n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else ""
        for n in ast.walk(node)
        if isinstance(n, ast.Name | ast.Attribute)
    ).lower()


def _is_plain(node: ast.expr) -> bool:
    """Comparing against a literal, None or a length reveals nothing about a secret; `Model.column == x`
    builds SQL (a lookup by hash), it compares nothing in Python."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id[:1].isupper():
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("len", "type")


def comparisons_in(source: str, where: str) -> list[str]:
    """`==`/`!=` comparisons in `source` where a side names a secret, a signature or a token."""
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if not isinstance(node, ast.Compare) or not any(isinstance(o, ast.Eq | ast.NotEq) for o in node.ops):
            continue
        sides = [node.left, *node.comparators]
        if any(_is_plain(s) for s in sides):
            continue
        words = " ".join(_names(s) for s in sides).replace("_", " ").split()
        expression = ast.unparse(node)
        if (where, expression) not in NOT_SECRET_CHECKS and any(w in words for w in SECRET_WORDS):
            found.append(f"{where}:{node.lineno}: {expression}")
    return found


def variable_time_comparisons() -> list[str]:
    found = []
    for folder in ("services", "shared", "funnelstream"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += comparisons_in(path.read_text(), str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_a_signature_compared_with_equals() -> None:
    assert comparisons_in("def ok(given_sig, expected):\n    return given_sig == expected\n", "x.py")
    assert comparisons_in("if request.headers['x-token'] != secret: pass", "x.py")
    assert not comparisons_in("if token == '' or Source.token_hash == digest: pass", "x.py")


def test_no_secret_or_signature_is_compared_with_equals() -> None:
    found = variable_time_comparisons()
    assert not found, "compare these with hmac.compare_digest:\n" + "\n".join(found)


class Spy:
    def __init__(self) -> None:
        self.calls = 0
        self.real: Callable[[Any, Any], bool] = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls += 1
        return self.real(a, b)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    watcher = Spy()
    monkeypatch.setattr(hmac, "compare_digest", watcher)
    return watcher


def test_webhook_signatures_go_through_compare_digest(spy: Spy) -> None:
    body, now = b'{"type":"track"}', 1_800_000_000
    header = signing.sign("whsec_a", body, now)
    assert signing.verify(header, body, ["whsec_b", "whsec_a"], now)
    assert spy.calls >= 1
    before = spy.calls
    assert not signing.verify(header.replace("v1=", "v1=0"), body, ["whsec_a"], now)
    assert spy.calls > before  # a wrong signature is refused by the same constant-time compare


def test_shopify_admin_token_and_form_secrets_go_through_compare_digest(spy: Spy) -> None:
    body = b'{"id": 1}'
    good = shopify.hmac_header("shpss_x", body)
    assert shopify.signature_valid(good, body, ["shpss_x"])
    assert not shopify.signature_valid(good[:-2] + "AA", body, ["shpss_x"])
    assert security.same_secret("admin-token", "admin-token") and not security.same_secret("admin-tokeN", "admin-token")
    assert spy.calls >= 4


def test_the_replay_window_refuses_old_and_future_timestamps() -> None:
    body, now, secret = b"{}", 1_800_000_000, "whsec_a"
    for t, ok in ((now, True), (now - 300, True), (now - 301, False), (now + 301, False), (now - 86_400, False)):
        header = signing.sign(secret, body, t)
        assert signing.verify(header, body, [secret], now) is ok, t
    # The timestamp is signed: moving it into the window breaks the signature.
    old = signing.sign(secret, body, now - 3600)
    mac = old.split("v1=")[1]
    assert not signing.verify(f"t={now},v1={mac}", body, [secret], now)
    assert mac == hmac.new(secret.encode(), f"{now - 3600}.".encode() + body, hashlib.sha256).hexdigest()
