"""The two Jinja2 sandboxes templates run in, and the compiled-template cache.

Template authors are admins, but what templates print (traits, event properties) comes from visitors:
it is data, never markup or code. So: autoescape in HTML with no way to turn it off (`|safe` and
`{% autoescape %}` are refused), an immutable sandbox (no attribute starting with `_`, no mutating
methods), strict undefined variables, and caps on ranges, repetition and powers.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

from jinja2 import StrictUndefined, Template, nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

Flavour = Literal["html", "text"]

MAX_REPEAT = 100_000  # characters or items a `*` may produce
MAX_EXPONENT = 1_000
CACHE_SIZE = 1_024  # compiled templates kept per process (a template has up to three parts)


class Data(dict[str, Any]):
    """A mapping handed to templates, labelled with its path (`lead.traits`) for error messages; the label
    starts with `_`, so templates cannot see it."""

    __slots__ = ("_path",)

    def __init__(self, path: str, items: Mapping[str, Any]) -> None:
        super().__init__()
        self._path = path
        for key, value in items.items():
            self[str(key)] = wrap(f"{path}.{key}", value)


def wrap(path: str, value: Any) -> Any:
    """A fresh copy of `value` with every mapping labelled; renders never share or change caller data."""
    if isinstance(value, Mapping):
        return Data(path, value)
    if isinstance(value, list | tuple):
        return [wrap(f"{path}[{i}]", item) for i, item in enumerate(value)]
    return value


class _Undefined(StrictUndefined):
    """StrictUndefined naming the variable as the template wrote it: "'lead' has no attribute 'x'"."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        owner = self._undefined_obj
        if self._undefined_hint or not isinstance(owner, Data):
            return super()._undefined_message
        name = self._undefined_name
        what = f"attribute {name!r}" if isinstance(name, str) else f"element {name!r}"
        message = f"{owner._path!r} has no {what}"
        if owner._path.startswith("lead.traits"):
            message += " (leads differ in traits: write `| default('…')` or test `is defined`)"
        elif owner._path.startswith("extra"):
            message += " (`extra` is the step's data; give `sample_extra` to validate against)"
        return message


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Keys win over dict methods, so a trait or cart field named `items` or `values` reads as data.
        if isinstance(obj, Data) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        where = obj._path if isinstance(obj, Data) else f"a {type(obj).__name__!r} object"
        return self.undefined(
            f"the sandbox refuses access to {attribute!r} of {where}", obj=obj, name=attribute, exc=SecurityError
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _repeat_size(left, right) > MAX_REPEAT:
            raise SecurityError(f"the sandbox refuses a repetition longer than {MAX_REPEAT}")
        if operator == "**" and isinstance(right, int) and right > MAX_EXPONENT:
            raise SecurityError(f"the sandbox refuses exponents above {MAX_EXPONENT}")
        return super().call_binop(context, operator, left, right)


def _repeat_size(left: Any, right: Any) -> int:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            return len(seq) * times
    return 0


def _finalize(value: Any) -> Any:
    # An unknown first name prints as nothing, not "None".
    return "" if value is None else value


def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=_Undefined, finalize=_finalize, keep_trailing_newline=True)
    # In HTML, everything printed is escaped; there is no way to print a visitor's text as markup.
    del env.filters["safe"]
    return env


ENVIRONMENTS: dict[Flavour, _Sandbox] = {"html": _environment(True), "text": _environment(False)}

_cache: OrderedDict[tuple[Flavour, bytes], Template] = OrderedDict()
_lock = threading.Lock()


def compiled(source: str, flavour: Flavour) -> Template:
    """The template for `source`, compiled once per content hash; TemplateSyntaxError if it is not valid."""
    key = (flavour, hashlib.blake2b(source.encode(), digest_size=20).digest())
    with _lock:
        template = _cache.get(key)
        if template is not None:
            _cache.move_to_end(key)
            return template
    env = ENVIRONMENTS[flavour]
    tree = env.parse(source)
    _refuse_unsupported(tree)
    template = env.template_class.from_code(env, env.compile(tree), env.make_globals(None), None)
    with _lock:
        _cache[key] = template
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return template


def _refuse_unsupported(tree: nodes.Template) -> None:
    for node in tree.find_all((nodes.EvalContextModifier, nodes.Include, nodes.Import, nodes.FromImport)):
        if isinstance(node, nodes.EvalContextModifier):
            message = "`{% autoescape %}` is not allowed: HTML parts always escape what they print"
        else:
            message = "templates cannot include or import other templates"
        raise TemplateSyntaxError(message, node.lineno)
    for extends in tree.find_all(nodes.Extends):
        raise TemplateSyntaxError("templates cannot extend other templates", extends.lineno)
    for used in tree.find_all(nodes.Filter):
        if used.name == "safe":
            raise TemplateSyntaxError(
                "the `safe` filter is not available: HTML parts always escape what they print", used.lineno
            )


def template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on (the innermost, e.g. inside a macro), if any."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
