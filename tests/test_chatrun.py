"""`/gpo` commands end to end: `gpo-action action` on issue_comment and pull_request_review_comment
payloads (tests/data/github), a real git repository with a bare remote, the GitHub stand-in and the
scripted OpenAI-compatible server (the world of tests/test_action.py)."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import zlib

import pytest
from gpo_action.report.markdown import MARKER
from gpo_action.report.replies import DENIED_MARKER
from tests.support.github_server import GitHubServer
from tests.test_action import BAD, GOOD, KEY, LABELS, PATH, PAYLOADS, REPO, World, git, reply
from tests.test_action import world  # noqa: F401  (the fixture: test_action's world, on this module's github)

WRITER, READER = "maintainer-mo", "drive-by-dan"


@pytest.fixture
def github():
    with GitHubServer(repository=REPO) as server:
        server.set_permission(WRITER, "write")
        server.set_permission(READER, "read")
        yield server


def command(world: World, body: str, *, login: str = WRITER, review: bool = False, key: str | None = KEY,
            action: str = "created"):
    """A comment on pull request 2 (in the conversation, or on its diff), and the Action run it
    triggers: (result, the comment's stand-in record, outputs)."""
    github = world.github
    if review:
        posted = github.add_review_comment(2, body, path=PATH, line=1, login=login)
        payload = json.loads((PAYLOADS / "pull_request_review_comment.created.payload.json").read_text())
        payload["pull_request"]["number"] = 2
    else:
        posted = github.add_issue_comment(2, body, login=login)
        payload = json.loads((PAYLOADS / "issue_comment.created.payload.json").read_text())
        payload["issue"]["number"] = 2
    payload["action"] = action
    payload["comment"].update(id=posted["id"], body=body, user={**payload["comment"]["user"], "login": login})
    event = world.tmp / f"comment-{posted['id']}.json"
    event.write_text(json.dumps(payload))
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request_review_comment" if review else "issue_comment",
           "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": REPO, "GITHUB_API_URL": github.url,
           "GITHUB_OUTPUT": str(world.tmp / "output"), "GITHUB_STEP_SUMMARY": str(world.tmp / "summary.md"),
           "INPUT_GITHUB-TOKEN": github.token, "INPUT_CONFIG": "gpo.yaml"}
    result = world.invoke(env, key)
    return result, posted, (world.tmp / "output").read_text()


def sticky(github: GitHubServer) -> list[dict]:
    return [c for c in github.issue_comments(2) if MARKER in c["body"] and c["user"]["login"] == github.login]


def replies(github: GitHubServer) -> list[dict]:
    return [c for c in github.issue_comments(2) if MARKER not in c["body"] and c["user"]["login"] == github.login]


def test_check_compares_the_head_read_from_the_api_and_answers_in_the_sticky_comment(world, github, openai_server):
    result, posted, outputs = command(world, "Could you look at this?\n/gpo check")
    assert result.exit_code == 1, result.output                          # the regression's verdict
    [reaction] = github.reactions()
    assert (reaction["on"], reaction["comment_id"], reaction["content"]) == ("issue", posted["id"], "eyes")
    [permission] = github.requests_to("GET", "/collaborators/")
    assert permission.path == f"/repos/{REPO}/collaborators/{WRITER}/permission"
    assert github.requests.index(permission) < github.requests.index(github.requests_to("POST", "/reactions")[0])
    assert len(github.requests_to("GET", r"/pulls/2$")) == 2              # the head read, then read again before delivery
    [comment] = sticky(github)
    body = comment["body"]
    assert "| triage | 🔴 regressed | 100.0 | 33.3 |" in body
    assert f"*This version was asked for by @{WRITER} via `/gpo check`.*" in body
    assert github.reviews(2) == [] and "Fix budget" not in body           # compare only
    assert "verdicts=triage=regressed" in outputs and replies(github) == []


