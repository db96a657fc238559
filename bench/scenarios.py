"""Pull requests whose harmful edits are known, built from the example suites: the scenarios of
`bench/optimizers.py --scenarios`.

    python bench/scenarios.py              # the scenarios of bench/scenarios.json, with their hunks
    python bench/scenarios.py --generate   # measure the edits on the bundled model, choose, write the JSON
    python bench/scenarios.py --check      # measure the chosen scenarios again: do their culprits still hold?

A scenario is the base prompt of an example suite (prompts/, as shipped in gpo_action/example/) and
a head that makes 2 to 4 of the edits in EDITS (each replaces one phrase that occurs once in the
base), as a pull request would. Which of its edits are harmful is measured, not assumed: on the
suite's dev cases (the split the optimizer sees), with the bundled model (local/smollm2, temperature
0 as the templates say), a set C of the scenario's edits is its culprit set when every subset K of
its edits (the head with the others reverted) scores within max_drop (the gate's, 0.02) of the base
exactly when K holds no edit of C. Then reverting C, or any superset, restores the base's score and
nothing else does, so C is the one answer a localization (localize.locate) should give. Checking
that takes all 2^k subsets (at most 16 dev evaluations per scenario), recorded in the JSON.

How they were chosen (`--generate`, reproducible: a fixed table, a fixed order, no sampling): every
edit of EDITS is first scored alone ("singles" in the JSON): harmless when it stays within max_drop
of the base, harmful when it costs at least MIN_HARM (20 points: 3 of 15 dev cases), and left out in
between, so no culprit hangs on one case. Then for each TARGET (suite, edits, culprits), in order, the
first combination of that suite's harmless and harmful edits (itertools.combinations over the table
order) whose edits are separate hunks (split_hunks gives exactly one hunk per edit), that holds
exactly that many harmful edits, and whose subsets obey the rule above (its culprits are then the
harmful edits) becomes the scenario `<suite>-<edits>-<culprits>`; a target no combination meets is
reported and skipped. `--check` measures every subset again in a fresh cache and exits 1 if a
scenario's culprit set no longer holds (a changed model, llama.cpp build or example prompt).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "scenarios.json"
MODEL = "local/smollm2"
TIMEOUT = 900.0   # the local model serializes its calls
MIN_HARM = 0.2    # a harmful edit costs at least this much of the dev score alone


@dataclass(frozen=True)
class Edit:
    name: str
    old: str          # a phrase found exactly once in the base prompt's file
    new: str


# Plausible edits of a pull request to each example prompt, written for this bench. Whether one is
# harmful is what --generate measures; edits of one place exclude each other (their hunks merge).
EDITS: dict[str, tuple[Edit, ...]] = {
    "sentiment": (
        Edit("sys-online", "of product reviews.", "of online product reviews."),
        Edit("sys-assistant", "You label the sentiment", "You are an assistant that labels the sentiment"),
        Edit("sys-both", "of product reviews.", "of product reviews as positive or negative."),
        Edit("ask-product", "review positive?", "product review positive?"),
        Edit("ask-the", "Is this review", "Is the review"),
        Edit("lead-read", "Is this review", "Read the review carefully.\n      Is this review"),
        Edit("review-text", "Review:", "Review text:"),
        Edit("think-steps", "}}\n      Answer", "}}\n      Think step by step.\n      Answer"),
        Edit("answer-only", "one word.", "one word only."),
        Edit("answer-label", "Answer with one word.", "Answer with one word, positive or negative."),
        Edit("answer-yesno", "Answer with one word.", "Answer yes or no."),
    ),
    "sports": (
        Edit("following-this", "Is the following sentence", "Is this sentence"),
        Edit("fan-to", "for a sports fan?", "to a sports fan?"),
        Edit("answer-only", "Answer yes or no.", "Answer only yes or no."),
        Edit("answer-plaus", "Answer yes or no.", "Answer plausible or implausible."),
        Edit("sentence-statement", "Sentence: {{ sentence }}", "Statement: {{ sentence }}"),
        Edit("end-explain", "Answer:", "Explain, then answer:"),
        Edit("end-oneword", "Answer:", "Answer in one word:"),
    ),
}

# (suite, number of edits, number of culprits), in the order they are chosen. A target no
# combination meets is reported and skipped (sentiment has no 4-edit, 1-culprit one: its prompt
# scores 100 on dev, and two or three of its harmless edits together cost it a case or more).
TARGETS: tuple[tuple[str, int, int], ...] = (
    ("sentiment", 2, 1), ("sentiment", 3, 1), ("sentiment", 3, 2), ("sentiment", 4, 1), ("sentiment", 4, 2),
    ("sports", 2, 1), ("sports", 3, 2), ("sports", 4, 1),
)
MIN_SCENARIOS = 4
RULE = ("the culprits C of a scenario: every subset K of its edits (the head with the others reverted) scores "
        "within max_drop of the base on dev exactly when K holds no edit of C")
CHOSEN = ("per target (suite, edits, culprits), in order: the first combination (itertools.combinations over "
          "EDITS in table order) of edits that are harmless alone (within max_drop of the base) or harmful alone "
          "(min_harm or more below it), one hunk each, with that many harmful edits, whose subsets obey the rule")


class ScenarioError(Exception):
    """A scenario's edits do not apply to the base as stated."""


