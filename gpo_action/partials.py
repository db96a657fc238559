"""A shard's partial report, and the partials of a matrix put back together (`gpo-action merge`).

A shard (`run --shard K/N`) evaluates the cases it holds (`shards.py`) and writes a partial: every
per-case outcome it computed, both sides, its usage, the base commit, the head commit and the
run's fingerprint (the policy, the gate, the changes and each job's identity: prompt, cases,
assertions, model, settings). The merge job plans the same run on the same checkout, checks every
partial against it (`check_partials`), and takes the outcomes from the partials in place of
evaluating (`merged_results`): the verdicts, the fix stage and the delivery are then the
unsharded run's own code, run once.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gpo_action import __version__
from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob, suite_notes
from gpo_action.results import SuiteResult
from gpo_action.shards import Shard

PARTIAL_KIND = "partial"
WRITER = "`gpo-action run --shard K/N` writes it"


@dataclass(frozen=True)
class PartialJob:
    """One side of one compared suite, on the shard's cases only."""

    side: str                 # "base" or "head"
    identity: str             # `basehead.job_identity`: what the job evaluates
    result: SuiteResult

    def to_dict(self) -> dict[str, Any]:
        return {"side": self.side, "identity": self.identity, "result": self.result.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PartialJob":
        return cls(str(data["side"]), str(data["identity"]), SuiteResult.from_dict(data["result"]))


@dataclass(frozen=True)
class Partial:
    shard: Shard
    base: str                 # the base commit
    head: str                 # the head commit (the working tree's content is in the fingerprint)
    fingerprint: str
    jobs: tuple[PartialJob, ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""          # the file it was read from, for messages

    def to_dict(self) -> dict[str, Any]:
        return {"tool": "gpo-action", "version": __version__, "kind": PARTIAL_KIND, "shard": self.shard.to_dict(),
                "base": self.base, "head": self.head, "fingerprint": self.fingerprint,
                "usage": dict(self.usage or {}), "jobs": [j.to_dict() for j in self.jobs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> "Partial":
        shard = data["shard"]
        return cls(Shard(int(shard["index"]), int(shard["count"])), str(data["base"]), str(data["head"]),
                   str(data["fingerprint"]), tuple(PartialJob.from_dict(j) for j in data["jobs"]),
                   dict(data.get("usage") or {}), source)

    def cases(self) -> int:
        return sum(len(j.result.cases) for j in self.jobs)


def load_partial(path: str | os.PathLike) -> Partial:
    """The partial at `path`; InputError (naming the file) when it is missing, not JSON, not a
    partial of this gpo-action version, or not the shape this version writes."""
    data = read_partial_data(path, PARTIAL_KIND, WRITER)
    try:
        return Partial.from_dict(data, str(path))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"malformed partial report ({type(exc).__name__}: {exc})", str(path), hint=WRITER) from None


def read_partial_data(path: str | os.PathLike, kind: str, writer: str) -> dict[str, Any]:
    """The JSON object at `path`, a gpo-action partial of `kind` written by this version; else an
    InputError naming the file (`writer`: what writes such a file, for the hint)."""
    shown = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InputError(f"no partial report at {shown}", hint=writer) from None
    except IsADirectoryError:
        raise InputError(f"{shown} is a directory, not a partial report") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not a JSON partial report: {exc.msg}", shown, exc.lineno, hint=writer) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read the partial report: {exc}", shown) from None
    if not isinstance(data, dict) or data.get("tool") != "gpo-action" or data.get("kind") != kind:
        raise InputError("not a gpo-action partial report", shown, hint=writer)
    if data.get("version") != __version__:
        raise InputError(f"the partial was written by gpo-action {data.get('version')}; this is gpo-action "
                         f"{__version__}", shown, hint="run every shard and the merge with one gpo-action version")
    return data


KIND_CHARS = 4096  # gpo-action writes "kind" among a partial's first keys
_KIND = re.compile(r'"kind"\s*:\s*"([^"\\]*)"')


def partial_kind(path: str | os.PathLike) -> str | None:
    """The kind a partial file names near its start, without parsing it all; None when it names
    none or cannot be read. Only which loader to give the file: that loader checks everything."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            found = _KIND.search(handle.read(KIND_CHARS))
    except OSError:
        return None
    return found.group(1) if found else None


def check_partials(partials: Sequence[Partial], *, base: str, head: str, fingerprint: str) -> None:
    """Refuse a set of partials that is not exactly the shards 1..N of this run, naming the file."""
    if not partials:
        raise InputError("no partial report to merge", hint="name each shard's partial: gpo-action merge A.json B.json ...")
    for p in partials:
        if p.base != base:
            raise InputError(f"{p.source}: made against base {p.base[:12]}, this run's base is {base[:12]}",
                             hint="merge the partials of one workflow run, on its checkout")
        if p.head != head:
            raise InputError(f"{p.source}: made at head commit {p.head[:12]}, this checkout is at {head[:12]}",
                             hint="merge the partials of one workflow run, on its checkout")
        if p.fingerprint != fingerprint:
            raise InputError(f"{p.source}: made from another configuration (the policy, the gate, a prompt, the "
                             "cases, a model or the suite settings differ from this checkout's)",
                             hint="merge the partials of one workflow run, on its checkout")
    check_shard_set(partials)


def check_shard_set(partials: Sequence[Any]) -> None:
    """Refuse partials (anything with `.shard` and `.source`) that are not exactly the shards 1..N
    of one split: another N, a shard given twice (naming both files), a shard missing."""
    counts = sorted({p.shard.count for p in partials})
    if len(counts) > 1:
        raise InputError(f"the partials split the run in different ways ({' and '.join(f'{n} shards' for n in counts)})")
    count, seen = counts[0], {}
    for p in partials:
        if p.shard.index in seen:
            raise InputError(f"shard {p.shard} is given twice: {seen[p.shard.index]} and {p.source}")
        seen[p.shard.index] = p.source
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in seen]
    if missing:
        raise InputError(f"shard {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing "
                         f"({len(seen)} of {count} partials given)", hint="wait for every matrix job, or re-run the failed one")


def merged_results(partials: Sequence[Partial], jobs: Sequence[tuple[str, EvalJob, str]]) -> list[SuiteResult]:
    """Each (side, job, identity)'s result over all its cases, in the job's order, from the partials;
    InputError when a case is in none of them or in two."""
    return [merged_result(job, [pj.result for p in partials for pj in p.jobs if (pj.side, pj.identity) == (side, identity)],
                          f"suite {job.suite.name} ({side})")
            for side, job, identity in jobs]


def merged_result(job: EvalJob, parts: Sequence[SuiteResult], what: str) -> SuiteResult:
    """`job`'s result over all its cases, in its order, from the shards' `parts` of it, as evaluating
    it unsharded gives it; InputError (`what`: the suite, in words) when a case is in none or in two."""
    by_id: dict[str, Any] = {}
    for part in parts:
        for case in part.cases:
            if case.case_id in by_id:
                raise InputError(f"case {case.case_id!r} of {what} is in two partials")
            by_id[case.case_id] = case
    absent = [c.id for c in job.selected if c.id not in by_id]
    if absent or not parts:
        raise InputError(f"{what}: case {absent[0] if absent else '?'} is in no partial",
                         hint="merge the partials of one workflow run, on its checkout")
    cases = tuple(by_id[c.id] for c in job.selected)
    return SuiteResult(name=job.suite.name, path=job.suite.path, prompt=job.template.path, model=job.model.name,
                       cases=cases, seconds=max(p.seconds for p in parts), min_score=job.suite.min_score,
                       notes=suite_notes(cases))


def summed_usage(partials: Sequence[Partial]) -> dict[str, Any]:
    """The partials' usage added up, key by key (the numbers; a key's first other value is kept)."""
    total: dict[str, Any] = {}
    for p in partials:
        for key, value in (p.usage or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def default_partial_path(shard: Shard) -> str:
    return str(Path(".gpo") / f"partial-{shard.index}-of-{shard.count}.json")
