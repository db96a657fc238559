"""The fix a sticky comment proposes, carried in the comment itself: what `/gpo apply` commits.

    marker = proposal_marker(fix_report, head_sha, base_sha)   # appended to the sticky comment by delivery
    proposal = find_proposal(sticky_body)                        # the last marker of the tool's own comment
    proposal.head_sha, proposal.fixes, unsafe_fix(proposal.fixes)

The marker is one hidden line, `<!-- gpo-action:proposed head=<sha> fix=<hash> base=<sha>
budget=<usd> steps=<n> data=<base64> -->`: the head and base the fix was found for, the budget and
steps it was found with, `proposal_hash` (each suite's prompt and improved text) and the proposed
fixes themselves (`FixReport.to_dict`, scrubbed of the run's secrets, zlib, base64: a text
holding a secret then fails its hash and is never committed). Apply re-runs no search: a search under
another budget, cache or model sample finds another prompt. It takes the tool's own last marker
(the comment is found by its author, `comments.find_sticky_comment`; pull-request text that could
spell a marker is defused, `markdown.defuse`), decodes the fixes, and uses them only when their
hash is the marker's and each still passes the optimizer's final gate (`unsafe_fix`).
Data too long to carry (over `MAX_DATA_CHARS`) is left out: apply then says so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from typing import Any

from gpo_action import secrets

MAX_DATA_CHARS = 24_000                   # of the base64 data (the comment holds 65,536 characters)
MAX_INFLATED = 4_000_000                  # bytes the data may inflate to
PROPOSED_MARKER = re.compile(r"<!-- gpo-action:proposed head=([0-9a-f]{7,64}) fix=([0-9a-f]{16})"
                             r"((?: [a-z]+=[A-Za-z0-9+/=.]*)*) -->")
_DROPPED = ("diff", "run_dir", "trajectory")      # rebuilt, or paths of the run that found it


@dataclass(frozen=True)
class Proposal:
    head_sha: str
    fix_hash: str
    base_sha: str | None = None
    budget_usd: float | None = None
    steps: int | None = None
    fixes: Any = None                     # fixes.FixReport of the proposed fixes; None: not carried or not valid
    problem: str | None = None            # why `fixes` is None


def proposal_hash(fixes) -> str | None:
    """A short hash of what the fix stage proposes (each suite's prompt and improved text), or None
    when it proposes nothing: what `/gpo apply` checks it commits."""
    proposed = fixes.proposed if fixes is not None else ()
    if not proposed:
        return None
    data = json.dumps(sorted([f.suite, f.prompt, f.result.best] for f in proposed), ensure_ascii=False)
    return hashlib.blake2b(data.encode("utf-8"), digest_size=8).hexdigest()


def proposal_marker(fixes, head_sha: str | None, base_sha: str | None) -> str | None:
    """The hidden line for a comment proposing `fixes` on `head_sha` (None: nothing proposed)."""
    digest = proposal_hash(fixes)
    if digest is None or not head_sha:
        return None
    proposed = fixes.proposed
    report = {**fixes.to_dict(), "fixes": [_slim(f.to_dict()) for f in proposed]}
    text = secrets.scrub(json.dumps(report, ensure_ascii=False))     # compressed, the client's scrubber could not see it
    data = base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")
    budget = (fixes.total or {}).get("max_usd")
    fields = [f"head={head_sha}", f"fix={digest}"]
    fields += [f"base={base_sha}"] if base_sha and re.fullmatch(r"[0-9a-f]{7,64}", base_sha) else []
    fields += [f"budget={budget:g}"] if isinstance(budget, (int, float)) else []
    fields += [f"steps={max(f.result.steps for f in proposed)}"]
    fields += [f"data={data}"] if len(data) <= MAX_DATA_CHARS else []
    return f"<!-- gpo-action:proposed {' '.join(fields)} -->"


def _slim(fix: dict[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in (fix.get("result") or {}).items() if k not in _DROPPED}
    return {**fix, "result": result}


def find_proposal(body: str) -> Proposal | None:
    """The last proposal marker of a comment's body, decoded (None: the body holds none)."""
    from gpo_action.fixes import FixReport

    found = list(PROPOSED_MARKER.finditer(body or ""))
    if not found:
        return None
    match = found[-1]
    attrs = dict(item.split("=", 1) for item in match.group(3).split())
    proposal = Proposal(match.group(1), match.group(2), attrs.get("base"), _number(attrs.get("budget"), float),
                        _number(attrs.get("steps"), int))
    if "data" not in attrs:
        return _invalid(proposal, "the proposed text was too long to carry in the comment")
    try:
        report = FixReport.from_dict(json.loads(_inflate(base64.b64decode(attrs["data"], validate=True))))
    except (binascii.Error, zlib.error, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return _invalid(proposal, "the proposal in the comment cannot be read")
    if proposal_hash(report) != proposal.fix_hash:
        return _invalid(proposal, "the proposed text in the comment does not match its hash")
    return Proposal(**{**proposal.__dict__, "fixes": report})


def _inflate(data: bytes) -> bytes:
    """zlib data, refused (ValueError) past `MAX_INFLATED` bytes: an edited comment is no zip bomb."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_INFLATED)
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("the proposal data is too large or cut")
    return out


def _invalid(proposal: Proposal, problem: str) -> Proposal:
    return Proposal(**{**proposal.__dict__, "fixes": None, "problem": problem})


def _number(text: str | None, kind):
    try:
        return kind(text) if text is not None else None
    except ValueError:
        return None


def unsafe_fix(fixes) -> str | None:
    """Why a carried fix must not be committed (None: each may be): not one the fix stage
    proposed, or one the optimizer's final gate (`candidates.check_candidate`: the kind, template
    variables, frozen regions, a chat's roles and params) would reject against its original."""
    from gpo_action.errors import TemplateError
    from gpo_action.optimize.candidates import check_candidate
    from gpo_action.templates import parse_template

    for fix in fixes.fixes:
        result = fix.result
        if result is None or not result.proposed or result.best == result.original:
            return f"the fix for {fix.suite} was not proposed (it did not beat the head's prompt on holdout)"
        try:
            original = parse_template(result.original, fix.prompt, result.kind)
        except TemplateError:
            return f"the head's prompt of {fix.suite} does not parse"
        _, why = check_candidate(result.best, original, ())
        if why is not None:
            return f"the fix for {fix.suite} fails the optimizer's check ({why})"
    return None