@dataclass(frozen=True)
class Scenario:
    name: str
    suite: str
    edits: tuple[Edit, ...]            # in text order
    culprits: tuple[str, ...]          # names of the harmful edits
    dev: tuple[tuple[tuple[str, ...], float], ...] = ()   # (kept edits, dev score) for every subset, as measured

    @property
    def culprit_hunks(self) -> tuple[int, ...]:
        """The culprits as hunk indexes of base -> head (hunks are in text order, one per edit)."""
        return tuple(i for i, e in enumerate(self.edits) if e.name in self.culprits)

    def head(self, base: str) -> str:
        return apply_edits(base, self.edits)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "suite": self.suite, "culprits": list(self.culprits),
                "edits": [{"name": e.name, "old": e.old, "new": e.new} for e in self.edits],
                "dev": [{"kept": list(kept), "score": score} for kept, score in self.dev]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scenario":
        return cls(data["name"], data["suite"], tuple(Edit(**e) for e in data["edits"]), tuple(data["culprits"]),
                   tuple((tuple(d["kept"]), d["score"]) for d in data.get("dev", ())))


def spans(base: str, edits: Sequence[Edit]) -> list[tuple[int, int]]:
    """Where each edit's phrase is in `base`; refuses a phrase missing or repeated, or overlapping another."""
    found = []
    for edit in edits:
        if base.count(edit.old) != 1:
            raise ScenarioError(f"edit {edit.name!r}: {edit.old!r} occurs {base.count(edit.old)} times in the base")
        start = base.index(edit.old)
        found.append((start, start + len(edit.old)))
    ordered = sorted(found)
    for (_, end), (start, _) in zip(ordered, ordered[1:]):
        if start < end:
            raise ScenarioError(f"edits {', '.join(e.name for e in edits)} overlap")
    return found


def apply_edits(base: str, edits: Sequence[Edit]) -> str:
    out = base
    for (start, end), edit in sorted(zip(spans(base, edits), edits), key=lambda pair: -pair[0][0]):
        out = out[:start] + edit.new + out[end:]
    return out


def in_text_order(base: str, edits: Sequence[Edit]) -> tuple[Edit, ...]:
    return tuple(e for _, e in sorted(zip(spans(base, edits), edits), key=lambda pair: pair[0][0]))


def separate_hunks(base: str, edits: Sequence[Edit]) -> bool:
    """Whether base -> head has one hunk per edit, the i-th hunk at the i-th edit's phrase (text order;
    a hunk may take in the whitespace next to the phrase)."""
    from gpo_action.optimize.localize import split_hunks

    hunks = split_hunks(base, apply_edits(base, edits))
    ordered = sorted(spans(base, edits))
    return len(hunks) == len(edits) and all(h.old_start <= e and s <= h.old_end and not base[h.old_start:s].strip()
                                            and not base[e:h.old_end].strip() for h, (s, e) in zip(hunks, ordered))


def culprits_hold(scores: dict[frozenset[str], float], base: float, culprits: Iterable[str], max_drop: float) -> bool:
    """The rule of the module docstring: a subset of kept edits restores the base's score iff it keeps no culprit."""
    bad = set(culprits)
    return all((score >= base - max_drop - 1e-12) == (not kept & bad) for kept, score in scores.items())


def subsets(edits: Sequence[Edit]) -> list[tuple[Edit, ...]]:
    return [combo for k in range(len(edits) + 1) for combo in itertools.combinations(edits, k)]


