"""A `/gpo` command in a pull request's conversation, answered: the Action's path for the
`issue_comment` and `pull_request_review_comment` events (`COMMENT_EVENTS`).

    answered = answer_command(options_from_inputs(os.environ), os.environ, sys.stdout)
    answered.status, answered.exit_code

Steps: ignore what is no command (an edit or deletion, a plain issue's comment, a bot's comment,
a comment with no `/gpo` line: `chatops.parse_command`); read the pull request's head and base
from the API (the payload does not carry them) and take a response cache the head commits out of
the checkout (`plantedcache`: whatever the answer, so the job's cache save never keeps it); check
the commenter's permission through the API (`GET /collaborators/{user}/permission`: admin,
maintain or write may command; the payload's `author_association` is not asked), and answer
anyone else with one polite reply per pull request (found again by `DENIED_MARKER`) and no run;
acknowledge the comment with an :eyes: reaction; refuse unless the checkout is exactly that head;
run the pipeline (`pr_pipeline.execute`) on it, the command choosing the mode and delivery, within
the base's caps; before delivering, read the head again and deliver nothing when it moved.
`/gpo apply` searches nothing: it commits exactly the fix our own sticky comment carries for this
head (`proposals`: the last marker of the comment the token's identity wrote, the text matching
its hash and passing the optimizer's check), after a comparison (from the cache where it can); a
moved head or a missing proposal gets a reply. The answer goes into the sticky comment, with a
line saying which command by whom made it; `/gpo explain`, an unknown command, a refusal and the
denial are replies (a review comment's in its thread).

Why this is safe with secrets even for a fork's pull request: only a writer's command runs, and
the run reads the head's files as data; the policy (budget, endpoints, keys, delivery) is the
base's, as for every pull request.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import IO, Callable, Mapping

from gpo_action import gitrepo
from gpo_action.action_inputs import Options
from gpo_action.errors import GitHubError, InputError
from gpo_action.github.chatops import Command, help_text, parse_command
from gpo_action.github.event import Comment, Event, load_event
from gpo_action.plantedcache import remove_for_base
from gpo_action.pr_pipeline import Outcome, Request, execute
from gpo_action.report.markdown import cell, code
from gpo_action.report.replies import DENIED_MARKER, byline, denied_reply, explain_reply, mention, moved_text

NoteFn = Callable[[str], None]
MAY_COMMAND = frozenset({"admin", "maintain", "write"})
ACKNOWLEDGE = "eyes"


@dataclass(frozen=True)
class Answered:
    status: str                   # ignored, denied, help, refused, ran
    reason: str = ""
    command: Command | None = None
    outcome: Outcome | None = None
    exit_code: int = 0


def command_text(command: Command) -> str:
    """The command as it was understood (what the byline and replies quote)."""
    extra = (f" budget=${command.budget_usd:g}" if command.budget_usd is not None else "") + \
            (f" steps={command.steps}" if command.steps is not None else "")
    return f"/gpo {command.name}{extra}"


def answer_command(options: Options, env: Mapping[str, str], stream: IO[str], *, notes: NoteFn | None = None,
                   on_step=None) -> Answered:
    """Answer the comment event of this Actions run as the module docstring says."""
    from gpo_action.github.client import GitHubClient
    from gpo_action.github.comments import comment_author

    say = notes or (lambda message: None)
    event = load_event(env)
    comment = event.comment if event is not None else None
    if event is None or comment is None or event.action != "created":
        return Answered("ignored", "not a new comment on a pull request")
    command = parse_command(comment.body)
    if command is None:
        return Answered("ignored", "no /gpo command in the comment")
    if comment.author_type == "Bot":
        return Answered("ignored", f"a bot's comment ({comment.author})", command)
    if not options.token:
        raise InputError("a /gpo command needs a GitHub token", hint="pass `github-token` to the action")
    with GitHubClient(options.token, repository=env.get("GITHUB_REPOSITORY") or event.repository, env=env) as client:
        authors = (comment_author(client, options.comment_author),)
        pull = client.get_pull(comment.number)
        planted = remove_for_base(options.config, pull.base_sha, env)     # whatever the answer: see plantedcache
        if planted:
            say(f"removed the response cache this pull request commits ({', '.join(planted)}) from the checkout")
        permission, role = client.permission(comment.author)
        if permission not in MAY_COMMAND and role not in MAY_COMMAND:
            return _deny(client, comment, authors, command, permission, say)
        _acknowledge(client, comment, say)
        if command.name == "unknown":
            _reply(client, comment, help_text(cell(command.problem)))      # the comment's words, escaped
            return Answered("help", command.problem, command)
        text = command_text(command)
        default = pull.default_branch or event.default_branch
        if pull.base_ref != default:       # the pull request's author picks its base: the policy is the default branch's
            why = (f"the pull request's base is {code(pull.base_ref)}, not the default branch "
                   f"{code(default or 'unknown')}: `/gpo` commands run only on pull requests into the default branch, "
                   "whose gpo.yaml is the policy")
            _reply(client, comment, f"{mention(comment.author)}: `{text}` was not run: {why}.")
            return Answered("refused", why, command)
        with gitrepo.open_repo(".") as repo:
            checked_out = gitrepo.head_sha(repo)
        if checked_out != pull.head_sha:
            why = (f"the checkout is at {checked_out[:12]}, not the pull request's head {pull.head_sha[:12]}: "
                   "nothing was evaluated (the workflow must check out the pull request's head; see the README)")
            _reply(client, comment, f"{mention(comment.author)}: `{text}` was not run: {why}.")
            return Answered("refused", why, command)

        def moved() -> str | None:
            now = client.get_pull(comment.number).head_sha
            return None if now == pull.head_sha else moved_text(pull.head_sha, now, text)

        proposal = None
        if command.name == "apply":
            proposal, why = _proposal(client, comment.number, authors, pull.head_sha)
            if proposal is None:
                _reply(client, comment, f"{mention(comment.author)}: `/gpo apply` has nothing to commit: {why}.")
                return Answered("refused", why, command)
        request = Request(byline(comment.author, text), command.budget_usd, command.steps, moved, proposal)
        if options.trust_head_config and pull.is_fork:
            say("trust-head-config is ignored for a fork's pull request on a comment's run, which has the "
                "repository's secrets: the base's gpo.yaml is the policy")
            options = replace(options, trust_head_config=False)
        outcome = execute(_options(options, command, pull), env, stream, notes=say, on_step=on_step,
                          event=Event("pull_request", event.repository, "synchronize", pull), request=request)
        if command.name == "explain":
            _reply(client, comment, explain_reply(outcome, comment.author, text, pull.head_sha))
        elif outcome.refused:
            _reply(client, comment, f"{mention(comment.author)}: {outcome.refused}.")
        status = "refused" if outcome.refused else "ran"
        return Answered(status, outcome.refused or "", command, outcome, outcome.exit_code)


def _options(options: Options, command: Command, pull) -> Options:
    """What the command asks of the pipeline: the mode, where the answer goes (apply commits only
    to a branch of this repository; a fork's gets the suggestion review), the base commit."""
    deliver: tuple[str, ...]
    mode, steps, candidates = "fix", options.steps, options.candidates
    if command.name == "check":
        mode, deliver = "check", ("comment",)
    elif command.name == "fix":
        deliver = ("suggestion", "comment")
    elif command.name == "apply":               # no fix stage: the comment's proposal is delivered (`Request.proposal`)
        mode = "check"
        deliver = ("suggestion", "comment") if pull.is_fork or pull.head_repo is None else ("commit", "comment")
    else:                           # explain: locating the regression is the fix stage's first step
        deliver, steps, candidates = (), 1, 1
    return replace(options, mode=mode, deliver=deliver, base=pull.base_sha, steps=steps, candidates=candidates)


def _proposal(client, number: int, authors, head_sha: str):
    """apply: (the fixes our own sticky comment carries for `head_sha`, None), or (None, why not:
    Markdown, the variable parts escaped). Nothing is searched again (see `proposals`)."""
    from gpo_action.github.comments import find_sticky_comment
    from gpo_action.proposals import find_proposal, unsafe_fix

    sticky = find_sticky_comment(client.list_issue_comments(number), authors=authors)
    proposal = find_proposal(sticky.body) if sticky is not None else None
    if proposal is None:
        return None, f"the gpo-action comment proposes no fix for the head {head_sha[:12]}. Comment `/gpo fix` first"
    if proposal.head_sha != head_sha:
        return None, (f"the gpo-action comment's fix was proposed for the head {proposal.head_sha[:12]}, and the "
                      f"head is now {head_sha[:12]}. Comment `/gpo fix` again to get one for this head")
    if proposal.fixes is None:
        return None, f"{cell(proposal.problem)}. Comment `/gpo fix` again"
    unsafe = unsafe_fix(proposal.fixes)
    if unsafe is not None:
        return None, f"{cell(unsafe)}: nothing was committed"
    return proposal.fixes, None


def _acknowledge(client, comment: Comment, say: NoteFn) -> None:
    try:
        client.add_reaction(comment.id, ACKNOWLEDGE, review=comment.kind == "review")
    except GitHubError as exc:       # only a courtesy: the run goes on
        say(f"could not react to comment {comment.id}: {exc}")


def _reply(client, comment: Comment, body: str) -> None:
    """A reply to the comment: in its thread for a review comment, else in the conversation."""
    if comment.kind == "review" and comment.thread is not None:
        client.reply_to_review_comment(comment.number, comment.thread, body)
    else:
        client.create_issue_comment(comment.number, body)


def _deny(client, comment: Comment, authors, command: Command, permission: str, say: NoteFn) -> Answered:
    """No run for a commenter without write permission, and one polite reply per pull request."""
    from gpo_action.github.comments import find_sticky_comment

    why = f"@{comment.author} has {permission} permission; /gpo commands need write"
    if find_sticky_comment(client.list_issue_comments(comment.number), DENIED_MARKER, authors) is None:
        client.create_issue_comment(comment.number, denied_reply(comment.author))
    say(f"not run: {why}")
    return Answered("denied", why, command)