def test_fix_within_a_lower_budget_and_asking_more_than_the_base_is_clamped(world, github):
    result, _, _ = command(world, "/gpo fix budget=$5 steps=3")
    assert result.exit_code == 1, result.output
    [comment] = sticky(github)
    body = html.unescape(comment["body"])
    assert "Fix budget for this pull request: 200 calls, $1.00, 120 s" in body        # the base's $1, not $5
    assert "budget=$5 asked; the base's gpo.yaml allows at most $1, so $1 was used" in body
    assert "steps=3 asked; the base's gpo.yaml allows at most 1, so at most 1 ran" in body
    assert "via `/gpo fix budget=$5 steps=3`" in body and "Suggested in" in body
    [review] = github.reviews(2)
    assert review["commit_id"] == world.head
    received = fix_stage(world)                                          # what the fix stage ran under, not the words
    assert received["total"]["max_usd"] == 1.0 and received["fixes"][0]["share"]["max_usd"] == 1.0
    assert received["fixes"][0]["result"]["steps"] == 1
    assert " budget=1 steps=1 " in body                                  # and what the proposal records


def fix_stage(world: World) -> dict:
    """The fix stage's report of the last run (.gpo/report.json): its caps, each suite's share and run."""
    return json.loads((world.work / ".gpo" / "report.json").read_text())["fixes"]


def test_fix_can_lower_the_budget(world, github):
    result, _, _ = command(world, "/gpo fix budget=$0.25")
    assert result.exit_code == 1, result.output
    body = html.unescape(sticky(github)[0]["body"])
    assert "Fix budget for this pull request: 200 calls, $0.25, 120 s" in body and "asked; the base" not in body
    received = fix_stage(world)
    assert received["total"]["max_usd"] == 0.25 and received["fixes"][0]["share"]["max_usd"] == 0.25


def test_apply_commits_the_fix_the_comment_proposed_to_the_head_branch(world, github, openai_server):
    proposed, _, _ = command(world, "/gpo fix")
    assert proposed.exit_code == 1, proposed.output
    assert f"<!-- gpo-action:proposed head={world.head} fix=" in sticky(github)[0]["body"]
    calls = openai_server.total
    result, _, _ = command(world, "/gpo apply")
    assert result.exit_code == 1, result.output
    assert openai_server.total == calls                                  # no search; the comparison from the cache
    tip = world.remote_log()[0]
    assert tip != world.head and world.remote_log()[1] == world.head
    assert git(world.remote, "show", f"{tip}:{PATH}") + "\n" == BAD.replace("ticket.", f"ticket as {LABELS}.")
    assert git(world.remote, "log", "-1", "--format=%B", tip).rstrip().endswith("Gpo-Action: fix")
    [comment] = sticky(github)
    assert f"Committed as `{tip[:12]}` to `feature`" in comment["body"] and "via `/gpo apply`" in comment["body"]
    assert len(github.reviews(2)) == 1                                   # the fix's review; apply added none


def test_apply_with_no_fix_proposed_for_this_head_commits_nothing(world, github, openai_server):
    result, _, _ = command(world, "/gpo apply")
    assert result.exit_code == 0 and openai_server.total == 0 and world.remote_log()[0] == world.head
    [answer] = replies(github)
    assert f"proposes no fix for the head {world.head[:12]}" in answer["body"] and "`/gpo fix` first" in answer["body"]


def _carried(body: str) -> tuple[dict, str]:
    """The proposal data the sticky comment carries (decoded), and the marker it sits in."""
    [marker] = re.findall(r"<!-- gpo-action:proposed [^>]*-->", body)
    data = re.search(r" data=([A-Za-z0-9+/=]+)", marker).group(1)
    return json.loads(zlib.decompress(base64.b64decode(data))), marker


def _recarry(github: GitHubServer, comment: dict, report: dict, *, rehash: bool) -> None:
    """Edit the sticky comment to carry `report` (as a writer editing the bot's comment could),
    with the marker's hash made to match it or left as it was."""
    from gpo_action.fixes import FixReport
    from gpo_action.proposals import proposal_hash

    _, marker = _carried(comment["body"])
    data = base64.b64encode(zlib.compress(json.dumps(report).encode())).decode()
    new = re.sub(r" data=[A-Za-z0-9+/=]+", f" data={data}", marker)
    if rehash:
        new = re.sub(r" fix=[0-9a-f]{16}", f" fix={proposal_hash(FixReport.from_dict(report))}", new)
    github.edit_issue_comment(comment["id"], comment["body"].replace(marker, new))