def load_scenarios(path: Path = DATA) -> tuple[dict[str, Any], list[Scenario]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return data, [Scenario.from_dict(s) for s in data["scenarios"]]


def base_source(suite_prompt: str) -> str:
    return (ROOT / suite_prompt).read_text(encoding="utf-8")


# ---- measuring on the bundled model ----------------------------------------------------------------


class DevScores:
    """Dev scores of prompt sources of one suite, each measured once (a batch of sources per call)."""

    def __init__(self, suite, client, model) -> None:
        from gpo_action.suites import split_cases

        self.suite, self.client, self.model = suite, client, model
        self.dev = split_cases(suite)[0]
        self.known: dict[str, float] = {}

    def __call__(self, sources: Sequence[str]) -> list[float]:
        from gpo_action.evaluate import EvalJob, evaluate_jobs
        from gpo_action.templates import parse_template

        todo = list(dict.fromkeys(s for s in sources if s not in self.known))
        if todo:
            path = str(ROOT / self.suite.prompt)
            jobs = [EvalJob(self.suite, parse_template(s, path), self.model, self.dev) for s in todo]
            for source, result in zip(todo, evaluate_jobs(jobs, self.client)):
                if result.errors:
                    raise ScenarioError(f"{self.suite.name}: {result.errors} dev cases failed on {self.model.name}")
                self.known[source] = sum(c.score or 0.0 for c in result.cases) / len(result.cases)
        return [self.known[s] for s in sources]


def measure_subsets(base: str, edits: Sequence[Edit], scores: DevScores) -> dict[frozenset[str], float]:
    combos = subsets(edits)
    found = scores([apply_edits(base, combo) for combo in combos])
    return {frozenset(e.name for e in combo): score for combo, score in zip(combos, found)}


def choose(suite_name: str, size: int, culprits: int, base: str, base_score: float, singles: dict[str, float],
           scores: DevScores, max_drop: float, say: Callable[[str], None]) -> Scenario | None:
    """The first combination of the suite's edits that meets the target (module docstring)."""
    harmful = {name for name, score in singles.items() if score <= base_score - MIN_HARM + 1e-12}
    harmless = {name for name, score in singles.items() if score >= base_score - max_drop - 1e-12}
    for combo in itertools.combinations(EDITS[suite_name], size):
        if sum(e.name in harmful for e in combo) != culprits or not all(e.name in harmful | harmless for e in combo):
            continue
        try:
            if not separate_hunks(base, combo):
                continue
        except ScenarioError:       # two edits of one phrase
            continue
        edits = in_text_order(base, combo)
        found = measure_subsets(base, edits, scores)
        bad = [e.name for e in edits if e.name in harmful]
        names = "+".join(e.name for e in edits)
        if culprits_hold(found, base_score, bad, max_drop):
            say(f"chosen {suite_name}-{size}-{culprits}: {names}, culprits {'+'.join(bad)}")
            return Scenario(f"{suite_name}-{size}-{culprits}", suite_name, edits, tuple(bad), ordered_scores(edits, found))
        wrong = [f"{'+'.join(e.name for e in edits if e.name in kept) or 'none'} {100 * score:.1f}"
                 for kept, score in found.items() if not culprits_hold({kept: score}, base_score, bad, max_drop)]
        say(f"passed over {names}: not only {'+'.join(bad)} decide; kept {', '.join(wrong)}")
    return None


def ordered_scores(edits: Sequence[Edit], found: dict[frozenset[str], float]) -> tuple[tuple[tuple[str, ...], float], ...]:
    return tuple((tuple(e.name for e in combo), found[frozenset(e.name for e in combo)]) for combo in subsets(edits))


def open_client(path: Path):
    from gpo_action.llm.cache import ResponseCache
    from gpo_action.llm.client import ClientSettings, LLMClient

    cache = ResponseCache(path)
    return cache, LLMClient(ClientSettings(timeout=TIMEOUT), cache=cache, notes=lambda note: None)


def suites_by_name():
    from gpo_action.workspace import Workspace

    ws = Workspace.open(ROOT / "gpo.yaml")
    return {s.name: s for s in ws.suites()}, ws.config.gate.max_drop


def generate(cache_path: Path, say: Callable[[str], None]) -> dict[str, Any]:
    from gpo_action.llm.types import ModelConfig

    suites, max_drop = suites_by_name()
    model = ModelConfig(MODEL)
    cache, client = open_client(cache_path)
    bases, singles, chosen = {}, {}, []
    with cache, client:
        for suite_name in dict.fromkeys(t[0] for t in TARGETS):
            suite, base = suites[suite_name], base_source(suites[suite_name].prompt)
            scores = DevScores(suite, client, model)
            edits = EDITS[suite_name]
            base_score, *alone = scores([base] + [apply_edits(base, [e]) for e in edits])
            bases[suite_name] = {"dev": base_score, "cases": len(scores.dev)}
            singles[suite_name] = {e.name: s for e, s in zip(edits, alone)}
            say(f"{suite_name}: base dev {100 * base_score:.1f} ({len(scores.dev)} cases); alone: "
                + ", ".join(f"{e.name} {100 * s:.1f}" for e, s in zip(edits, alone)))
            for _, size, culprits in (t for t in TARGETS if t[0] == suite_name):
                scenario = choose(suite_name, size, culprits, base, base_score, singles[suite_name], scores, max_drop, say)
                if scenario is None:
                    say(f"no scenario {suite_name}-{size}-{culprits}: no combination of the edits meets it")
                else:
                    chosen.append(scenario)
    if len(chosen) < MIN_SCENARIOS:
        raise ScenarioError(f"only {len(chosen)} scenarios hold (at least {MIN_SCENARIOS} wanted)")
    return {"model": MODEL, "max_drop": max_drop, "min_harm": MIN_HARM, "split": "dev",
            "generated": f"{datetime.now(timezone.utc):%Y-%m-%d}", "rule": RULE, "chosen": CHOSEN,
            "bases": bases, "singles": singles, "scenarios": [s.to_dict() for s in chosen]}


def check(data: dict[str, Any], scenarios: list[Scenario], cache_path: Path, say: Callable[[str], None]) -> int:
    """Measure every scenario's subsets again; 0 when every culprit set still holds."""
    from gpo_action.llm.types import ModelConfig

    suites, _ = suites_by_name()
    model, max_drop, broken = ModelConfig(data["model"]), data["max_drop"], 0
    cache, client = open_client(cache_path)
    with cache, client:
        per_suite: dict[str, DevScores] = {}
        for scenario in scenarios:
            suite = suites[scenario.suite]
            scores = per_suite.setdefault(scenario.suite, DevScores(suite, client, model))
            base = base_source(suite.prompt)
            found = measure_subsets(base, scenario.edits, scores)
            holds = culprits_hold(found, found[frozenset()], scenario.culprits, max_drop)
            stored = {frozenset(k): v for k, v in scenario.dev}
            changed = sum(abs(found[k] - stored.get(k, -1.0)) > 1e-9 for k in found)
            broken += not holds
            say(f"{scenario.name}: culprits {'+'.join(scenario.culprits)} {'hold' if holds else 'DO NOT HOLD'}; "
                f"{changed} of {len(found)} subset scores differ from the JSON")
    return 1 if broken else 0


def describe(scenarios: list[Scenario], say: Callable[[str], None]) -> None:
    from gpo_action.optimize.localize import split_hunks

    suites, _ = suites_by_name()
    for scenario in scenarios:
        base = base_source(suites[scenario.suite].prompt)
        hunks = split_hunks(base, scenario.head(base))
        shown = "; ".join(f"{i}{'*' if i in scenario.culprit_hunks else ''} {h.render().strip()}"
                          for i, h in enumerate(hunks))
        say(f"{scenario.name}: {len(hunks)} hunks (* culprit): {shown}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--generate", action="store_true", help=f"measure and choose; writes {DATA.name}")
    group.add_argument("--check", action="store_true", help="measure the chosen scenarios again")
    parser.add_argument("--cache", type=Path, help="a response cache to keep between runs (default: a fresh one, "
                                                   "so every score is measured now)")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, flush=True)

    with tempfile.TemporaryDirectory(prefix="gpo-scenarios-") as temp:
        cache = args.cache or Path(temp) / "cache.sqlite"
        if args.generate:
            write_json(DATA, generate(cache, say))
            say(f"wrote {DATA.relative_to(ROOT)}")
            return 0
        data, scenarios = load_scenarios()
        if args.check:
            return check(data, scenarios, cache, say)
        describe(scenarios, say)
        return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
