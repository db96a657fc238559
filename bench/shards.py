"""Sharded against unsharded: `gpo-action run` over N cases, and the same run as S shards at once + merge.

A git repository in a temp dir holds the speed project (`harness.write_project`: N cases, one
`equals` each) on `main` and a pull request that edits the prompt (`Say {{ word }}.`), so every case
is evaluated on both sides (2N requests). The scripted server (a separate process, echoing, with a
fixed latency) answers both runs. Measured as whole processes under `harness.measure`:

- unsharded: `run --base main --json` in a checkout of its own (cold cache);
- sharded: S checkouts, `run --base main --shard K/S` in all of them at once (each with its own
  cold cache, concurrency C each, as matrix jobs are), then `merge` of the S partials in one of
  them. The sharded wall is the slowest shard plus the merge. The merge's verdict, p-value and
  per-case outcomes must equal the unsharded run's, and it must ask the server nothing.

    python bench/shards.py                        # N=10,000, 200 ms, C=16, S=4 (~6 minutes on 2 cores)
    python bench/shards.py --quick                # N=1,000, 50 ms: a smoke run (~30 s)

Targets (the full run): sharded wall <= 0.35x the unsharded wall; the merge of the 4 partials
under 2 s (the median of MERGE_RUNS merges, each shown) and 300 MB (tree PSS, the largest). Last
line: `summary:`. On one machine the shards share its cores, which a matrix does not: the ratio
here is an upper bound of what a matrix of runners gives.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import (BenchError, Measured, ServerProcess, machine_line, measure, run_guarded, show, verdict,
                     write_project)

TARGET_RATIO = 0.35
TARGET_MERGE_S = 2.0
TARGET_MERGE_MB = 300.0
MERGE_RUNS = 3  # the merge is measured 3 times (one run is a single sample of this host's noise): its median


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


def make_repository(root: Path, url: str, n: int, concurrency: int) -> Path:
    write_project(root, url, n, concurrency)
    (root / ".gitignore").write_text(".gpo/\n*.json\n!evals/**\n", encoding="utf-8")
    _git(root, "-c", "init.defaultBranch=main", "init", "-q")
    _git(root, "-c", "user.email=b@example.com", "-c", "user.name=b", "add", "-A")
    _git(root, "-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-qm", "base")
    _git(root, "checkout", "-qb", "pr")
    (root / "prompts" / "say.j2").write_text("Say {{ word }}.", encoding="utf-8")
    _git(root, "-c", "user.email=b@example.com", "-c", "user.name=b", "commit", "-qam", "a full stop")
    return root


def _gpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "gpo_action", *args]


def _run(argv: list[str], cwd: Path, timeout: float, ok: tuple[int, ...]) -> Measured:
    m = measure(argv, cwd, timeout)
    if m.code not in ok:
        raise BenchError(f"{' '.join(argv[3:])} in {cwd.name} exited {m.code}: {m.stderr.strip()[-2000:]}")
    return m


def _essence(report: dict) -> dict:
    """What the merge must reproduce: the comparisons and every case's outcome on both sides."""
    def cases(results):
        return [[(c["case_id"], c["passed"], c["score"], c["error"]) for c in r["cases"]] for r in results if r]
    return {"comparisons": report["comparisons"], "base": cases(report["base_results"]),
            "head": cases(report["head_results"])}


