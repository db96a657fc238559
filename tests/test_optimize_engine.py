"""The optimizer end to end through the library entry point, against the scripted server:
meta-prompt contents, safety, budgets, resume, the holdout guard, failures and interrupts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gpo_action.llm.types import canonical_json
from gpo_action.optimize import BudgetLimits
from gpo_action.optimize.plan import write_proposal
from gpo_action.optimize.similarity import tfidf_similarities
from gpo_action.templates import parse_template
from tests.support.openai_server import ScriptedOpenAIServer
from tests.test_optimize_world import (TEXT_TEMPLATE, TICKETS, Optimizer, World, add_hint, budget_of,
                                       current_prompt, hint_script, is_meta, shown_prompts, source_view, wrap)
from tests.test_optimize_world import world  # noqa: F401  (the fixture)


def scripted(replies: dict[int, list[str]]):
    """Replies by optimizer request number; choices beyond the list repeat its last entry."""
    def script(request: int, index: int, meta: str) -> str:
        choices = replies.get(request) or [wrap(add_hint(current_prompt(meta), f"Step {request} line."))]
        return choices[min(index, len(choices) - 1)]
    return script


def trajectory(root: Path) -> list[dict]:
    path = root / ".gpo" / "optimize" / "triage" / "trajectory.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def state(root: Path) -> dict:
    return json.loads((root / ".gpo" / "optimize" / "triage" / "state.json").read_text())


def bodies(server: ScriptedOpenAIServer) -> list[str]:
    return [canonical_json(b) for b in server.requests]


P0 = TEXT_TEMPLATE
P1 = add_hint(P0, "Alpha beta gamma delta.")
P2 = add_hint(P0, "Omega sigma tau upsilon.")
P3 = add_hint(P0, "Alpha beta gamma epsilon.")
P4 = add_hint(P0, "Alpha beta zeta epsilon.")


def test_meta_prompts_show_the_k_most_relevant_prompts_in_ascending_similarity_and_the_cosine_budget(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(scripted({1: [wrap(P1)], 2: [wrap(P2)], 3: [wrap(P3)],
                                                                4: [wrap(P4)]})))
    with world.client() as client:
        result = world.run(client, steps=4, candidates=1, k=3)
    metas = world.meta_requests()
    assert len(metas) == 4 and result.steps_done == 4
    history = [P0, P1, P2, P3, P4]  # one candidate per step: the paper's rule makes each current in turn
    prompts = {r["id"]: r["prompt"] for r in trajectory(tmp_path) if r["kind"] == "prompt"}
    assert [prompts[i] for i in state(tmp_path)["history"]] == history
    for t, meta in enumerate(metas, start=1):
        assert budget_of(meta) == int(10 + 40 * 0.5 * (1 + math.cos(math.pi * t / 4)))
        h = history[:t]
        assert current_prompt(meta) == source_view(h[-1])
        scores = tfidf_similarities(h[-1], h[:-1])
        top = sorted(range(len(h) - 1), key=lambda i: (-scores[i], -i))[:2]
        expected = [h[i] for i in sorted(top, key=lambda i: (scores[i], i))] + [h[-1]]
        assert shown_prompts(meta) == [source_view(p) for p in expected]
    assert shown_prompts(metas[3]) == [source_view(P0), source_view(P1), source_view(P3)]  # not the recency window
    steps = [r for r in trajectory(tmp_path) if r["kind"] == "step"]
    assert steps[3]["similarity"] == "tfidf" and [prompts[i] for i in steps[3]["shown"]] == [P0, P1, P3]
    assert result.similarity == "tfidf"


def test_unsafe_candidates_are_rejected_by_reason_and_never_reach_the_task_model(tmp_path, openai_server):
    verbose = add_hint(P0, "VERBOSE " + "very " * 60)
    replies = {1: [wrap("Classify DROPPED as billing, bug or other.\n"), wrap(add_hint(P0, "NEWVAR {{ customer }}")),
                   wrap(add_hint(P0, "BROKEN {% if %}")), wrap(verbose), wrap(add_hint(P0, "Note: HINT-BUG HINT-BILLING."))]}
    world = World(tmp_path, openai_server, Optimizer(scripted(replies)))
    with world.client() as client:
        result = world.run(client, steps=1, candidates=5)
    sent = world.task_requests()
    assert not [t for t in sent if any(mark in t for mark in ("DROPPED", "NEWVAR", "BROKEN", "VERBOSE"))]
    assert len(sent) == len(TICKETS) + 6 + 6  # original on all cases, one candidate on dev, best on holdout
    assert result.rejected == {"variables": 2, "syntax": 1, "over-budget": 1}
    [step] = [r for r in trajectory(tmp_path) if r["kind"] == "step"]
    assert step["rejected"] == result.rejected and step["evaluated"] == 1
    assert result.proposed and "HINT-BUG" in result.best

    openai_server.reset()  # the paper's mode: the budget is only an instruction
    world.optimizer = Optimizer(scripted({1: [wrap(verbose)]}))
    with world.client(cache=False) as client:
        loose = world.run(client, steps=1, candidates=1, enforce_budget=False)
    assert loose.rejected == {} and any("VERBOSE" in t for t in world.task_requests())


@pytest.mark.parametrize("cap", ["max_calls", "max_task_calls", "max_optimizer_calls"])
def test_a_cap_of_k_calls_is_never_exceeded_for_any_k(tmp_path, openai_server, cap):
    world = World(tmp_path, openai_server, Optimizer(hint_script))
    top = {"max_calls": 70, "max_task_calls": 60, "max_optimizer_calls": 5}[cap]
    for k in range(0, top, 1 if cap == "max_optimizer_calls" else 3):
        openai_server.reset()
        openai_server.set_fault_rates(p500=0.2, seed=k)
        world.optimizer = Optimizer(hint_script)
        with world.client(cache=False) as client:
            result = world.run(client, BudgetLimits(**{cap: k}), steps=3, candidates=3)
        counted = {"max_calls": openai_server.total, "max_task_calls": len(world.task_requests()),
                   "max_optimizer_calls": len(world.meta_requests())}[cap]
        assert counted <= k, (cap, k, counted)
        assert client.usage.calls == openai_server.total
        assert result.spent["calls"] == openai_server.total
        assert result.stop_reason in (None, cap, "max_calls") or result.stop_reason.startswith("optimizer-error")


def test_a_call_cap_holds_with_judge_calls(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(hint_script),
                  extra_assert="  - {type: llm-rubric, value: 'names exactly one category'}\n")
    for k in range(0, 90, 7):
        openai_server.reset()
        openai_server.add_rule(r"names exactly one category", '{"score": 1, "reason": "one category"}')
        world.optimizer = Optimizer(hint_script)
        with world.client(cache=False) as client:
            result = world.run(client, BudgetLimits(max_calls=k), steps=2, candidates=2)
        assert openai_server.total <= k and result.spent["calls"] == openai_server.total
    judged = [b for b in openai_server.requests if "names exactly one category" in str(b)]
    assert judged and result.original_dev is not None


def test_a_token_cap_is_not_crossed(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(hint_script))
    for cap in (0, 150, 400, 900, 1600, 2500, 4000):
        openai_server.reset()
        world.optimizer = Optimizer(hint_script)
        with world.client(cache=False) as client:
            result = world.run(client, BudgetLimits(max_tokens=cap), steps=3, candidates=3)
        assert client.usage.tokens <= cap, (cap, client.usage.tokens)
        assert result.spent["tokens"] == client.usage.tokens


def test_resume_repeats_no_call_and_ends_where_an_uninterrupted_run_ends(tmp_path, openai_server):
    reference = World(tmp_path / "a", openai_server, Optimizer(hint_script))
    with reference.client() as client:
        expected = reference.run(client, steps=4, candidates=3)
    uninterrupted = set(bodies(openai_server))

    openai_server.reset()
    world = World(tmp_path / "b", openai_server, Optimizer(hint_script))
    with world.client() as client:
        stopped = world.run(client, BudgetLimits(max_calls=30), steps=4, candidates=3)
    assert stopped.stop_reason == "max_calls" and openai_server.total <= 30
    assert stopped.best_holdout is not None  # the best so far was checked on holdout within the cap
    assert state(world.root)["status"] == "stopped"
    with world.client() as client:
        resumed = world.run(client, steps=4, candidates=3, resume=True)
    sent = bodies(openai_server)
    assert len(sent) == len(set(sent))  # nothing asked twice
    extra = set(sent) - uninterrupted   # only the stopped run's holdout check of its best so far
    assert set(sent) >= uninterrupted and len(extra) == 6 and all("HINT-BILLING" in body for body in extra)
    assert (resumed.best, resumed.best_dev, resumed.best_holdout, resumed.proposed) == \
        (expected.best, expected.best_dev, expected.best_holdout, expected.proposed)
    assert resumed.spent["calls"] == len(sent)
    kinds = [r["kind"] for r in trajectory(world.root)]
    assert kinds.count("final") == 1 and kinds.count("step") == 4


def test_resume_refuses_a_run_made_with_other_inputs(tmp_path, world):
    with world.client() as client:
        world.run(client, steps=1, candidates=2)
        with pytest.raises(Exception, match="other inputs"):
            world.run(client, steps=2, candidates=2, resume=True)


def test_ctrl_c_in_on_step_keeps_the_trajectory_and_the_run_resumes(tmp_path, openai_server):
    reference = World(tmp_path / "a", openai_server, Optimizer(hint_script))
    with reference.client() as client:
        expected = reference.run(client, steps=3, candidates=2)
    total = openai_server.total
    openai_server.reset()
    world = World(tmp_path / "b", openai_server, Optimizer(hint_script))

    def interrupt(report):
        if report.step == 2:
            raise KeyboardInterrupt

    with world.client() as client, pytest.raises(KeyboardInterrupt):
        world.run(client, steps=3, candidates=2, on_step=interrupt)
    saved = state(world.root)
    assert saved["status"] == "interrupted" and saved["step_done"] == 2
    assert [r["step"] for r in trajectory(world.root) if r["kind"] == "step"] == [1, 2]
    with world.client() as client:
        resumed = world.run(client, steps=3, candidates=2, resume=True)
    sent = bodies(openai_server)
    assert len(sent) == len(set(sent)) == total
    assert (resumed.best, resumed.best_holdout) == (expected.best, expected.best_holdout)


def test_the_holdout_guard_refuses_a_prompt_that_only_wins_on_dev(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(scripted({1: [wrap(add_hint(P0, "Note: OVERFIT."))]})))
    with world.client() as client:
        result = world.run(client, steps=1, candidates=1)
    assert result.best_dev == 1.0 and result.best_dev > result.original_dev
    assert result.best_holdout < result.original_holdout
    assert not result.proposed and result.message.startswith("no improvement found")
    assert f"{100 * result.original_holdout:.1f}" in result.message
    with pytest.raises(Exception, match="no improvement"):
        write_proposal(result, tmp_path)
    assert (tmp_path / "prompts" / "triage.j2").read_text() == TEXT_TEMPLATE
    final = trajectory(tmp_path)[-1]
    assert final["kind"] == "final" and final["best_holdout"] == result.best_holdout and not final["proposed"]


def test_the_old_holdout_policies_are_gone(tmp_path, world):
    with world.client() as client, pytest.raises(Exception, match="significant"):
        world.run(client, steps=1, candidates=1, holdout_policy="at-least-equal")


def test_malformed_empty_and_enormous_replies_are_handled(tmp_path, openai_server):
    replies = {1: ["I would rather not.", "<START>\n\n<END>", "<START>" + "blah " * 20_000 + "<END>",
                   wrap(add_hint(P0, "Note: HINT-BILLING."))]}
    world = World(tmp_path, openai_server, Optimizer(scripted(replies)))
    with world.client() as client:
        result = world.run(client, steps=1, candidates=4)
    assert result.rejected == {"no-markers": 1, "empty": 1, "too-long": 1}
    assert result.evaluated == 2 and not [t for t in world.task_requests() if "blah" in t]


@pytest.mark.parametrize("fault", ["500", "401"])
def test_an_optimizer_that_fails_stops_cleanly_with_the_trajectory_kept(tmp_path, openai_server, fault):
    with ScriptedOpenAIServer() as broken:
        broken.set_fault_rates(**{f"p{fault}": 1.0})
        world = World(tmp_path, openai_server, Optimizer(hint_script), optimizer_server=broken)
        with world.client() as client:
            result = world.run(client, steps=3, candidates=2)
        assert broken.total == (3 if fault == "500" else 1)  # retried (max_retries=2), or not at all
    assert result.stop_reason.startswith("optimizer-error") and not result.proposed
    assert result.steps_done == 0 and result.best == result.original
    assert state(tmp_path)["status"] == "stopped"
    records = trajectory(tmp_path)
    assert records[0]["kind"] == "prompt" and records[0]["step"] == 0 and records[-1]["kind"] == "final"


def test_duplicates_reuse_their_score_without_task_calls(tmp_path, openai_server):
    again = wrap(add_hint(P0, "Note: HINT-BUG."))
    world = World(tmp_path, openai_server, Optimizer(scripted({1: [again, wrap(P0)], 2: [again, again]})))
    with world.client(cache=False) as client:
        result = world.run(client, steps=2, candidates=2)
    steps = [r for r in trajectory(tmp_path) if r["kind"] == "step"]
    assert (steps[0]["evaluated"], steps[0]["duplicates"]) == (1, 1)   # the original came back
    assert (steps[1]["evaluated"], steps[1]["duplicates"]) == (0, 2)
    assert len(world.task_requests()) == len(TICKETS) + 6 + 6
    assert result.evaluated == 2


def test_reflection_and_editing_for_the_apo_preset(tmp_path, world):
    with world.client() as client:
        result = world.run(client, preset="apo", steps=1, candidates=2)
    metas = world.meta_requests()
    assert "gets the following examples wrong" in metas[0] and "Expected output: billing" in metas[0]
    assert "Your task is to improve a prompt by editing it." in metas[1]
    assert "Feedback on the current prompt's mistakes:\nThe prompt gives no hint" in metas[1]
    assert "You are allowed to change" not in metas[1]  # APO has no step size
    step = [r for r in trajectory(tmp_path) if r["kind"] == "step"][0]
    assert step["feedback"].startswith("The prompt gives no hint") and result.steps_done == 1


def test_a_chat_template_is_optimized_as_its_message_text_and_rebuilt_with_roles_and_params(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(hint_script), kind="chat")
    with world.client() as client:
        result = world.run(client, steps=2, candidates=2)
    meta = world.meta_requests()[0]
    assert current_prompt(meta) == ("### system\nYou sort support tickets.\n### user\n"
                                    "Classify this support ticket as billing, bug or other.\nTicket: [1]\n"
                                    "Answer: Category: <one word>")
    assert "params" not in meta and "role:" not in meta and "{{" not in meta   # no YAML, no template code
    reply = world.optimizer.script(1, 0, meta)
    assert "params" not in reply and "role" not in reply     # the optimizer answered with message text only
    assert result.kind == "chat" and result.proposed and "HINT-" in result.best
    best = parse_template(result.best, "prompts/triage.yaml")
    assert best.kind == "chat" and dict(best.params) == {"temperature": 0}
    assert [m.role for m in best.messages] == ["system", "user"] and best.variables == {"ticket"}
    assert best.messages[0].source == "You sort support tickets."
    assert result.best.startswith("params:\n  temperature: 0\nmessages:\n  - role: system\n")  # the file's own layout
    task = [b for b in openai_server.requests if not is_meta(b)]
    assert task and all([m["role"] for m in b["messages"]] == ["system", "user"] for b in task)
    write_proposal(result, tmp_path)
    assert (tmp_path / "prompts" / "triage.yaml").read_text() == result.best


def test_a_suite_too_small_to_split_is_optimized_on_all_cases_but_nothing_is_proposed(tmp_path, openai_server):
    small = dict(list(TICKETS.items())[:3])
    world = World(tmp_path, openai_server, Optimizer(hint_script), cases=small)
    with world.client() as client:
        result = world.run(client, steps=1, candidates=1)
    assert not result.holdout_guard and result.holdout_cases == 0 and result.dev_cases == 3
    assert any("fewer than 4" in w and "no holdout guard" in w for w in result.warnings)
    assert result.best_dev > result.original_dev and result.best != result.original
    assert not result.proposed and result.holdout_p is None
    assert result.message.startswith("not proposed:") and "no holdout cases to confirm it" in result.message
    assert "improved" not in result.message


def relevance_shown(history: list[str], scores: list[float], k: int = 3) -> list[str]:
    top = sorted(range(len(history) - 1), key=lambda i: (-scores[i], -i))[:k - 1]
    return [history[i] for i in sorted(top, key=lambda i: (scores[i], i))] + [history[-1]]


def test_embedding_similarity_ranks_by_cosine_of_the_servers_vectors_and_embeds_each_prompt_once(tmp_path, openai_server):
    from gpo_action.llm.types import ModelConfig
    from gpo_action.optimize.similarity import cosine
    from tests.support.openai_server import embed_text

    replies = {1: [wrap(P1)], 2: [wrap(P2)], 3: [wrap(P3)], 4: [wrap(P4)], 5: [wrap(add_hint(P0, "Kappa."))]}
    with ScriptedOpenAIServer() as embedder:
        embedding = ModelConfig("openai/embed", {"api_base": embedder.url + "/v1", "api_key": "k"})
        world = World(tmp_path, openai_server, Optimizer(scripted(replies)))
        with world.client() as client:
            result = world.run(client, steps=5, candidates=1, k=3, embedding=embedding)
        history = [P0, P1, P2, P3, P4]
        metas = world.meta_requests()
        assert len(metas) == 5
        for t, meta in enumerate(metas, start=1):
            h = history[:t]
            scores = [cosine(embed_text(h[-1]), embed_text(p)) for p in h[:-1]]
            assert shown_prompts(meta) == [source_view(p) for p in relevance_shown(h, scores)]
        # at step 5 the embeddings pick P1 where TF-IDF would pick P0
        assert relevance_shown(history, tfidf_similarities(P4, history[:-1]))[0] == P0
        assert shown_prompts(metas[4])[0] == source_view(P1)
        embedded = [text for body in embedder.requests for text in body["input"]]
        assert sorted(embedded) == sorted(history)          # each prompt once, though compared at every step
        steps = [r for r in trajectory(tmp_path) if r["kind"] == "step"]
        assert [s["similarity"] for s in steps] == ["embedding:openai/embed"] * 5
        assert result.similarity == "embedding:openai/embed" and not result.warnings
        assert state(tmp_path)["similarity"] == "embedding:openai/embed"
        assert result.spent["optimizer_calls"] >= len(embedder.requests)
        served = embedder.total
        with world.client() as client:                      # again, same cache: no embedding request
            again = world.run(client, steps=5, candidates=1, k=3, embedding=embedding)
        assert embedder.total == served and again.similarity == "embedding:openai/embed"


def test_a_failing_embedding_endpoint_falls_back_to_tfidf_with_a_note(tmp_path, openai_server):
    from gpo_action.llm.types import ModelConfig

    replies = {1: [wrap(P1)], 2: [wrap(P2)], 3: [wrap(P3)]}
    with ScriptedOpenAIServer() as embedder:
        embedder.enqueue_faults("500", "500", "500")       # the first call and its 2 retries
        embedding = ModelConfig("openai/embed", {"api_base": embedder.url + "/v1", "api_key": "k"})
        world = World(tmp_path, openai_server, Optimizer(scripted(replies)))
        with world.client(max_retries=2) as client:
            result = world.run(client, steps=3, candidates=1, k=3, embedding=embedding)
        assert embedder.total == 3 and embedder.status_counts[500] == 3   # not asked again after the fallback
    assert result.steps_done == 3 and result.similarity == "tfidf"
    assert any("embedding similarity failed" in w and "using tfidf" in w for w in result.warnings)
    steps = [r for r in trajectory(tmp_path) if r["kind"] == "step"]
    assert [s["similarity"] for s in steps] == ["embedding:openai/embed", "tfidf", "tfidf"]  # step 1 compares nothing
    history = [P0, P1, P2, P3]
    for t, meta in enumerate(world.meta_requests(), start=1):
        h = history[:t]
        assert shown_prompts(meta) == [source_view(p) for p in relevance_shown(h, tfidf_similarities(h[-1], h[:-1]))]


@pytest.mark.parametrize("cap", ["max_calls", "max_optimizer_calls"])
def test_a_call_cap_holds_with_embedding_calls(tmp_path, openai_server, cap):
    from gpo_action.llm.types import ModelConfig

    top = {"max_calls": 40, "max_optimizer_calls": 8}[cap]
    with ScriptedOpenAIServer() as embedder:
        embedding = ModelConfig("openai/embed", {"api_base": embedder.url + "/v1", "api_key": "k"})
        world = World(tmp_path, openai_server, Optimizer(hint_script))
        embedded = 0
        for k in range(0, top, 1 if cap == "max_optimizer_calls" else 3):
            openai_server.reset()
            embedder.reset()
            world.optimizer = Optimizer(hint_script)
            with world.client(cache=False) as client:
                result = world.run(client, BudgetLimits(**{cap: k}), steps=4, candidates=2, k=3, embedding=embedding)
            counted = {"max_calls": openai_server.total + embedder.total,
                       "max_optimizer_calls": len(world.meta_requests()) + embedder.total}[cap]
            assert counted <= k, (cap, k, counted)
            assert result.spent["calls"] == openai_server.total + embedder.total
            embedded = max(embedded, embedder.total)
        assert embedded > 0  # the larger caps did leave room for embedding calls
