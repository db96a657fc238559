"""Values as promptfoo's JavaScript sees them, so that same-named assertions agree with promptfoo.

promptfoo compares an assertion's value with the output through JavaScript's `String(value)`, its
`JSON.parse` and `JSON.stringify`, its `/\\s/` and `.trim()`, and splits a `contains-any` string
with its own comma rule. Python's equivalents differ at the edges (`str(1.0)` is "1.0" where
`String(1.0)` is "1"; `json.loads` takes `NaN`), so the checkers use these:

    js_string(1.0) == "1"; js_string(True) == "true"; js_string(1e21) == "1e+21"
    js_json({"a": [1.0, "x"]}) == '{"a":[1,"x"]}'
    split_commas('a, "b, c", d') == ["a", "b, c", "d"]
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

# JavaScript's WhiteSpace and LineTerminator code points: what `/\s/` matches and `.trim()` removes.
JS_SPACES = frozenset("\t\n\v\f\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff"
                      + "".join(chr(c) for c in range(0x2000, 0x200B)))
_SAFE_INT = 2 ** 53


def js_number(x: float | int) -> str:
    """ECMAScript's Number::toString(x): the shortest digits that round-trip, laid out as JS does."""
    if isinstance(x, int) and abs(x) < _SAFE_INT:
        return str(x)
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    _, digits_t, exponent = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    k = len(digits)
    n = exponent + len(digits_t)  # the decimal point sits after n digits
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
        text = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + text


def js_string(value: Any) -> str:
    """JavaScript's `String(value)` for a value read from YAML or JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return ",".join("" if item is None else js_string(item) for item in value)
    return "[object Object]"


def js_json(value: Any) -> str:
    """JavaScript's `JSON.stringify(value)` (compact; numbers as JS writes them; NaN as null)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return "null" if isinstance(value, float) and not math.isfinite(value) else js_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{js_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(js_json(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def js_parse_json(text: str) -> Any:
    """JavaScript's `JSON.parse`: Python's parser without its extensions (NaN, Infinity)."""
    return json.loads(text, parse_constant=_no_constant)


def js_trim(text: str) -> str:
    """JavaScript's `String.prototype.trim`."""
    start, end = 0, len(text)
    while start < end and text[start] in JS_SPACES:
        start += 1
    while end > start and text[end - 1] in JS_SPACES:
        end -= 1
    return text[start:end]


def split_commas(value: str) -> list[str]:
    """promptfoo's split of a `contains-any`/`-all` string: fields between commas, each trimmed;
    repeated commas add nothing; a field that starts with `"` is quoted (a comma inside is kept;
    `\\"`, `\\\\` and `""` are escapes) and must be followed by a comma or the end. ValueError for an
    unterminated quote or text after a closing quote."""
    fields: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i] in JS_SPACES or value[i] == ","):
            i += 1
        if i >= n:
            break
        if value[i] != '"':
            start = i
            while i < n and value[i] != ",":
                i += 1
            fields.append(js_trim(value[start:i]))
            continue
        i += 1
        field: list[str] = []
        while True:
            if i >= n:
                raise ValueError("unterminated quoted field in the comma-separated value")
            ch = value[i]
            if ch == "\\" and i + 1 < n and value[i + 1] in '"\\':
                field.append(value[i + 1])
                i += 2
            elif ch == '"' and i + 1 < n and value[i + 1] == '"':
                field.append('"')
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                field.append(ch)
                i += 1
        fields.append("".join(field))
        while i < n and value[i] in JS_SPACES:
            i += 1
        if i < n and value[i] != ",":
            raise ValueError(f"expected a comma after the quoted field {''.join(field)!r}")
    return fields


def utf16_units(text: str) -> str:
    """`text` with every character outside the BMP as its two UTF-16 surrogates: the units a
    JavaScript regex without the `u` flag matches one by one (so `.` takes half an emoji)."""
    if all(ord(ch) <= 0xFFFF for ch in text):
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(chr(0xD800 + (code >> 10)))
            out.append(chr(0xDC00 + (code & 0x3FF)))
        else:
            out.append(ch)
    return "".join(out)


__all__ = ["JS_SPACES", "js_json", "js_number", "js_parse_json", "js_string", "js_trim", "split_commas", "utf16_units"]
