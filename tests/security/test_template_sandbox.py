"""The known Jinja sandbox escapes, sent through the real template API (validate, create, preview) in the
HTML part (autoescaped sandbox) and the subject (text sandbox). Payloads: pallets/jinja
tests/test_security.py, the advisories CVE-2024-56326 (str.format reached indirectly), CVE-2025-27516
(`|attr("format")`), CVE-2024-56201 (a template name read as code: templates here have no names and may not
import), and the usual SSTI chains. Every one must be refused or render without reaching Python internals."""

from __future__ import annotations

import pytest

from tests.security.conftest import Edge

UPSTREAM_CVE_2024_56326 = """{% set
    ns = namespace(run="{0.__call__.__builtins__[__import__]}".format)
%}
{{ ns | run(not_here) }}
"""
UPSTREAM_CVE_2025_27516 = """{{ "{0.__call__.__builtins__[__import__]}"
      | attr("format")(not_here) }}"""

ESCAPES = {
    # pallets/jinja tests/test_security.py
    "subclasses": "{{ lead.__class__.__subclasses__() }}",
    "str-mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "attr-subclasses": '{{ lead|attr("__class__")|attr("__subclasses__")() }}',
    "list-append": "{{ [].append(23) }}",
    "dict-clear": "{{ {1: 2}.clear() }}",
    "for-attribute-target": "{% for item.attribute in [1] %}...{% endfor %}",
    "format-class": '{{ "a{0.__class__}b".format(42) }}',
    "format-map-class": '{{ "a{x.__class__}b".format_map({"x": 42}) }}',
    # CVE-2024-56326: the upstream test (it needs a custom filter), then the same reference without one
    "cve-2024-56326-upstream": UPSTREAM_CVE_2024_56326,
    # (`lipsum` is a function: its __globals__ would be the way out)
    "cve-2024-56326-namespace": '{% set ns = namespace(run="{0.__globals__}".format) %}{{ ns.run(lipsum) }}',
    "cve-2024-56326-set": '{% set f = "{0.__globals__}".format %}{{ f(lipsum) }}',
    # CVE-2025-27516: the upstream test, then with an argument that exists
    "cve-2025-27516-upstream": UPSTREAM_CVE_2025_27516,
    "cve-2025-27516": '{{ "{0.__globals__}" | attr("format")(lipsum) }}',
    "format-map-attr": '{{ "{x.__globals__}" | attr("format_map")({"x": lipsum}) }}',
    # CVE-2024-56201: upstream's "{bad}"-named template imports a macro
    "cve-2024-56201": "{% from 'macro' import m %}{{ m() }}",
    "include": "{% include '/etc/passwd' %}",
    "extends": "{% extends 'base.html' %}",
    # Server-side template injection chains
    "self-globals": "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('id').read() }}",
    "self-context": "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    "cycler": "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "joiner": "{{ joiner.__init__.__globals__ }}",
    "namespace": "{{ namespace.__init__.__globals__ }}",
    "range-func": "{{ range.__self__ }}",
    "request-config": "{{ config.items() }}{{ request.environ }}",
    "getattr-dunder": "{{ lead['__class__'] }}",
    "mro-index": "{{ ()|attr('__class__')|attr('__base__')|attr('__subclasses__')() }}",
    # Resource exhaustion
    "repeat": "{{ 'a' * 1000000000 }}",
    "power": "{{ 10 ** 100000000 }}",
    "range": "{{ range(1000000000)|list|length }}",
    "safe": "{{ lead.first_name|safe }}",
    "autoescape-off": "{% autoescape false %}{{ lead.first_name }}{% endautoescape %}",
}

# What would show if an escape reached Python's internals.
LEAKS = ("<class", "built-in", "<module", "<function", "__import__", "uid=", "os.py", "globals", "environ")


@pytest.mark.parametrize("part", ["html", "subject"])
async def test_sandbox_escapes_are_refused_or_inert(edge: Edge, part: str) -> None:
    escaped = []
    for name, payload in ESCAPES.items():
        parts = {"subject": "Hello", "html": "<p>Hello</p>", part: payload}
        r = await edge.admin("POST", "/api/templates/validate", json=parts)
        assert r.status_code in (200, 400), (name, r.status_code, r.text)
        answer = r.json()
        if r.status_code == 400 or not answer["valid"]:
            continue  # refused, with the problem named
        rendered = " ".join(answer["preview"].values())
        if any(leak in rendered for leak in LEAKS) or len(rendered) > 100_000:
            escaped.append(f"{name}: {rendered[:200]!r}")
    assert not escaped, "sandbox escapes rendering Python internals:\n" + "\n".join(escaped)


async def test_the_format_escapes_are_named_as_refused_by_the_sandbox(edge: Edge) -> None:
    """Not refused by accident (say, an undefined name): the problem says the sandbox refused it."""
    named = ("cve-2025-27516", "format-map-attr", "cve-2024-56326-namespace", "cve-2024-56326-set", "cycler", "lipsum")
    for name in (*named, "format-class", "subclasses"):
        r = await edge.admin("POST", "/api/templates/validate", json={"subject": "x", "html": ESCAPES[name]})
        answer = r.json()
        assert r.status_code == 200 and not answer["valid"], (name, answer)
        message = answer["problems"][0]["message"].lower()
        assert "unsafe" in message or "sandbox" in message or "refuses" in message, (name, message)


async def test_a_saved_template_cannot_escape_at_preview_either(edge: Edge) -> None:
    """Saving runs the same checks: an escape is refused before it is stored, so no lead ever renders it."""
    for name in ("cve-2025-27516", "cve-2024-56326-set", "self-globals", "cve-2024-56201"):
        body = {"name": f"t-{name}", "subject": "x", "html": ESCAPES[name]}
        r = await edge.admin("POST", "/api/templates", json=body)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.json()["problems"], name