def bench(n: int, latency: float, concurrency: int, shards: int, timeout: float) -> int:
    print(machine_line())
    show("setup", f"N={n} cases on each side (2N={2 * n} requests), latency {latency * 1000:.0f} ms, "
                  f"concurrency {concurrency} per process, {shards} shards")
    with tempfile.TemporaryDirectory(prefix="gpo-bench-shards-") as tmp, ServerProcess(latency, Path(tmp)) as server:
        source = make_repository(Path(tmp) / "source", server.url, n, concurrency)
        copies = []
        for name in ["unsharded", *(f"shard{k}" for k in range(1, shards + 1))]:
            shutil.copytree(source, Path(tmp) / name)
            copies.append(Path(tmp) / name)
        unsharded, jobs = copies[0], copies[1:]

        one = _run(_gpo("run", "--base", "main", "--json", "out.json"), unsharded, timeout, (1,))
        show("unsharded", f"wall {one.wall:.1f} s, cpu {one.cpu:.1f} s, tree_pss {one.tree_pss_mb:.0f} MB "
                          f"(ideal ceil(2N/C) x latency = {-(-2 * n // concurrency) * latency:.1f} s)")

        results: dict[int, Measured] = {}
        errors: list[BaseException] = []

        def shard(k: int, cwd: Path) -> None:
            try:
                results[k] = _run(_gpo("run", "--base", "main", "--shard", f"{k}/{shards}"), cwd, timeout, (0,))
            except BaseException as error:  # reported below, after every thread ended
                errors.append(error)

        started = time.monotonic()
        threads = [threading.Thread(target=shard, args=(k, cwd)) for k, cwd in enumerate(jobs, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        shards_wall = time.monotonic() - started
        if errors:
            raise errors[0]
        for k in sorted(results):
            m = results[k]
            show(f"shard {k}/{shards}", f"wall {m.wall:.1f} s, cpu {m.cpu:.1f} s, tree_pss {m.tree_pss_mb:.0f} MB")
        partials = [str(cwd / ".gpo" / f"partial-{k}-of-{shards}.json") for k, cwd in enumerate(jobs, 1)]
        merges = sorted((_run(_gpo("merge", *partials, "--base", "main", "--json", "merged.json"), jobs[0], timeout, (1,))
                         for _ in range(MERGE_RUNS)), key=lambda m: m.wall)
        merged, peak_mb = merges[len(merges) // 2], max(m.tree_pss_mb for m in merges)
        show("merge", f"wall {merged.wall:.2f} s (median of {MERGE_RUNS}: {', '.join(f'{m.wall:.2f}' for m in merges)}), "
                      f"cpu {merged.cpu:.2f} s, tree_pss {peak_mb:.0f} MB (the largest), "
                      f"partials {sum(Path(p).stat().st_size for p in partials) / 1e6:.1f} MB")
        want = _essence(json.loads((unsharded / "out.json").read_text(encoding="utf-8")))
        got = _essence(json.loads((jobs[0] / "merged.json").read_text(encoding="utf-8")))
        if got != want:
            raise BenchError("the merged verdicts or per-case outcomes differ from the unsharded run's")
        show("same", f"merged comparisons and all {2 * n} per-case outcomes equal the unsharded run's "
                     f"(verdict {got['comparisons'][0]['verdict']}, p = {got['comparisons'][0]['p_value']:.3g})")

    if server.served() != 4 * n:  # 2N unsharded + 2N over the shards: the merge asked nothing
        raise BenchError(f"the server answered {server.served()} requests, expected {4 * n}")
    sharded = shards_wall + merged.wall
    ratio = sharded / one.wall
    show("ratio", f"sharded (slowest shard {shards_wall:.1f} s + merge {merged.wall:.2f} s = {sharded:.1f} s) / "
                  f"unsharded {one.wall:.1f} s = {ratio:.2f}x (target <= {TARGET_RATIO}x: {verdict(ratio, TARGET_RATIO)})")
    show("summary", f"N={n} S={shards} C={concurrency} latency={latency * 1000:.0f}ms ratio={ratio:.2f}x "
                    f"({verdict(ratio, TARGET_RATIO)}); merge {merged.wall:.2f} s ({verdict(merged.wall, TARGET_MERGE_S)}; "
                    f"{merges[0].wall:.2f}-{merges[-1].wall:.2f} s over {MERGE_RUNS}), "
                    f"{peak_mb:.0f} MB ({verdict(peak_mb, TARGET_MERGE_MB)})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=1,000 at 50 ms: a smoke run")
    parser.add_argument("--cases", type=int, default=None)
    parser.add_argument("--latency", type=float, default=None, help="seconds per response")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    n = args.cases or (1000 if args.quick else 10_000)
    latency = args.latency if args.latency is not None else (0.05 if args.quick else 0.2)
    return run_guarded(lambda: bench(n, latency, args.concurrency, args.shards, timeout=3600))


if __name__ == "__main__":
    sys.exit(main())
