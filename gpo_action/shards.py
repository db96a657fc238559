"""Which cases one job of a matrix evaluates: `--shard K/N`.

A case belongs to shard K of N by a hash of its id alone, so its base and head samples always fall
in the same shard (the paired test needs both), and adding or removing other cases never moves
it. Shards are numbered from 1, as a matrix's `strategy.job-index + 1` would be written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob

MAX_SHARDS = 256  # GitHub Actions runs at most 256 jobs per matrix
_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int   # K, from 1
    count: int   # N

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise InputError(f"shard count must be 1 to {MAX_SHARDS}, got {self.count}")
        if not 1 <= self.index <= self.count:
            raise InputError(f"shard {self.index}/{self.count}: K must be 1 to {self.count}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        found = _FORM.fullmatch(text or "")
        if found is None:
            raise InputError(f"shard {text!r} is not K/N", hint="write e.g. --shard 2/4 (the second of four shards)")
        return cls(int(found.group(1)), int(found.group(2)))

    def holds(self, case_id: str) -> bool:
        digest = hashlib.sha256(case_id.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_dict(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def shard_job(job: EvalJob, shard: Shard) -> EvalJob:
    """`job` on the cases `shard` holds, in the job's order."""
    return replace(job, cases=tuple(case for case in job.selected if shard.holds(case.id)))
