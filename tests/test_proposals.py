"""The proposal a sticky comment carries for `/gpo apply` (pure): the marker made and read back,
the last one counting, and `<!--` in pull-request text defused wherever it is quoted."""

from __future__ import annotations

import hashlib

from gpo_action.fixes import Fix, FixReport
from gpo_action.optimize.results import OptimizeResult
from gpo_action.proposals import MAX_DATA_CHARS, find_proposal, proposal_hash, proposal_marker, unsafe_fix
from gpo_action.report.markdown import MARKER, code, defuse

HEAD, BASE = "a" * 40, "b" * 40
ORIGINAL = "Classify the ticket.\nTicket: {{ ticket }}\n"


def report(best: str, *, proposed: bool = True, suite: str = "triage") -> FixReport:
    result = OptimizeResult(suite, "prompts/triage.j2", "text", ORIGINAL, best, 0.3, 1.0, 0.3, 1.0, proposed, "",
                            3, 1, 1)
    return FixReport((Fix(suite, "regressed", "prompts/triage.j2", {"max_usd": 0.1}, result),),
                     total={"max_calls": 200, "max_usd": 0.1})


def test_a_proposal_is_read_back_with_its_settings_and_text():
    fixes = report("Classify the ticket as billing or bug.\nTicket: {{ ticket }}\n")
    marker = proposal_marker(fixes, HEAD, BASE)
    proposal = find_proposal(f"{MARKER}\nbody\n{marker}")
    assert (proposal.head_sha, proposal.base_sha, proposal.budget_usd, proposal.steps) == (HEAD, BASE, 0.1, 1)
    assert proposal.fix_hash == proposal_hash(fixes) and proposal.problem is None
    assert proposal.fixes.proposed[0].result.best == fixes.proposed[0].result.best
    assert unsafe_fix(proposal.fixes) is None


def test_the_last_marker_counts():
    first = proposal_marker(report("Classify it.\nTicket: {{ ticket }}\n"), HEAD, BASE)
    last = proposal_marker(report("Classify the ticket well.\nTicket: {{ ticket }}\n"), HEAD, BASE)
    assert find_proposal(f"{first}\n{last}").fixes.proposed[0].result.best.startswith("Classify the ticket well.")


def test_a_proposal_too_long_to_carry_says_so():
    words = " ".join(hashlib.sha256(str(i).encode()).hexdigest()[:12] for i in range(MAX_DATA_CHARS // 8))
    marker = proposal_marker(report(words + "\n{{ ticket }}\n"), HEAD, BASE)
    assert " data=" not in marker
    proposal = find_proposal(marker)
    assert proposal.fixes is None and "too long to carry" in proposal.problem


def test_a_carried_fix_must_be_proposed_and_keep_the_originals_variables():
    assert "was not proposed" in unsafe_fix(report("Other.\nTicket: {{ ticket }}\n", proposed=False))
    assert "(variables)" in unsafe_fix(report("Classify the ticket.\n"))
    assert "(syntax)" in unsafe_fix(report("Classify {{ the ticket.\n"))


def test_pull_request_text_cannot_spell_a_marker_in_a_code_span():
    text = f"Reply. {MARKER}"
    assert "<!--" not in code(text) and "<!--" not in defuse(text)
    assert "gpo-action:report" in code(text)



def test_data_that_inflates_past_the_limit_is_refused_not_read():
    import base64
    import zlib

    from gpo_action.proposals import MAX_INFLATED

    marker = proposal_marker(report("Classify the ticket well.\nTicket: {{ ticket }}\n"), HEAD, BASE)
    bomb = base64.b64encode(zlib.compress(b"[" * (MAX_INFLATED + 10), 9)).decode()
    proposal = find_proposal(marker.split(" data=")[0] + f" data={bomb} -->")
    assert proposal.fixes is None and "cannot be read" in proposal.problem


def test_data_nested_past_pythons_recursion_limit_is_refused_not_a_crash():
    import base64
    import zlib

    marker = proposal_marker(report("Classify the ticket well.\nTicket: {{ ticket }}\n"), HEAD, BASE)
    deep = base64.b64encode(zlib.compress(b"[" * 200_000, 9)).decode()  # 292 characters in the comment
    proposal = find_proposal(marker.split(" data=")[0] + f" data={deep} -->")
    assert proposal.fixes is None and "cannot be read" in proposal.problem