def test_apply_refuses_a_proposal_whose_text_is_not_the_one_its_hash_names(world, github):
    command(world, "/gpo fix")
    [comment] = sticky(github)
    report, _ = _carried(comment["body"])
    report["fixes"][0]["result"]["best"] = BAD.replace("ticket.", "ticket. Ignore the cases.")
    _recarry(github, comment, report, rehash=False)
    result, _, _ = command(world, "/gpo apply")
    assert world.remote_log()[0] == world.head                           # nothing pushed
    [answer] = replies(github)
    text = html.unescape(answer["body"])
    assert "the proposed text in the comment does not match its hash" in text and "Comment `/gpo fix` again" in text


def test_apply_keeps_the_optimizers_check_a_carried_fix_that_drops_a_variable_is_refused(world, github):
    command(world, "/gpo fix")
    [comment] = sticky(github)
    report, _ = _carried(comment["body"])
    report["fixes"][0]["result"]["best"] = f"Classify the support ticket as {LABELS}.\nReply with the category only.\n"
    _recarry(github, comment, report, rehash=True)                       # the hash matches: the gate still holds
    command(world, "/gpo apply")
    assert world.remote_log()[0] == world.head
    [answer] = replies(github)
    assert "fails the optimizer&#39;s check &#40;variables&#41;: nothing was committed" in answer["body"]


def test_apply_commits_exactly_the_proposed_text_without_searching_again(world, github, openai_server):
    """The proposal was made with a lower budget; apply runs with the base's full one, in another cache
    scope (the comment's), where a search would find another prompt: apply searches nothing."""
    proposed_text = BAD.replace("ticket.", f"ticket as {LABELS}.")
    result, _, _ = command(world, "/gpo fix budget=$0.1")
    assert result.exit_code == 1, result.output
    body = sticky(github)[0]["body"]
    marker = re.search(r"<!-- gpo-action:proposed [^>]*-->", body).group(0)
    assert f"head={world.head} " in marker and f"base={world.base} " in marker and " budget=0.1 " in marker
    assert _carried(body)[0]["fixes"][0]["result"]["best"] == proposed_text
    asked: list[str] = []

    def elsewhere(request: dict, index: int) -> str:                     # a search now finds another prompt
        text = "\n".join(str(m.get("content") or "") for m in request["messages"])
        if "Wrap the new prompt" in text:
            asked.append(text)
            return f"<START>\nSort the ticket into {LABELS}.\nTicket: {{{{ ticket }}}}\nOne word.\n<END>"
        return reply(request, index)

    openai_server.set_reply(elsewhere)
    for name in [p for p in (world.work / ".gpo").iterdir() if p.name.startswith("cache.sqlite")]:
        name.unlink()                                                    # another cache scope: nothing cached
    shutil.rmtree(world.work / ".gpo" / "fix", ignore_errors=True)
    applied, _, _ = command(world, "/gpo apply")
    assert applied.exit_code == 1, applied.output
    assert asked == []                                                   # no optimizer call: nothing searched
    tip = world.remote_log()[0]
    assert tip != world.head and git(world.remote, "show", f"{tip}:{PATH}") + "\n" == proposed_text
    assert f"Committed as `{tip[:12]}` to `feature`" in sticky(github)[0]["body"]


def test_apply_after_the_head_moved_says_the_proposal_is_for_another_head(world, github, openai_server):
    command(world, "/gpo fix")
    proposed_for = world.head
    newer = world.commit(BAD.replace("Reply briefly.", "Reply briefly, please."), "reword")
    github.push(2, {PATH: (GOOD, BAD.replace("Reply briefly.", "Reply briefly, please."))}, head_sha=newer)
    calls = openai_server.total
    result, _, _ = command(world, "/gpo apply")
    assert result.exit_code == 0 and openai_server.total == calls and world.remote_log()[0] == newer
    [answer] = replies(github)
    assert (f"proposed for the head {proposed_for[:12]}, and the head is now {newer[:12]}" in answer["body"]
            and "Comment `/gpo fix` again" in answer["body"])


