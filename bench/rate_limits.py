"""gpo-action vs promptfoo against a rate-limited provider: how close to the limit's floor, how many 429s.

N cases (one `equals` each, the harness's project) against the scripted server started as its own
process with a rate limit (tests/support/openai_server.py, tests/support/buckets.py): either
`--rps` R requests per second, or `--tpm` T tokens per minute (a request costs its prompt tokens,
2 words here, plus its max_tokens, set to 16 in both tools: 18; the default T = 60 x R x 18 gives
the same floor as R). Each limit is a token bucket holding one second's allowance, starting full,
refilled continuously; a request over it is answered 429 at once with OpenAI's x-ratelimit-*,
retry-after and retry-after-ms headers. Both tools run as whole processes, alternating, with a
fresh response cache and a fresh server each run, at the same concurrency (`-j C` for promptfoo,
`concurrency: C` for gpo-action) and the same server latency.

For each run: wall time against the floor (N / R; with T, N x 18 x 60 / T), the share of requests
the server answered 429 (its own counters), the requests it admitted beyond one per case that got
an answer (`extra`: a case sent again after it was answered), and whether every case got exactly
one outcome (each case once in the tool's report, as a pass, a failure or an error). The bucket starts full, so the
server's own minimum is one second's allowance less than the floor.

promptfoo (installed as bench/vs_promptfoo.py installs it, ~/.cache/gpo-action-bench/promptfoo)
runs with its adaptive scheduler on: `PROMPTFOO_DISABLE_ADAPTIVE_SCHEDULER=false` (its default;
promptfoo's Rate Limits page: "Disable adaptive concurrency (use fixed) ... false", and "the
scheduler uses AIMD ... When a rate limit is hit, concurrency is reduced by 50%"), `-j C` as its
maxConcurrency, the rest at its defaults. gpo-action runs with its default retries
({max: 4, base: 0.5, max_wait: 30}) and max_error_rate 1 (errors are counted, not fatal).

    python bench/rate_limits.py                         # N=1000, R=50 and its T, 3 runs each (~6 min)
    python bench/rate_limits.py --cases 200 --runs 1    # a smoke run
    python bench/rate_limits.py --only gpo --limits rps # one tool, one limit

Targets for gpo-action (each printed met/missed): wall <= 1.1x the floor, <= 5% of requests
answered 429, every case exactly one outcome. Last line: `summary:`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness import (bench_main, BenchError, ServerProcess, case_rows, clear_cache, eval_argv, machine_line,
                     measure, show, write_project)
from vs_promptfoo import PROMPTFOO_VERSION, promptfoo_bin, promptfoo_env, write_promptfoo

PROMPT_TOKENS = 2  # "Say w000001", as the server counts words
MAX_TOKENS = 16
TARGET_FLOOR = 1.1
TARGET_429 = 0.05
GPO_RETRIES = "{max: 4, base: 0.5, max_wait: 30}"  # gpo-action's defaults, spelt out
SCHEDULER_ENV = {"PROMPTFOO_DISABLE_ADAPTIVE_SCHEDULER": "false"}


@dataclass(frozen=True)
class Run:
    tool: str  # "gpo-action" | "promptfoo"
    limit: str  # "rps" | "tpm"
    wall: float
    cpu: float
    code: int | None
    total: int  # requests the server received
    admitted: int
    rate_limited: int
    outcomes: Counter  # "passed" / "failed" / "error" -> cases
    one_each: bool  # every case exactly once, with one outcome
    load: float  # 1-minute load average when the run started

    @property
    def extra_admitted(self) -> int:
        """Requests served beyond one per answered case: a case sent again after it had an answer."""
        return self.admitted - self.outcomes["passed"] - self.outcomes["failed"]

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.total if self.total else 0.0


def tally(words: list[str], kinds: list[str], n: int) -> tuple[Counter, bool]:
    """The outcomes, and whether every case of the suite appears exactly once."""
    expected = {row["word"] for row in case_rows(n)}
    seen = Counter(words)
    return Counter(kinds), set(seen) == expected and all(count == 1 for count in seen.values())


def gpo_outcomes(root: Path, n: int) -> tuple[Counter, bool]:
    path = root / "out.json"
    if not path.exists():
        return Counter(), False
    cases = [c for suite in json.loads(path.read_text(encoding="utf-8"))["suites"] for c in suite["cases"]]
    kinds = ["error" if c.get("error") else "passed" if c.get("passed") else "failed" for c in cases]
    return tally([c["vars"]["word"] for c in cases], kinds, n)


def promptfoo_outcomes(root: Path, n: int) -> tuple[Counter, bool]:
    path = root / "pf-out.json"
    if not path.exists():
        return Counter(), False
    results = json.loads(path.read_text(encoding="utf-8"))["results"]["results"]
    kinds = ["error" if r.get("error") and r.get("failureReason") == 2 else "passed" if r.get("success") else "failed"
             for r in results]
    return tally([r["vars"]["word"] for r in results], kinds, n)


def run_tool(tool: str, limit: str, args: argparse.Namespace, work: Path, binary: Path | None) -> Run:
    """One measured run against a fresh limited server, with an empty response cache."""
    n, c = args.cases, args.concurrency
    root = work / f"{limit}-{tool}"
    root.mkdir(parents=True, exist_ok=True)
    flag = ["--rps", f"{args.rps:g}"] if limit == "rps" else ["--tpm", f"{args.tpm:g}"]
    load = os.getloadavg()[0]
    timeout = 300 + 20 * floor_seconds(limit, args)
    with ServerProcess(args.latency, work, *flag) as server:
        if tool == "promptfoo" and binary is not None:
            shutil.rmtree(root / ".promptfoo-cache", ignore_errors=True)
            write_promptfoo(root, server.url, n, MAX_TOKENS)
            (root / "pf-out.json").unlink(missing_ok=True)
            argv = [str(binary), "eval", "-c", "promptfooconfig.yaml", "-o", "pf-out.json", "-j", str(c),
                    "--no-table", "--no-progress-bar"]
            m = measure(argv, root, timeout, env={**promptfoo_env(work, root), **SCHEDULER_ENV})
        else:
            clear_cache(root)
            write_project(root, server.url, n, c, retries=GPO_RETRIES, max_error_rate=1, max_tokens=MAX_TOKENS)
            (root / "out.json").unlink(missing_ok=True)
            m = measure(eval_argv(), root, timeout)
    outcomes, one_each = (promptfoo_outcomes if tool == "promptfoo" else gpo_outcomes)(root, n)
    if not outcomes:
        raise BenchError(f"{tool} ({limit}) wrote no report; exit {m.code}: {(m.stderr + m.stdout).strip()[-2000:]}")
    counters = server.counters()
    if not counters:
        raise BenchError(f"the server printed no counters (log {server.log_path})")
    return Run(tool, limit, m.wall, m.cpu, m.code, counters["total"], counters["admitted"], counters["rate_limited"],
               outcomes, one_each, load)


def floor_seconds(limit: str, args: argparse.Namespace) -> float:
    if limit == "rps":
        return args.cases / args.rps
    return args.cases * (PROMPT_TOKENS + MAX_TOKENS) * 60 / args.tpm


def describe(run: Run, floor: float) -> str:
    kinds = ", ".join(f"{k} {run.outcomes[k]}" for k in ("passed", "failed", "error") if run.outcomes[k])
    return (f"wall={run.wall:.2f}s ({run.wall / floor:.2f}x floor) cpu={run.cpu:.2f}s exit={run.code} "
            f"requests={run.total} admitted={run.admitted} (extra: {run.extra_admitted}) "
            f"429={run.rate_limited} ({run.share_429:.1%}) "
            f"cases: {kinds}; one outcome each: {'yes' if run.one_each else 'NO'} load={run.load:.2f}")


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def bench(args: argparse.Namespace, work: Path) -> int:
    show("machine", machine_line()[len("machine: "):])
    tools = {"gpo": ["gpo-action"], "promptfoo": ["promptfoo"]}.get(args.only, ["gpo-action", "promptfoo"])
    binary = None
    if "promptfoo" in tools:
        binary = promptfoo_bin(args.promptfoo_version)
        if binary is None:
            show("skip", "npm (or node) is not installed: promptfoo is left out")
            tools.remove("promptfoo")
        else:
            node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
            show("promptfoo", f"{args.promptfoo_version} on node {node}, -j {args.concurrency}, "
                              f"max_tokens {MAX_TOKENS}, {' '.join(f'{k}={v}' for k, v in SCHEDULER_ENV.items())} "
                              "(adaptive scheduler on)")
    if not tools:
        show("summary", "skipped (no tool to run)")
        return 0
    show("setup", f"N={args.cases} rps={args.rps:g} tpm={args.tpm:g} (a request = {PROMPT_TOKENS} prompt + "
                  f"{MAX_TOKENS} max_tokens) latency={args.latency:g}s concurrency={args.concurrency} runs={args.runs} "
                  f"limits={','.join(args.limits)} tools={','.join(tools)}; gpo-action retries {GPO_RETRIES}")
    verdicts = []
    for limit in args.limits:
        floor = floor_seconds(limit, args)
        runs: list[Run] = []
        for r in range(args.runs):
            for tool in (tools if r % 2 == 0 else tools[::-1]):
                run = run_tool(tool, limit, args, work, binary)
                runs.append(run)
                show(f"run_{limit}_{r + 1}_{tool}", describe(run, floor))
        for tool in tools:
            mine = [x for x in runs if x.tool == tool]
            wall = statistics.median(x.wall for x in mine)
            share = statistics.median(x.share_429 for x in mine)
            every = all(x.one_each for x in mine)
            line = (f"floor={floor:.2f}s median wall={wall:.2f}s ({wall / floor:.2f}x floor), median 429 share="
                    f"{share:.1%} (429s {', '.join(str(x.rate_limited) for x in mine)} of "
                    f"{', '.join(str(x.total) for x in mine)} requests), every case one outcome in every run: "
                    f"{'yes' if every else 'NO'}")
            if tool == "gpo-action":
                targets = [(wall <= TARGET_FLOOR * floor, f"wall <= {TARGET_FLOOR:g}x floor"),
                           (share <= TARGET_429, f"429 share <= {TARGET_429:.0%}"),
                           (every, "every case exactly one outcome")]
                line += " | targets: " + "; ".join(f"{name}: {met(ok)}" for ok, name in targets)
                verdicts.append((limit, all(ok for ok, _ in targets), wall / floor, share))
            show(f"{limit}_{tool}", line)
    show("load", f"{os.getloadavg()[0]:.2f} (1-minute, at the end)")
    if verdicts:
        show("summary", "gpo-action: " + "; ".join(f"{limit} wall {ratio:.2f}x floor, 429 share {share:.1%}: "
                                                  f"{'all targets met' if ok else 'NOT all met'}"
                                                  for limit, ok, ratio, share in verdicts))
    else:
        show("summary", "promptfoo only (no gpo-action targets)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each tool per limit")
    parser.add_argument("--rps", type=float, default=50.0, help="the server's requests per second")
    parser.add_argument("--tpm", type=float, default=None,
                        help=f"the server's tokens per minute (default 60 x rps x {PROMPT_TOKENS + MAX_TOKENS}: "
                             "the same floor)")
    parser.add_argument("--limits", default="rps,tpm", help="which limits to run: rps, tpm or both")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency of an admitted request, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="both tools' concurrency (promptfoo -j)")
    parser.add_argument("--only", choices=["gpo", "promptfoo"], default=None)
    parser.add_argument("--promptfoo-version", default=PROMPTFOO_VERSION)
    args = parser.parse_args(argv)
    args.tpm = args.tpm if args.tpm is not None else 60 * args.rps * (PROMPT_TOKENS + MAX_TOKENS)
    args.limits = [x.strip() for x in args.limits.split(",") if x.strip()]
    if not args.limits or set(args.limits) - {"rps", "tpm"}:
        parser.error("--limits takes rps, tpm or rps,tpm")
    if not 1 <= args.cases <= 100_000:
        parser.error("--cases takes 1 to 100000")
    if args.runs < 1 or not 1 <= args.concurrency <= 1024:
        parser.error("--runs takes 1 or more, --concurrency 1 to 1024")
    if args.rps <= 0 or args.tpm <= 0 or not 0 <= args.latency <= 5:
        parser.error("--rps and --tpm must be above 0, --latency 0 to 5 s")
    return args


def main(argv: list[str] | None = None) -> int:
    return bench_main(bench, parse_args(argv), "gpo-rate-limits-")


if __name__ == "__main__":
    sys.exit(main())
