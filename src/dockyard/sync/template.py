"""Go template expressions in regsync configs: `{{file "/run/secrets/token"}}`,
`{{env "HUB_USER"}}`, `{{ .Sync.Source }}`, pipelines (`{{env "X" | default "y" | lower}}`).

A subset of Go's text/template big enough for configuration values: actions with `{{-`/`-}}`
trimming and comments, string (interpreted and raw), number and boolean literals, fields of the
data (`.Sync.Target`), parenthesized pipelines, and regclient's template functions `env`,
`file`, `default`, `lower`, `upper`, `split`, `join`, `json`, `jsonPretty`, plus Go's `print`,
`printf`, `println`, `len`, `index`, `eq`, `ne`, `not`, `and`, `or`. Control structures
(`if`, `range`, `with`), variables and `time` are not supported; each is refused by name.

Unlike regclient, `file` fails when it cannot read the file (regclient quietly expands to an
empty string, which turns a missing secret into anonymous access).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OPEN, CLOSE = "{{", "}}"
UNSUPPORTED_FUNCTIONS = frozenset({"time", "printPretty"})
UNSUPPORTED_KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)


class TemplateError(ValueError):
    """A template that cannot be parsed or expanded; the message says what and where."""


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, number, bool, nil, ident, field, lparen, rparen, pipe, dot
    value: Any
    text: str


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?))
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<declare>:?=)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<pipe>\|)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _go_unquote(literal: str) -> str:
    """A Go interpreted string literal's value."""
    body = literal[1:-1]
    simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a"}
    simple |= {"b": "\b", "f": "\f", "v": "\v"}
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        code = body[i + 1 : i + 2]
        if code in simple:
            out.append(simple[code])
            i += 2
        elif code in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[code]
            digits = body[i + 2 : i + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise TemplateError(f"invalid escape \\{code}{digits} in {literal}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        elif code.isdigit():
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise TemplateError(f"invalid octal escape in {literal}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise TemplateError(f"unknown escape \\{code} in {literal}")
    return "".join(out)


def _tokens(action: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(action):
        kind = match.lastgroup or "other"
        text = match.group()
        if kind == "space":
            continue
        if kind == "string":
            tokens.append(_Token("string", _go_unquote(text), text))
        elif kind == "raw":
            tokens.append(_Token("string", text[1:-1], text))
        elif kind == "number":
            value: Any = (
                int(text, 0)
                if re.fullmatch(r"[+-]?(0[xX][0-9a-fA-F]+|[0-9]+)", text)
                else float(text)
            )
            tokens.append(_Token("number", value, text))
        elif kind == "field":
            tokens.append(_Token("field", tuple(text[1:].split(".")), text))
        elif kind == "ident" and text in ("true", "false"):
            tokens.append(_Token("bool", text == "true", text))
        elif kind == "ident" and text == "nil":
            tokens.append(_Token("nil", None, text))
        elif kind == "ident" and text in UNSUPPORTED_KEYWORDS:
            raise TemplateError(f"template action {text!r} is not supported in sync configs")
        elif kind in ("variable", "declare"):
            raise TemplateError(f"template variables ({text!r}) are not supported in sync configs")
        elif kind == "other":
            raise TemplateError(f"unexpected {text!r} in template action")
        else:
            tokens.append(_Token(kind, text, text))
    return tokens


# --- functions -------------------------------------------------------------------------------


def _file(path: Any) -> str:
    name = _text(path)
    try:
        return Path(name).expanduser().read_text().strip()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TemplateError(f'{{{{file "{name}"}}}}: cannot read the file: {reason}') from None
    except UnicodeDecodeError:
        raise TemplateError(f'{{{{file "{name}"}}}}: the file is not UTF-8 text') from None


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or value in ([], {})


def _default(fallback: Any, value: Any = None) -> Any:
    return fallback if _is_zero(value) else value


def _text(value: Any) -> str:
    """A value as Go's fmt prints it with %v."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{_text(k)}:{_text(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def _print(*args: Any) -> str:
    # fmt.Sprint: spaces between operands when neither is a string
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _text(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(form: Any, *args: Any) -> str:
    fmt = _text(form)
    values = list(args)
    out: list[str] = []
    pos = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if not values:
            out.append(f"%!{verb}(MISSING)")
            continue
        value = values.pop(0)
        if verb == "q":
            rendered = json.dumps(_text(value), ensure_ascii=False)
        elif verb in "dxXob" and isinstance(value, int):
            rendered = format(value, {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb])
        elif verb in "feEgG" and isinstance(value, int | float):
            spec = f".{precision}{verb}" if precision else ("f" if verb == "f" else verb)
            rendered = format(float(value), spec)
        elif (verb == "t" and isinstance(value, bool)) or verb in "svd":
            rendered = _text(value)
        else:
            raise TemplateError(f"printf verb %{verb} is not supported in sync configs")
        if width and width != "*":
            align = "<" if "-" in flags else ">"
            fill = "0" if "0" in flags and align == ">" else " "
            rendered = format(rendered, f"{fill}{align}{width}")
        out.append(rendered)
    out.append(fmt[pos:])
    if values:
        out.append("%!(EXTRA " + ", ".join(_text(v) for v in values) + ")")
    return "".join(out)


def _index(collection: Any, *keys: Any) -> Any:
    value = collection
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            raise TemplateError(f"index: no {key!r} in {_text(value)}") from None
    return value


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


def _json_pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    # regclient's pkg/template
    "default": _default,
    "env": lambda name: os.environ.get(_text(name), ""),
    "file": _file,
    "join": lambda items, sep: _text(sep).join(_text(i) for i in items),
    "json": _json,
    "jsonPretty": _json_pretty,
    "lower": lambda s: _text(s).lower(),
    "split": lambda s, sep: _text(s).split(_text(sep)),
    "upper": lambda s: _text(s).upper(),
    # Go's text/template builtins
    "and": lambda *a: next((v for v in a if _is_zero(v)), a[-1] if a else None),
    "or": lambda *a: next((v for v in a if not _is_zero(v)), a[-1] if a else None),
    "not": lambda v: _is_zero(v),
    "eq": lambda a, *others: any(a == o for o in others),
    "ne": lambda a, b: a != b,
    "len": lambda v: len(v),
    "index": _index,
    "print": _print,
    "printf": _printf,
    "println": lambda *a: " ".join(_text(v) for v in a) + "\n",
}


# --- parsing and evaluation ------------------------------------------------------------------


class _Evaluator:
    def __init__(self, tokens: list[_Token], data: Mapping[str, Any]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.data = data

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self) -> Any:
        value = self.command(None, first=True)
        while (token := self.peek()) is not None and token.kind == "pipe":
            self.pos += 1
            value = self.command(value, first=False)
        return value

    def command(self, piped: Any, *, first: bool) -> Any:
        start = self.peek()
        if start is None or start.kind in ("pipe", "rparen"):
            raise TemplateError("missing command in template pipeline")
        if start.kind == "ident":
            self.pos += 1
            if start.value in UNSUPPORTED_FUNCTIONS:
                raise TemplateError(
                    f"template function {start.value!r} is not supported in sync configs"
                )
            function = FUNCTIONS.get(start.value)
            if function is None:
                raise TemplateError(
                    f"unknown template function {start.value!r} (known: "
                    + ", ".join(sorted(FUNCTIONS))
                    + ")"
                )
            args = self.operands()
            if not first:
                args.append(piped)
            try:
                return function(*args)
            except TemplateError:
                raise
            except TypeError:
                raise TemplateError(
                    f"template function {start.value!r} called with {len(args)} argument(s)"
                ) from None
        operands = self.operands()
        if len(operands) != 1 or not first:
            raise TemplateError(f"cannot call {start.text!r}: it is not a function")
        return operands[0]

    def operands(self) -> list[Any]:
        values: list[Any] = []
        while (token := self.peek()) is not None and token.kind not in ("pipe", "rparen"):
            self.pos += 1
            if token.kind == "lparen":
                values.append(self.pipeline())
                closing = self.peek()
                if closing is None or closing.kind != "rparen":
                    raise TemplateError("unclosed '(' in template action")
                self.pos += 1
            elif token.kind == "field":
                values.append(self.field(token))
            elif token.kind == "dot":
                values.append(dict(self.data))
            elif token.kind == "ident":
                raise TemplateError(
                    f"function {token.value!r} used as an argument: put it in parentheses"
                )
            else:
                values.append(token.value)
        return values

    def field(self, token: _Token) -> Any:
        value: Any = self.data
        for name in token.value:
            if not isinstance(value, Mapping) or name not in value:
                known = ", ".join("." + k for k in value) if isinstance(value, Mapping) else ""
                where = f" (known here: {known})" if known else ""
                raise TemplateError(f"no field {token.text!r} in this template{where}")
            value = value[name]
        return value


def expand(template: str, data: Mapping[str, Any] | None = None) -> str:
    """`template` with every action replaced by its value; TemplateError saying what failed."""
    if OPEN not in template:
        return template
    out: list[str] = []
    pos = 0
    trim_next = False
    while True:
        start = template.find(OPEN, pos)
        text = template[pos:] if start < 0 else template[pos:start]
        if trim_next:
            text = text.lstrip()
        if start < 0:
            out.append(text)
            break
        inner_start = start + len(OPEN)
        if template.startswith("- ", inner_start) or template.startswith("-\t", inner_start):
            text = text.rstrip()
            inner_start += 1
        out.append(text)
        end = template.find(CLOSE, inner_start)
        if end < 0:
            raise TemplateError(f"unclosed action {template[start : start + 20]!r}...")
        inner_end = end
        trim_next = False
        if (
            inner_end > inner_start
            and template[inner_end - 1] == "-"
            and (template[inner_end - 2 : inner_end - 1].isspace())
        ):
            inner_end -= 1
            trim_next = True
        action = template[inner_start:inner_end].strip()
        pos = end + len(CLOSE)
        if action.startswith("/*"):
            if not action.endswith("*/"):
                raise TemplateError("unclosed comment in template")
            continue
        tokens = _tokens(action)
        if not tokens:
            raise TemplateError("empty template action {{}}")
        evaluator = _Evaluator(tokens, data or {})
        value = evaluator.pipeline()
        leftover = evaluator.peek()
        if leftover is not None:
            raise TemplateError(f"unexpected {leftover.text!r} in template action")
        out.append(_text(value))
    return "".join(out)