def test_apply_on_a_fork_falls_back_to_the_suggestion_review(world, github):
    github.add_pull(2, {PATH: (GOOD, BAD)}, head_sha=world.head, base_sha=world.base, head_ref="feature",
                    head_repo="forker/Hello-World")
    github.set_permission(WRITER, "maintain")
    proposed, _, _ = command(world, "/gpo fix")
    assert proposed.exit_code == 1, proposed.output
    [review] = github.reviews(2)
    result, _, _ = command(world, "/gpo apply")
    assert result.exit_code == 1, result.output
    assert world.remote_log()[0] == world.head                           # nothing pushed to a fork
    assert github.reviews(2) == [review]                                 # the review with the suggestion stands
    [suggestion] = github.review_comments(2)
    assert suggestion["body"] == f"```suggestion\nClassify the support ticket as {LABELS}.\n```"
    body = sticky(github)[0]["body"]
    assert "via `/gpo apply`" in body and "Already suggested" in body and "Committed" not in body


def test_explain_replies_in_the_review_thread_with_the_flipped_cases_and_the_culprit_edit(world, github):
    result, posted, _ = command(world, "/gpo explain", review=True)
    assert result.exit_code == 1, result.output
    [reaction] = github.reactions()
    assert (reaction["on"], reaction["comment_id"]) == ("review", posted["id"])
    [answer] = [c for c in github.review_comments(2) if c.get("in_reply_to_id") == posted["id"]]
    text = html.unescape(answer["body"])
    assert f"`/gpo explain` for @{WRITER}, head `{world.head[:12]}`" in text
    assert "- triage: regressed, 100.0 → 33.3, 20 flipped cases" in text
    assert "**Located:**" in text and "ticket as billing, bug or other." in text      # the edit behind the drop
    assert "passed on base, fails on head" in text
    assert sticky(github) == [] and github.reviews(2) == []              # explain only replies


def test_an_unknown_command_gets_the_list_of_known_ones(world, github, openai_server):
    result, _, _ = command(world, "/gpo merge please")
    assert result.exit_code == 0, result.output
    [answer] = replies(github)
    assert "unknown command 'merge'" in html.unescape(answer["body"]) and "`/gpo explain`" in answer["body"]
    assert openai_server.total == 0 and sticky(github) == []


def test_an_unknown_commands_words_are_escaped_in_the_reply(world, github):
    command(world, '/gpo <img src="https://evil.example/x">')
    [answer] = replies(github)
    assert "<img" not in answer["body"] and "unknown command" in answer["body"]


def test_a_gpo_line_in_the_pull_requests_prompt_or_commit_message_is_text(world, github):
    hostile = BAD + "/gpo apply\n"
    head = world.commit(hostile, "/gpo apply\n\n/gpo apply")
    github.push(2, {PATH: (GOOD, hostile)}, head_sha=head)
    result, _, _ = command(world, "/gpo check")
    assert result.exit_code == 1, result.output
    assert world.remote_log()[0] == head                                 # nothing committed: check was asked
    assert "via `/gpo check`" in sticky(github)[0]["body"] and github.reviews(2) == []


def test_a_commenter_without_write_permission_gets_no_run_and_one_reply(world, github, openai_server):
    first, _, _ = command(world, "/gpo fix", login=READER)
    second, _, _ = command(world, "/gpo apply", login=READER)
    assert first.exit_code == second.exit_code == 0
    assert openai_server.total == 0                                      # no run at all
    assert github.reactions() == [] and sticky(github) == [] and world.remote_log()[0] == world.head
    [answer] = replies(github)
    assert DENIED_MARKER in answer["body"] and f"@{READER}" in answer["body"] and "write permission" in answer["body"]
    assert len(github.requests_to("GET", f"/collaborators/{READER}/permission")) == 2


def test_a_non_writers_unknown_command_gets_the_denial_not_the_help_and_no_action(world, github, openai_server):
    result, _, _ = command(world, "/gpo merge please", login=READER)
    assert result.exit_code == 0 and openai_server.total == 0
    assert github.reactions() == [] and sticky(github) == [] and github.reviews(2) == []
    [answer] = replies(github)
    assert DENIED_MARKER in answer["body"] and "did not understand" not in answer["body"]


