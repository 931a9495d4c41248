"""No handler turns an unexpected error into a 4xx: a bug must show as a 5xx (and in the logs and the
fuzzing), never as the client's fault. Checked over the product's code: no `except Exception` (or bare
`except`, or `BaseException`) answers with a 4xx, and no app-wide handler maps every exception to one."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from funnelstream.apps import create_app
from shared.settings import AdminSettings, IngestSettings

ROOT = Path(__file__).resolve().parents[2]
BROAD = {"Exception", "BaseException"}


def _catches_everything(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(n, ast.Name) and n.id in BROAD for n in names)


def _client_error(node: ast.AST) -> bool:
    """A call with a 4xx status: HTTPException(404, …), IngestError(400, …), JSONResponse(…, status_code=400)."""
    if not isinstance(node, ast.Call):
        return False
    values = [*node.args[:2], *(k.value for k in node.keywords if k.arg in ("status_code", "status"))]
    return any(isinstance(v, ast.Constant) and isinstance(v.value, int) and 400 <= v.value < 500 for v in values)


def hidden_errors(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, where)):
        if isinstance(node, ast.ExceptHandler) and _catches_everything(node):
            for inner in ast.walk(ast.Module(body=node.body, type_ignores=[])):
                if isinstance(inner, ast.Raise) and inner.exc is not None and _client_error(inner.exc):
                    found.append(f"{where}:{inner.lineno}: {ast.unparse(inner)}")
                elif isinstance(inner, ast.Return) and inner.value is not None and _client_error(inner.value):
                    found.append(f"{where}:{inner.lineno}: {ast.unparse(inner)}")
    return found


def test_the_scan_finds_a_broad_except_answering_4xx() -> None:
    bad = "try:\n    work()\nexcept Exception:\n    raise HTTPException(400, 'bad input')\n"
    assert hidden_errors(bad, "x.py")
    bad_return = "try:\n    work()\nexcept:\n    return JSONResponse({}, status_code=422)\n"
    assert hidden_errors(bad_return, "x.py")
    narrow = "try:\n    work()\nexcept ValueError:\n    raise HTTPException(400, 'bad input')\n"
    assert not hidden_errors(narrow, "x.py")
    unavailable = "try:\n    work()\nexcept Exception:\n    raise HTTPException(503, 'retry')\n"
    assert not hidden_errors(unavailable, "x.py")


def test_no_broad_except_in_the_product_answers_4xx() -> None:
    found = []
    for folder in ("services", "shared", "funnelstream"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += hidden_errors(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "unexpected errors answered as the client's fault:\n" + "\n".join(found)


def test_no_app_wide_handler_catches_every_exception() -> None:
    kwargs: dict[str, Any] = {"database_url": "postgresql://unused/unused", "kafka_bootstrap_servers": "unused:9092"}
    app = create_app(
        ingest=IngestSettings(**kwargs, secret_key="k"), admin=AdminSettings(**kwargs, secret_key="k", admin_token="t")
    )
    broad = [c for c in app.exception_handlers if c in (Exception, BaseException) or c == 500]
    assert not broad, broad
