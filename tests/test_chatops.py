"""`/gpo` commands read from a comment's body (pure): what counts as a command, what is text."""

from __future__ import annotations

import pytest

from gpo_action.github.chatops import COMMANDS, Command, clamp, help_text, parse_command
from gpo_action.github.event import parse_event


@pytest.mark.parametrize("body, expected", [
    ("/gpo check", Command("check", text="/gpo check")),
    ("Looks odd.\n\n/gpo fix\nthanks", Command("fix", text="/gpo fix")),
    ("/gpo fix budget=$0.50 steps=2", Command("fix", 0.5, 2, "/gpo fix budget=$0.50 steps=2")),
    ("/gpo fix budget=1", Command("fix", 1.0, None, "/gpo fix budget=1")),
    ("  /gpo   apply  ", Command("apply", text="/gpo   apply")),
    ("/GPO EXPLAIN", None),                                            # the prefix is lower case, as written
    ("/gpo Explain", Command("explain", text="/gpo Explain")),
    ("/gpo check\r\n/gpo fix", Command("check", text="/gpo check")),   # the first command line counts
])
def test_a_line_starting_with_gpo_is_a_command(body, expected):
    assert parse_command(body) == expected


@pytest.mark.parametrize("body", [
    "",
    "please run /gpo check",                       # not at the start of a line
    "> /gpo fix",                                  # quoted from someone else
    ">/gpo fix",
    "```\n/gpo apply\n```",                        # inside a fenced code block
    "~~~text\n/gpo apply\n~~~",
    "````\n```\n/gpo apply\n```\n````",            # a longer fence is closed only by as long a fence
    "    /gpo apply",                              # an indented code block
    "\t/gpo apply",
    "/gpocheck",
    "/gpo-check",
])
def test_quoted_fenced_indented_or_inline_gpo_is_text(body):
    assert parse_command(body) is None


@pytest.mark.parametrize("body", [
    "<!--\n/gpo apply\n-->",                                   # an HTML comment: GitHub shows nothing
    "Thanks! <!-- a note\n/gpo apply\n-->",
    "<!-- one --> <!-- two\n/gpo apply\n-->",
    "<pre>\n/gpo apply\n</pre>",                               # preformatted text, not a command line
    "<PRE class=x>\n/gpo apply\n</PRE>",
    "text <pre>\n/gpo apply\n</pre>",
    "<textarea>\n/gpo apply\n</textarea>",
    "<script>\n/gpo apply\n</script>",
    "<style>\n/gpo apply\n</style>",
    "> I said earlier\n/gpo apply",                             # a lazy continuation: shown inside the quote
    "> > nested\n/gpo apply",
    "> quoted\nstill the quote\n/gpo apply",
])
def test_hidden_or_quoted_gpo_lines_are_text(body):
    assert parse_command(body) is None


@pytest.mark.parametrize("body", [
    "<!-- a note -->\n/gpo check",                              # closed on its own line
    "<!--\nnote\n-->\n/gpo check",
    "<pre>x</pre>\n/gpo check",
    "> quoted\n\n/gpo check",                                   # a blank line ends the quote
    ">\n/gpo check",                                            # an empty quote line has no paragraph to continue
    "<preface>\n/gpo check",                                    # not a <pre> tag
])
def test_a_command_after_a_closed_comment_pre_or_quote_counts(body):
    assert parse_command(body).name == "check"


@pytest.mark.parametrize("body", [
    '[a]: https://example.com "a title\n/gpo apply\n"',        # a link definition's title, not shown
    "[a]: https://example.com (a title\n/gpo apply\n)",
    '<span title="\n/gpo apply\n">x</span>',                  # an attribute, not text
    '<img alt="\n/gpo apply\n" src="x.png">',
    "```\n``` not-a-closer\n/gpo apply\n```",                  # an info string does not close a fence
    "- > quoted in a list\n/gpo apply",                           # a lazy continuation of that quote
    "1. > quoted in a list\n/gpo apply",
])
def test_gpo_lines_in_titles_attributes_open_fences_and_list_quotes_are_text(body):
    assert parse_command(body) is None


@pytest.mark.parametrize("body", [
    '[a]: https://example.com "a title"\n/gpo check',
    '<span title="x">y</span>\n/gpo check',
    "```\ncode\n```  \n/gpo check",
    "- a list item\n\n/gpo check",
])
def test_a_command_after_a_closed_title_tag_fence_or_list_counts(body):
    assert parse_command(body).name == "check"


def test_a_command_after_a_closed_fence_counts():
    assert parse_command("```\n/gpo apply\n```\n/gpo check").name == "check"


@pytest.mark.parametrize("body, problem", [
    ("/gpo", "no command given"),
    ("/gpo merge", "unknown command 'merge'"),
    ("/gpo fix budget=lots", "/gpo fix does not take 'budget=lots'"),
    ("/gpo fix steps=0", "/gpo fix does not take 'steps=0'"),
    ("/gpo check now", "/gpo check takes no arguments"),
])
def test_an_unknown_or_malformed_command_is_unknown_with_its_problem(body, problem):
    command = parse_command(body)
    assert command.name == "unknown" and command.problem == problem


def test_the_help_reply_lists_every_known_command():
    text = help_text("unknown command 'merge'")
    assert text.startswith("gpo-action did not understand that: unknown command 'merge'.")
    for name in COMMANDS:
        assert f"- `/gpo {name}`:" in text
    assert parse_command(text) is None             # our own reply never reads as a command


def test_clamp_lowers_and_never_raises():
    assert clamp(None, None, 2.0, 6) == (2.0, 6, ())
    assert clamp(0.5, 2, 2.0, 6) == (0.5, 2, ())
    usd, steps, notes = clamp(5.0, 10, 2.0, 6)
    assert (usd, steps) == (2.0, 6) and len(notes) == 2
    assert notes[0].startswith("budget=$5 asked; the base's gpo.yaml allows at most $2, so $2 was used")
    assert notes[1].startswith("steps=10 asked; the base's gpo.yaml allows at most 6, so at most 6 ran")


# ---- the events ---------------------------------------------------------------------------
def _issue_comment(pull_request: bool = True) -> dict:
    issue = {"number": 2, **({"pull_request": {"url": "https://api.github.com/repos/o/r/pulls/2"}}
                             if pull_request else {})}
    return {"action": "created", "issue": issue, "repository": {"full_name": "o/r"},
            "comment": {"id": 11, "body": "/gpo check", "user": {"login": "octocat", "type": "User"}}}


def test_an_issue_comment_on_a_pull_request_carries_its_comment():
    event = parse_event("issue_comment", _issue_comment())
    assert event.comment.number == 2 and event.comment.kind == "issue" and event.comment.author == "octocat"
    assert event.pull_request is None                # the head and base come from the API


def test_an_issue_comment_on_a_plain_issue_is_no_command():
    assert parse_event("issue_comment", _issue_comment(pull_request=False)).comment is None


def test_a_review_comment_answers_in_its_thread():
    payload = {"action": "created", "repository": {"full_name": "o/r"}, "pull_request": {"number": 3},
               "comment": {"id": 21, "in_reply_to_id": 20, "body": "/gpo explain", "user": {"login": "a"}}}
    comment = parse_event("pull_request_review_comment", payload).comment
    assert (comment.kind, comment.number, comment.id, comment.thread) == ("review", 3, 21, 20)
