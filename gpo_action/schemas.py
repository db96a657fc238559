"""JSON values as the checkers see them: the JSON-schema subset of `is-json`, JSON equality, and
the short quoted form a value takes in a verdict's reason.

The subset is enough for "these keys, of these types" (no jsonschema dependency): `type`,
`required`, `properties`, `items`, `enum`, `additionalProperties`; the annotations `$schema`,
`$id`, `$comment`, `title`, `description`, `default` and `examples` are accepted and ignored.
Anything else is refused by `check_schema` (at suite load), never silently skipped.
"""

from __future__ import annotations

import json
from typing import Any, Callable

SCHEMA_KEYWORDS = frozenset({"type", "required", "properties", "items", "enum", "additionalProperties"})
SCHEMA_NOTES = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "examples"})
SCHEMA_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def same_json(a: Any, b: Any) -> bool:
    """JSON equality that keeps true apart from 1 (Python's == does not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) and isinstance(b, str):  # a str subclass (filerefs.FileText) is a string too
        return a == b
    return type(a) is type(b) and a == b


def short_json(value: Any, limit: int = 80) -> str:
    """A value for a message: a string as is, anything else as JSON, cut to `limit` characters, quoted."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def check_schema(schema: Any, where: str, type_: str) -> None:
    """Raise ValueError for a schema that uses keywords this subset cannot honour.

    `where` is the JSON path shown in messages ("$" at the top); `type_` the assertion type."""
    if not isinstance(schema, dict):
        raise ValueError(f"assertion {type_!r}: schema at {where} must be a mapping")
    unknown = set(schema) - SCHEMA_KEYWORDS - SCHEMA_NOTES
    if unknown:
        raise ValueError(f"assertion {type_!r}: schema keyword(s) {', '.join(sorted(unknown))} at {where} are not "
                         f"supported (supported: {', '.join(sorted(SCHEMA_KEYWORDS))})")
    types = schema.get("type", [])
    for name in types if isinstance(types, list) else [types]:
        if name not in SCHEMA_TYPES:
            raise ValueError(f"assertion {type_!r}: unknown schema type {name!r} at {where}")
    for key, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.{key}", type_)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            check_schema(schema[key], f"{where}.{key}", type_)


def schema_problem(data: Any, schema: dict, where: str) -> str | None:
    """The first way `data` breaks a (checked) schema, as "<path> should ...", or None when it fits."""
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(SCHEMA_TYPES[name](data) for name in names):
            return f"{where} should be {' or '.join(names)}, got {type(data).__name__}"
    if "enum" in schema and not any(same_json(data, option) for option in schema["enum"]):
        return f"{where} should be one of {short_json(schema['enum'])}"
    if isinstance(data, dict):
        for key in schema.get("required", []):
            if key not in data:
                return f"{where} lacks required key {key!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in data.items():
            sub = properties.get(key, extra)
            if sub is False:
                return f"{where} has unexpected key {key!r}"
            if isinstance(sub, dict) and (problem := schema_problem(item, sub, f"{where}.{key}")):
                return problem
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(data):
            if problem := schema_problem(item, schema["items"], f"{where}[{index}]"):
                return problem
    return None


__all__ = [
    "SCHEMA_KEYWORDS", "SCHEMA_NOTES", "SCHEMA_TYPES", "check_schema", "same_json", "schema_problem", "short_json",
]
