"""The one registry helper: register, look up, unregister, and errors that list the known names."""

import pytest

from gpo_action.assertions import CHECKERS, Assertion, Verdict, check, checker
from gpo_action.registry import Registry


def test_registered_entries_are_looked_up_and_listed():
    table: Registry[int] = Registry("part")
    assert table.register("b", 2) == 2
    table.register("a", 1)
    assert table.lookup("a") == 1 and table["b"] == 2
    assert table.names() == ["a", "b"] and dict(table) == {"b": 2, "a": 1} and len(table) == 2
    assert "a" in table and "c" not in table


def test_a_taken_name_is_refused_and_keeps_its_entry():
    table: Registry[str] = Registry("part")
    table.register("a", "first")
    with pytest.raises(ValueError, match="part 'a' is already registered"):
        table.register("a", "second")
    assert table.lookup("a") == "first"


def test_an_unknown_name_lists_the_known_ones():
    table: Registry[int] = Registry("part")
    with pytest.raises(ValueError, match=r"unknown part 'x' \(known: none\)"):
        table.lookup("x")
    table.register("b", 2)
    table.register("a", 1)
    with pytest.raises(ValueError, match=r"unknown part 'x' \(known: a, b\)"):
        table.lookup("x")


def test_unregister_removes_the_entry_and_frees_the_name():
    table: Registry[int] = Registry("part")
    table.register("a", 1)
    assert table.unregister("a") == 1
    assert "a" not in table and table.names() == []
    with pytest.raises(ValueError, match="unknown part 'a'"):
        table.unregister("a")
    table.register("a", 3)
    assert table.lookup("a") == 3


def test_a_checker_registered_and_unregistered_through_the_public_route():
    before = CHECKERS.names()

    @checker("test-registry-echo")
    def echo(output, value, assertion):
        return Verdict(output == value, 1.0 if output == value else 0.0)

    try:
        assert check(Assertion(type="test-registry-echo", value="hi"), "hi").passed
        assert not check(Assertion(type="not-test-registry-echo", value="hi"), "hi").passed
    finally:
        CHECKERS.unregister("test-registry-echo")
    assert CHECKERS.names() == before
    with pytest.raises(ValueError, match="unknown assertion type 'test-registry-echo'; known types: answer-relevance, bleu, contains"):
        check(Assertion(type="test-registry-echo", value="hi"), "hi")
