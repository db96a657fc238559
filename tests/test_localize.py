"""The regression locator as pure functions: hunks of a prompt change, reverting them, ddmin."""

from __future__ import annotations

import itertools

import pytest

from gpo_action.optimize.localize import (Hunk, apply_reverts, evaluation_bound, locate, location_sentence,
                                          split_hunks)
from gpo_action.templates import parse_template

BASE = ("Classify the sentiment of the review below.\n"
        "Answer with one word: positive or negative.\n\n"
        "Review: {{ review }}\n"
        "Be careful with sarcasm and irony.\n")
HEAD = ("Decide the sentiment of the customer review below.\n"
        "Answer with one word: positive or negative, and nothing else.\n\n"
        "Review: {{ review }}\n"
        "Be very careful with irony.\n")

PAIRS = [
    (BASE, HEAD),
    ("a b c", "x b c"),                      # an edit at the start
    ("a b c", "a b x"),                      # at the end
    ("a b c", "a b c d e"),                  # pure insertion at the end
    ("a b c d", "b c"),                      # deletions at both ends
    ("", "new text"),
    ("old text", ""),
    ("one  two\nthree", "one two\n\nthree"),  # whitespace only
    ("x {{ v }} y z w q r s t", "x {{ v }} Y z w q r S t u"),
]


@pytest.mark.parametrize("base,head", PAIRS)
def test_reverting_every_hunk_gives_the_base_and_none_the_head(base, head):
    hunks = split_hunks(base, head)
    assert apply_reverts(base, head, hunks, set()) == head
    assert apply_reverts(base, head, hunks, {h.index for h in hunks}) == base
    for hunk in hunks:  # each hunk's spans hold its own texts
        assert base[hunk.old_start:hunk.old_end] == hunk.old
        assert head[hunk.new_start:hunk.new_end] == hunk.new


def test_every_subset_of_reverts_keeps_the_variables_and_only_touches_its_hunks():
    hunks = split_hunks(BASE, HEAD)
    assert len(hunks) == 4
    head_vars = parse_template(HEAD, "p.txt", "text").variables
    for size in range(len(hunks) + 1):
        for chosen in itertools.combinations(range(len(hunks)), size):
            text = apply_reverts(BASE, HEAD, hunks, set(chosen))
            assert parse_template(text, "p.txt", "text").variables == head_vars
            for hunk in hunks:
                assert (hunk.old in text) if hunk.index in chosen else (hunk.new in text)


def test_edits_close_together_are_one_hunk_and_far_apart_are_two():
    base, head = "a b c d e f g h", "A b C d e f g H"
    assert [h.render() for h in split_hunks(base, head, join_words=3)] == ["[-a-]{+A+} b [-c-]{+C+}", "[-h-]{+H+}"]
    assert len(split_hunks(base, head, join_words=1)) == 3
    assert len(split_hunks(base, head, join_words=10)) == 1
    assert split_hunks("same text", "same text") == ()
    assert isinstance(split_hunks(base, head)[0], Hunk)


def _scorer(harmful):
    """A score as a task model would give it: 1.0 minus 0.3 for each harmful predicate that holds of
    the hunks left in place (not reverted), plus a log of the subsets asked about."""
    asked = []

    def evaluate(reverted):
        asked.append(reverted)
        kept = frozenset(range(h)) - reverted
        return 1.0 - 0.3 * sum(1 for harms in harmful if harms(kept))

    h = 0

    def bind(hunks):
        nonlocal h
        h = hunks
        return evaluate

    return bind, asked


@pytest.mark.parametrize("h", [2, 3, 5, 8, 16, 33])
def test_one_culprit_among_many_hunks_is_found_within_the_bound(h):
    for culprit in range(h):
        bind, asked = _scorer([lambda kept, c=culprit: c in kept])
        found = locate(h, bind(h), max_drop=0.02)
        assert found.status == "located" and found.culprits == (culprit,)
        assert found.evaluations == len(set(asked)) == len(asked) <= evaluation_bound(h)
        assert found.base_score == 1.0 and found.head_score == pytest.approx(0.7) and found.fixed_score == 1.0


@pytest.mark.parametrize("h", [4, 8, 13])
def test_two_culprits_each_harmful_in_different_halves_are_both_found(h):
    first, second = 1, h - 2
    bind, asked = _scorer([lambda kept: first in kept, lambda kept: second in kept])
    found = locate(h, bind(h), max_drop=0.02)
    assert found.status == "located" and found.culprits == (first, second)
    assert found.evaluations <= evaluation_bound(h)


def test_two_edits_harmful_only_together_revert_one_of_them():
    bind, _ = _scorer([lambda kept: {2, 5} <= kept])
    found = locate(8, bind(8), max_drop=0.02)
    assert found.status == "located" and found.culprits in ((2,), (5,))
    assert found.fixed_score == 1.0


def test_a_drop_no_proper_subset_explains_is_said_to_be_the_whole_change():
    h = 6
    bind, _ = _scorer([lambda kept: bool(kept)])   # any edit at all harms: no culprit to name
    found = locate(h, bind(h), max_drop=0.02)
    assert found.status == "whole-change" and not found.found
    assert found.evaluations <= evaluation_bound(h)
    hunks = split_hunks("a b c d e f g h i j k l m n o p q r", "A b c D e f G h i J k l M n o P q r")
    assert "no part of the change explains the drop" in location_sentence(found, [h.render() for h in hunks])


def test_no_drop_within_max_drop_is_not_searched():
    found = locate(5, lambda reverted: 0.99 if not reverted else 1.0, max_drop=0.02)
    assert found.status == "no-drop" and found.evaluations == 2 and found.culprits == ()


def test_a_probe_that_cannot_be_scored_stops_the_search_with_what_is_known():
    for allowed in range(0, 8):
        calls = []

        def evaluate(reverted):
            if len(calls) >= allowed:
                return None
            calls.append(reverted)
            return 1.0 if 3 in reverted else 0.5

        found = locate(8, evaluate, max_drop=0.02)
        assert len(calls) == found.evaluations <= allowed
        if found.status == "stopped":
            assert found.reason
            if found.culprits:   # what it returns restores the score
                assert 3 in found.culprits
        else:
            assert found.culprits == (3,)


def test_the_sentence_names_the_culprit_and_counts_the_other_edits():
    hunks = split_hunks(BASE, HEAD)
    bind, _ = _scorer([lambda kept: 2 in kept])
    found = locate(len(hunks), bind(len(hunks)), max_drop=0.02)
    assert location_sentence(found, [h.render() for h in hunks]) == ("the drop comes from this edit: `[-negative.-]{+negative, and nothing "
                                               "else.+}`; your other 3 edits do not change the score")
    bind, _ = _scorer([lambda kept: 0 in kept, lambda kept: 3 in kept])
    found = locate(len(hunks), bind(len(hunks)), max_drop=0.02)
    assert location_sentence(found, [h.render() for h in hunks]) == (
        "the drop comes from these 2 edits: `[-Classify-]{+Decide+}`; `[-careful with sarcasm "
        "and-]{+very careful with+}`; your other 2 edits do not change the score")


def test_the_bound_formula():
    assert [evaluation_bound(h) for h in (1, 2, 3, 4, 8)] == [2, 6, 14, 18, 50]