def test_author_association_in_the_payload_is_not_trusted(world, github, openai_server):
    # the payload says OWNER (as GitHub's example does); the API says this user is no collaborator
    result, _, _ = command(world, "/gpo check", login="someone-else")
    assert result.exit_code == 0 and openai_server.total == 0
    assert [r.status for r in github.requests_to("GET", "/collaborators/")] == [404]


def test_a_comment_without_a_command_an_edit_and_a_plain_issue_are_ignored(world, github, openai_server):
    assert command(world, "> /gpo fix\nI would not do that")[0].exit_code == 0
    assert command(world, "/gpo fix", action="edited")[0].exit_code == 0
    assert openai_server.total == 0 and github.requests_to("GET", "/collaborators/") == []


def test_a_head_that_moves_during_the_run_is_not_delivered(world, github):
    moved = "c" * 40
    github.push_on_get(2, {PATH: (GOOD, BAD + "More.\n")}, head_sha=moved, after=1)   # pushed as the run starts
    result, _, _ = command(world, "/gpo fix")
    assert sticky(github) == [] and github.reviews(2) == []              # nothing delivered on a stale head
    [answer] = replies(github)
    text = html.unescape(answer["body"])
    assert f"moved from `{world.head[:12]}` to `{moved[:12]}` during this run: nothing was delivered" in text
    assert "Comment `/gpo fix` again" in text and result.exit_code == 1


def test_a_pull_request_into_another_branch_than_the_default_gets_no_run(world, github, openai_server):
    """The pull request's author picks its base: retargeted to a stale branch, that branch's gpo.yaml
    would be the policy a maintainer's command runs under."""
    github.add_pull(2, {PATH: (GOOD, BAD)}, head_sha=world.head, base_sha=world.base, head_ref="feature",
                    base_ref="release-0.9")
    result, _, _ = command(world, "/gpo fix")
    assert result.exit_code == 0 and openai_server.total == 0
    assert sticky(github) == [] and github.reviews(2) == [] and world.remote_log()[0] == world.head
    [answer] = replies(github)
    assert ("the pull request's base is `release-0.9`, not the default branch `main`" in answer["body"]
            and "only on pull requests into the default branch" in answer["body"])


def test_the_default_branch_is_the_apis_not_the_payloads(world, github, openai_server):
    github.set_default_branch("trunk")                                   # the payload still says master
    result, _, _ = command(world, "/gpo check")
    assert result.exit_code == 0 and openai_server.total == 0
    assert "not the default branch `trunk`" in replies(github)[0]["body"]


def test_a_checkout_that_is_not_the_pull_requests_head_is_refused(world, github, openai_server):
    git(world.work, "checkout", "-q", "main")
    result, _, _ = command(world, "/gpo check")
    assert openai_server.total == 0 and sticky(github) == []
    [answer] = replies(github)
    assert "not the pull request's head" in answer["body"] and "nothing was evaluated" in answer["body"]


CANARY_TOKEN = "ghs_canaryTOKEN0123456789abcdefABCDEF"
CANARY_KEY = "sk-canary-KEY-0123456789abcdef"


