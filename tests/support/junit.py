"""Validate JUnit XML against the vendored Jenkins schema (tests/data/junit/junit-10.xsd)."""

from __future__ import annotations

from pathlib import Path

SCHEMA = Path(__file__).resolve().parent.parent / "data" / "junit" / "junit-10.xsd"


def validated(text: str):
    """The parsed document (an lxml element) once `text` is well-formed and valid; AssertionError
    naming the schema's complaints otherwise."""
    from lxml import etree

    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    document = etree.fromstring(text.encode("utf-8"))
    assert schema.validate(document), "\n".join(str(e) for e in schema.error_log)
    return document
