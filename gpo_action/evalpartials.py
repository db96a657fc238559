"""An `eval` shard's partial report (`gpo-action eval --shard K/N`), and eval partials put back
together (`gpo-action merge`, which tells them from a run's by their kind).

A shard evaluates the cases it holds of each chosen suite (`shards.py`: the same case-id hash as
`run --shard`) and writes every per-case outcome, its usage, the models it could not run, the
suites it was given, and the eval's fingerprint: what was evaluated (each job's identity, a digest
of its prompt, cases, assertions, model and settings: `basehead.job_identity`), each suite's
floor, the judge and embedding models and `max_error_rate`. The merge plans the same eval on its
checkout, checks every partial against it, and takes the outcomes from them in place of
evaluating; the exit code and the reports are then the unsharded eval's own code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gpo_action import __version__
from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob
from gpo_action.llm.types import ModelConfig
from gpo_action.partials import PARTIAL_KIND, check_shard_set, merged_result, partial_kind, read_partial_data
from gpo_action.results import SuiteResult
from gpo_action.shards import Shard

EVAL_PARTIAL_KIND = "eval-partial"
EVAL_WRITER = "`gpo-action eval --shard K/N` writes it"


@dataclass(frozen=True)
class EvalPartialJob:
    """One suite, on the shard's cases only."""

    identity: str             # `basehead.job_identity`: what the job evaluates
    result: SuiteResult

    def to_dict(self) -> dict[str, Any]:
        return {"identity": self.identity, "result": self.result.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvalPartialJob":
        return cls(str(data["identity"]), SuiteResult.from_dict(data["result"]))


@dataclass(frozen=True)
class EvalPartial:
    shard: Shard
    fingerprint: str          # `eval_fingerprint`
    suites: tuple[str, ...]   # the suites evaluated, by name, in order
    jobs: tuple[EvalPartialJob, ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    skipped_models: Mapping[str, str] = field(default_factory=dict)  # model -> why it could not run here
    source: str = ""          # the file it was read from, for messages

    def to_dict(self) -> dict[str, Any]:
        return {"tool": "gpo-action", "version": __version__, "kind": EVAL_PARTIAL_KIND, "shard": self.shard.to_dict(),
                "fingerprint": self.fingerprint, "suites": list(self.suites), "usage": dict(self.usage or {}),
                "skipped_models": dict(self.skipped_models), "jobs": [j.to_dict() for j in self.jobs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "") -> "EvalPartial":
        shard = data["shard"]
        return cls(Shard(int(shard["index"]), int(shard["count"])), str(data["fingerprint"]),
                   tuple(str(s) for s in data["suites"]), tuple(EvalPartialJob.from_dict(j) for j in data["jobs"]),
                   dict(data.get("usage") or {}), {str(k): str(v) for k, v in (data.get("skipped_models") or {}).items()},
                   source)

    def cases(self) -> int:
        return sum(len(j.result.cases) for j in self.jobs)


def eval_fingerprint(jobs: Sequence[tuple[EvalJob, str]], *, judge: ModelConfig | None,
                     embedding: ModelConfig | None, max_error_rate: float) -> str:
    """What every shard of one eval and its merge share: each (job, identity) with its suite's floor,
    the models that grade, and the error tolerance (the exit code's)."""
    def model(m: ModelConfig | None):
        return None if m is None else (m.name, tuple(sorted(m.public_params().items(), key=str)))

    data = ([(job.suite.name, identity, job.suite.min_score) for job, identity in jobs], model(judge), model(embedding),
            max_error_rate)
    return hashlib.sha256(repr(data).encode("utf-8")).hexdigest()


def are_eval_partials(paths: Sequence[str | os.PathLike]) -> bool:
    """True when the files given to `merge` are eval partials, False for a run's (or files that name
    no kind: the run's loader says what is wrong with them); InputError for a mix, naming one of each."""
    kinds = {str(path): partial_kind(path) for path in paths}
    evals = [path for path, kind in kinds.items() if kind == EVAL_PARTIAL_KIND]
    runs = [path for path, kind in kinds.items() if kind == PARTIAL_KIND]
    if evals and runs:
        raise InputError(f"{evals[0]} is a partial of `eval --shard`, {runs[0]} one of `run --shard`: "
                         "a merge takes the partials of one sharded command", hint="merge each command's partials apart")
    return bool(evals)


def load_eval_partial(path: str | os.PathLike) -> EvalPartial:
    """The eval partial at `path`; InputError naming the file, as `partials.load_partial`."""
    data = read_partial_data(path, EVAL_PARTIAL_KIND, EVAL_WRITER)
    try:
        return EvalPartial.from_dict(data, str(path))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"malformed eval partial report ({type(exc).__name__}: {exc})", str(path),
                         hint=EVAL_WRITER) from None


def check_eval_partials(partials: Sequence[EvalPartial], fingerprint: str) -> None:
    """Refuse partials that are not exactly the shards 1..N of this eval, naming the file."""
    if not partials:
        raise InputError("no partial report to merge", hint="name each shard's partial: gpo-action merge A.json B.json ...")
    for p in partials:
        if p.fingerprint != fingerprint:
            raise InputError(f"{p.source}: made from another configuration or other files (a prompt, the cases, "
                             "an assertion, a model, a floor or the suite settings differ from this checkout's)",
                             hint="merge the partials of one workflow run, on its checkout")
    check_shard_set(partials)


def merged_eval_results(partials: Sequence[EvalPartial], jobs: Sequence[tuple[EvalJob, str]]) -> list[SuiteResult]:
    """Each (job, identity)'s result over all its cases, in the job's order, from the partials."""
    return [merged_result(job, [pj.result for p in partials for pj in p.jobs if pj.identity == identity],
                          f"suite {job.suite.name}") for job, identity in jobs]


def skipped_union(partials: Sequence[EvalPartial]) -> dict[str, str]:
    """The models any shard could not run, each with the first reason given."""
    skipped: dict[str, str] = {}
    for p in partials:
        for name, why in p.skipped_models.items():
            skipped.setdefault(name, why)
    return skipped


def default_eval_partial_path(shard: Shard) -> str:
    """Beside run's partials, never one of them (a workflow may shard both)."""
    return str(Path(".gpo") / f"eval-partial-{shard.index}-of-{shard.count}.json")