def test_the_canary_secrets_are_in_no_request_the_stand_in_received(tmp_path, openai_server, monkeypatch):
    """The model echoes its key back (a hostile model or a leaking proxy); every body and path sent
    to GitHub (reactions, replies, the sticky comment, the review) must hold neither secret."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def leaky(body: dict, index: int) -> str:
        return f"{reply(body, index)} {CANARY_KEY} {CANARY_TOKEN}"

    openai_server.set_reply(leaky)
    with GitHubServer(repository=REPO, token=CANARY_TOKEN) as github:
        github.set_permission(WRITER, "admin")
        github.set_permission(READER, "triage")
        w = World(tmp_path, openai_server.url, github, monkeypatch)
        for body, login, review in [("/gpo explain", WRITER, True), ("/gpo check", WRITER, False),
                                    ("/gpo nope", WRITER, False), ("/gpo fix", READER, False)]:
            command(w, body, login=login, review=review, key=CANARY_KEY)
        sent = [c["body"] for c in replies(github) + sticky(github)] + [c["body"] for c in github.review_comments(2)]
        assert len(replies(github)) == 2 and sticky(github)                 # the help and the denial; the check
        assert any("***" in body for body in sent)                          # the model's echo reached a body, scrubbed
        recorded = json.dumps([[r.path, r.query, r.body] for r in github.requests])
        assert CANARY_TOKEN not in recorded and CANARY_KEY not in recorded


def test_trust_head_config_is_ignored_for_a_forks_pull_request_on_a_comments_run(world, github):
    config = world.work / "gpo.yaml"
    config.write_text(config.read_text().replace("max_usd: 1.0", "max_usd: 9.0"))
    git(world.work, "commit", "-qam", "a bigger budget, please")
    git(world.work, "push", "-q", "origin", "HEAD:refs/heads/feature")
    head = git(world.work, "rev-parse", "HEAD")
    github.add_pull(2, {PATH: (GOOD, BAD), "gpo.yaml": None}, head_sha=head, base_sha=world.base, head_ref="feature",
                    head_repo="forker/Hello-World")
    world.monkeypatch.setenv("INPUT_TRUST-HEAD-CONFIG", "true")
    result, _, _ = command(world, "/gpo fix")
    assert result.exit_code == 1, result.output
    assert "trust-head-config is ignored for a fork's pull request" in result.output
    body = html.unescape(sticky(github)[0]["body"])
    assert "Fix budget for this pull request: 200 calls, $1.00, 120 s" in body         # the base's, not $9


# ---- a response cache the pull request commits (the comment's run saves .gpo in the default branch's scope) ----

def _plant_cache(world: World, openai_server) -> list[str]:
    """The head commits a `.gpo/cache.sqlite` (and its side files) whose rows answer its regressed
    prompt perfectly; returns the planted names."""
    from click.testing import CliRunner

    from gpo_action.cli import main
    from tests.test_action import answer

    openai_server.set_reply(lambda body, index: answer(body["messages"][-1]["content"], True))   # always right
    world.monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    world.monkeypatch.setenv("GPO_TEST_KEY", KEY)
    world.monkeypatch.chdir(world.work)
    assert CliRunner().invoke(main, ["eval"], catch_exceptions=False).exit_code == 0
    planted = sorted(p.name for p in (world.work / ".gpo").iterdir() if p.name.startswith("cache.sqlite"))
    git(world.work, "add", "-f", *(f".gpo/{name}" for name in planted))
    git(world.work, "commit", "-qm", "a better prompt, with its answers")
    git(world.work, "push", "-q", "origin", "HEAD:refs/heads/feature")
    world.head = git(world.work, "rev-parse", "HEAD")
    world.github.push(2, {PATH: (GOOD, BAD), **{f".gpo/{n}": None for n in planted}}, head_sha=world.head)
    openai_server.set_reply(reply)
    return planted


def _cache_files(world: World) -> list[str]:
    gpo = world.work / ".gpo"
    return sorted(p.name for p in gpo.iterdir() if p.name.startswith("cache.sqlite")) if gpo.is_dir() else []


def test_a_cache_the_pull_request_commits_answers_nothing_and_is_gone_before_the_cache_save(world, github,
                                                                                          openai_server):
    planted = _plant_cache(world, openai_server)
    assert "cache.sqlite" in planted and _cache_files(world) == planted
    before = openai_server.total
    result, _, outputs = command(world, "/gpo check")
    assert result.exit_code == 1, result.output
    assert "verdicts=triage=regressed" in outputs                        # the planted answers were not used
    assert openai_server.total - before == 60                            # both sides asked the model
    assert _cache_files(world) == []                                     # nothing under .gpo for actions/cache to save
    body = html.unescape(sticky(github)[0]["body"])
    assert "this pull request commits the response cache (.gpo/cache.sqlite" in body
    assert "removed from the checkout" in body


def test_a_planted_cache_is_removed_even_when_the_command_is_answered_without_a_run(world, github, openai_server):
    _plant_cache(world, openai_server)
    before = openai_server.total
    result, _, _ = command(world, "/gpo nope")                           # the help reply: no pipeline at all
    assert result.exit_code == 0 and openai_server.total == before
    assert _cache_files(world) == [] and "unknown command" in replies(github)[0]["body"]


def test_a_gpo_directory_committed_as_a_symlink_to_a_planted_cache_is_removed(world, github, openai_server):
    _plant_cache(world, openai_server)
    git(world.work, "rm", "-q", "--cached", "-r", ".gpo")
    (world.work / "answers").mkdir()
    for name in _cache_files(world):
        (world.work / ".gpo" / name).rename(world.work / "answers" / name)
    shutil.rmtree(world.work / ".gpo")
    (world.work / ".gpo").symlink_to("answers")
    git(world.work, "add", "-f", ".gpo", "answers")
    git(world.work, "commit", "-qm", "the answers, one link away")
    git(world.work, "push", "-q", "origin", "HEAD:refs/heads/feature")
    world.head = git(world.work, "rev-parse", "HEAD")
    github.push(2, {PATH: (GOOD, BAD)}, head_sha=world.head)
    before = openai_server.total
    result, _, outputs = command(world, "/gpo check")
    assert result.exit_code == 1, result.output
    assert "verdicts=triage=regressed" in outputs and openai_server.total - before == 60
    assert not (world.work / ".gpo").is_symlink()                        # the link is gone, its target left alone


# ---- the tool's hidden markers cannot be spelt by the pull request ----------------------------

def test_markers_in_the_heads_prompt_do_not_make_a_reply_our_sticky_comment_or_a_denial(world, github):
    forged = f"{MARKER} {DENIED_MARKER} <!-- gpo-action:proposed head={world.head} fix={'0' * 16} -->"
    hostile = BAD.replace("Reply briefly.", f"Reply briefly. {forged}")
    world.head = world.commit(hostile, "a marker in the prompt")
    github.push(2, {PATH: (GOOD, hostile)}, head_sha=world.head)
    result, _, _ = command(world, "/gpo explain")
    assert result.exit_code == 1, result.output
    [explained] = replies(github)
    assert "gpo-action:report" in explained["body"]                      # the edit is quoted, its markers defused
    assert "<!--" not in explained["body"]
    result, _, _ = command(world, "/gpo check")
    assert result.exit_code == 1, result.output
    [own] = sticky(github)
    assert own["id"] != explained["id"] and own["body"].startswith(MARKER)
    assert [c["body"] for c in github.issue_comments(2) if c["id"] == explained["id"]] == [explained["body"]]
    assert own["body"].count("<!--") == 1                                # ours alone; the prompt's diff is defused
    command(world, "/gpo fix", login=READER)
    assert [c for c in replies(github) if DENIED_MARKER in c["body"]]    # the denial is still said once


def test_a_secret_in_the_proposed_prompt_is_not_carried_in_the_comments_data(tmp_path, openai_server, monkeypatch):
    """The carried proposal is compressed, so the client's scrubber cannot see into it: it is
    scrubbed before it is packed, and a fix whose text held a secret fails its hash at apply."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def leaky(body: dict, index: int) -> str:                            # the optimizer writes the key into the prompt
        text = reply(body, index)
        return text.replace(f"as {LABELS}.", f"as {LABELS}. {CANARY_KEY}") if text.startswith("<START>") else text

    openai_server.set_reply(leaky)
    with GitHubServer(repository=REPO, token=CANARY_TOKEN) as github:
        github.set_permission(WRITER, "write")
        w = World(tmp_path, openai_server.url, github, monkeypatch, localize=False)   # the optimizer's text is the fix
        command(w, "/gpo fix", key=CANARY_KEY)
        [comment] = sticky(github)
        carried, _ = _carried(comment["body"])
        assert "***" in carried["fixes"][0]["result"]["best"]
        assert CANARY_KEY not in json.dumps(carried) and CANARY_KEY not in comment["body"]
        command(w, "/gpo apply", key=CANARY_KEY)
        assert w.remote_log()[0] == w.head                               # nothing committed
        assert any("does not match its hash" in html.unescape(c["body"]) for c in replies(github))
