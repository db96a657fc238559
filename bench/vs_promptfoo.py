"""gpo-action vs promptfoo on the same work: N cases, one `equals` assertion each, one scripted server.

Both tools run as whole processes, alternating, several runs each, at each concurrency, against the
scripted OpenAI-compatible server (tests/support/openai_server.py, a separate process on 127.0.0.1
with a fixed latency, restarted for every measured run so its request count is that run's alone):

- cold: the tool's response cache is emptied first; every case is one request to the server;
- warm: the same run again right after; every case must come from the tool's cache (0 requests).

For each run: wall time, CPU time (user + sys of the process and its children) and peak RSS; both
tools must report the same pass count (N - N // 10: the server echoes, every tenth case expects
something else) and the server must have served exactly N (cold) or 0 (warm) requests. Then, per
concurrency, the medians, the ratio gpo-action / promptfoo, and the ideal ceil(N / C) x latency.

promptfoo is the npm package, installed on first use outside the repository, into
~/.cache/gpo-action-bench/promptfoo (`npm install --prefix`); without npm the bench says so and
skips. It runs with telemetry, update checks, sharing, remote generation and its debug log file off,
its config dir and cache under the bench's temp dir, and HTTP(S)_PROXY pointing at a closed port on 127.0.0.1 (with
NO_PROXY=127.0.0.1), so the one "telemetry disabled" ping it still sends never leaves the machine.
When strace is installed, one small run of each tool is traced first and every socket connect must
go to 127.0.0.1 (the `offline_check:` line); the bench stops otherwise.

    python bench/vs_promptfoo.py                        # N=1000, 200 ms, C=4,16,64, 3 runs (~15 min)
    python bench/vs_promptfoo.py --quick                # N=200, 50 ms, C=16, 1 run (~1 min)
    python bench/vs_promptfoo.py --runs 3 --runs-c4 2   # fewer runs at C=4, the slowest
    python bench/vs_promptfoo.py --promptfoo-arg=--no-write   # promptfoo without its eval database

Targets (issue 18; N=1000, 200 ms): cold, gpo-action <= 0.6x promptfoo's wall at every concurrency,
and <= 1.05x (ideal + litellm's import) at C=4 and C=16, <= 1.3x at C=64; warm <= 0.11x promptfoo
(unchanged from 0.07-0.11x). litellm's import is `python -c "import litellm"` here, median of 3.
Last line: `summary:`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness import (bench_main, HOST, KEY_ENV, BenchError, Measured, ServerProcess, case_rows, check_report, clear_cache,
                     eval_argv, expected_passes, free_port, machine_line, measure, show,
                     startup_seconds, verdict, write_project)

PROMPTFOO_VERSION = "0.121.20"  # the newest release that still runs on Node 20.20 (0.122+ want Node 22.22)
INSTALL_DIR = Path(os.environ.get("GPO_BENCH_CACHE", Path.home() / ".cache" / "gpo-action-bench")) / "promptfoo"
DEAD_PROXY = f"http://{HOST}:9"  # nothing listens there: any request not to 127.0.0.1 fails on the spot
TARGET_COLD = 0.6
TARGET_WARM = 0.11


def target_ideal(concurrency: int) -> float:
    """Cold wall against ideal + litellm's import: 1.05x, 1.3x at concurrency 64 and above."""
    return 1.3 if concurrency >= 64 else 1.05
TOOLS = ("promptfoo", "gpo-action")


@dataclass(frozen=True)
class Run:
    tool: str
    cache: str  # "cold" | "warm"
    concurrency: int
    m: Measured
    passed: int
    served: int
    peak: int | None


# ---- promptfoo ------------------------------------------------------------------------------------


def promptfoo_bin(version: str) -> Path | None:
    """The promptfoo executable of `version`, installed on first use; None without npm."""
    binary = INSTALL_DIR / "node_modules" / ".bin" / "promptfoo"
    package = INSTALL_DIR / "node_modules" / "promptfoo" / "package.json"
    if binary.exists() and package.exists() and json.loads(package.read_text())["version"] == version:
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    show("promptfoo_install", f"npm install --prefix {INSTALL_DIR} promptfoo@{version} (first use)")
    proc = subprocess.run([npm, "install", "--prefix", str(INSTALL_DIR), "--no-audit", "--no-fund",
                           "--loglevel=error", f"promptfoo@{version}"], capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0 or not binary.exists():
        raise BenchError(f"npm install promptfoo@{version} failed: {proc.stderr.strip()[-2000:]}")
    return binary


def promptfoo_env(work: Path, root: Path) -> dict[str, str]:
    return {
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
        "PROMPTFOO_DISABLE_REDTEAM_REMOTE_GENERATION": "1",
        "PROMPTFOO_CONFIG_DIR": str(work / "promptfoo-home"),
        "PROMPTFOO_CACHE_PATH": str(root / ".promptfoo-cache"),
        # its per-run debug log file: 0.121.20 crashes at exit on a warm 1,000-case run while writing
        # it ("write after end", exit 1); off, promptfoo also does a little less work than by default
        "PROMPTFOO_DISABLE_DEBUG_LOG": "1",
        "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY,
        "NO_PROXY": f"{HOST},localhost", "no_proxy": f"{HOST},localhost",
        "NODE_NO_WARNINGS": "1",
    }


def write_promptfoo(root: Path, url: str, n: int, max_tokens: int | None = None) -> None:
    """The same suite for promptfoo: the same template, vars and one `equals` per case (and
    `max_tokens` as gpo-action's, when given)."""
    root.mkdir(parents=True, exist_ok=True)
    limit = f", max_tokens: {max_tokens}" if max_tokens else ""
    (root / "promptfooconfig.yaml").write_text(
        "description: gpo-action bench\n"
        "prompts:\n  - 'Say {{ word }}'\n"
        "providers:\n"
        "  - id: openai:chat:scripted\n"
        f"    config: {{apiBaseUrl: '{url}/v1', apiKeyEnvar: {KEY_ENV}{limit}}}\n"
        "defaultTest:\n  assert:\n    - {type: equals, value: '{{ expected }}'}\n"
        "tests: file://tests.jsonl\n",
        encoding="utf-8",
    )
    lines = [json.dumps({"vars": row}) for row in case_rows(n)]
    (root / "tests.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


PROMPTFOO_EXTRA: list[str] = []  # --promptfoo-arg values, e.g. --no-write


def promptfoo_argv(binary: Path, concurrency: int) -> list[str]:
    """promptfoo's eval as run in CI, at its defaults (it also records the eval in its own database,
    under PROMPTFOO_CONFIG_DIR), without the table and progress bar; plus --promptfoo-arg values."""
    return [str(binary), "eval", "-c", "promptfooconfig.yaml", "-o", "pf-out.json", "-j", str(concurrency),
            "--no-table", "--no-progress-bar", *PROMPTFOO_EXTRA]


def promptfoo_passes(root: Path, n: int) -> int:
    stats = json.loads((root / "pf-out.json").read_text(encoding="utf-8"))["results"]["stats"]
    got = (stats["successes"], stats["failures"], stats["errors"])
    want = (expected_passes(n), n - expected_passes(n), 0)
    if got != want:
        raise BenchError(f"promptfoo in {root}: passed/failed/errors {got}, expected {want}")
    return stats["successes"]


# ---- runs -----------------------------------------------------------------------------------------


def run_tool(tool: str, root: Path, work: Path, binary: Path, n: int, c: int, latency: float,
             cache: str, timeout: float, port: int) -> Run:
    """One measured run of `tool` in `root` against a fresh server on `port`; checked before it is kept."""
    if cache == "cold":
        if tool == "promptfoo":
            shutil.rmtree(root / ".promptfoo-cache", ignore_errors=True)
        else:
            clear_cache(root)
    with ServerProcess(latency, work, "--port", str(port)) as server:
        if tool == "promptfoo":
            write_promptfoo(root, server.url, n)
            (root / "pf-out.json").unlink(missing_ok=True)
            m = measure(promptfoo_argv(binary, c), root, timeout, env=promptfoo_env(work, root))
        else:
            write_project(root, server.url, n, c)
            (root / "out.json").unlink(missing_ok=True)
            m = measure(eval_argv(), root, timeout)
    if tool == "promptfoo":
        if m.code != 0 and m.code != 100:  # 100: promptfoo's exit code when some test failed
            raise BenchError(f"promptfoo exited {m.code}: {(m.stderr + m.stdout).strip()[-2000:]}")
        passed = promptfoo_passes(root, n)
    else:
        if m.code != 0:
            raise BenchError(f"gpo-action exited {m.code}: {m.stderr.strip()[-2000:]}")
        passed = check_report(root, n, cached=cache == "warm")["suites"][0]["passed"]
    served = server.served()
    if served != (n if cache == "cold" else 0):
        raise BenchError(f"{tool} {cache} C={c}: the server served {served} requests, expected {n if cache == 'cold' else 0}")
    return Run(tool, cache, c, m, passed, served, server.peak())


def describe(run: Run) -> str:
    return (f"wall={run.m.wall:.2f}s cpu={run.m.cpu:.2f}s rss={run.m.maxrss_mb:.0f}MB "
            f"tree_pss={run.m.tree_pss_mb:.0f}MB passed={run.passed} "
            f"served={run.served} server_peak={run.peak}")


def offline_check(work: Path, binary: Path) -> str:
    """Trace one small run of each tool; every inet connect must go to 127.0.0.1."""
    strace = shutil.which("strace")
    if strace is None:
        return f"skipped (no strace); proxies point at {DEAD_PROXY}"
    notes = []
    for tool in TOOLS:
        root = work / f"offline-{tool}"
        trace = work / f"offline-{tool}.strace"
        with ServerProcess(0.0, work) as server:
            if tool == "promptfoo":
                write_promptfoo(root, server.url, 20)
                argv, env = promptfoo_argv(binary, 4), promptfoo_env(work, root)
            else:
                write_project(root, server.url, 20, 4)
                argv, env = eval_argv(), None
            m = measure([strace, "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *argv], root, 300, env=env)
        if m.code not in (0, 100):
            raise BenchError(f"offline check of {tool} exited {m.code}: {m.stderr.strip()[-1000:]}")
        text = trace.read_text(errors="replace")
        inet = re.findall(r'connect\(\d+, \{sa_family=AF_INET6?, (?:sin6?_port=htons\((\d+)\), )?[^}]*?'
                          r'(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")', text)
        targets = {(addr or addr6, port) for port, addr, addr6 in inet}
        foreign = sorted(t for t in targets if t[0] not in ("127.0.0.1", "::1", "::ffff:127.0.0.1"))
        if foreign:
            raise BenchError(f"{tool} tried to reach {foreign} (trace {trace}): it must only talk to 127.0.0.1")
        notes.append(f"{tool} {len(inet)} inet connects, all to 127.0.0.1")
    return "ok (" + "; ".join(notes) + ")"


def median(runs: list[Run], attr: str) -> float:
    return statistics.median(getattr(r.m, attr) for r in runs)


def bench(args: argparse.Namespace, work: Path) -> int:
    show("machine", machine_line()[len("machine: "):])
    binary = promptfoo_bin(args.promptfoo_version)
    if binary is None:
        show("skip", "npm (or node) is not installed: cannot run promptfoo; install Node.js and npm to compare")
        show("summary", "skipped (npm unavailable)")
        return 0
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    show("promptfoo", f"{args.promptfoo_version} ({binary}) on node {node}; "
                      f"argv: {' '.join(promptfoo_argv(Path('promptfoo'), 0)).replace(' -j 0', ' -j C')}")
    show("offline_check", offline_check(work, binary))

    n, latency = args.cases, args.latency
    show("startup_help_s", f"{startup_seconds(work):.3f} (gpo-action --help, median of 5)")
    startup = statistics.median(measure([sys.executable, "-c", "import litellm"], work, 120).wall for _ in range(3))
    show("litellm_import_s", f"{startup:.3f} (python -c 'import litellm', median of 3: the +import of the ideal)")
    pf_start = statistics.median(measure([str(binary), "--version"], work, 120,
                                         env=promptfoo_env(work, work)).wall for _ in range(3))
    show("promptfoo_version_s", f"{pf_start:.3f} (promptfoo --version, median of 3)")
    show("setup", f"N={n} latency={latency:g}s concurrency={','.join(map(str, args.concurrency))} "
                  f"runs={args.runs} (C=4: {args.runs_c4 or args.runs}); alternating tools, cold then warm")

    table: dict[tuple[int, str], dict[str, float]] = {}
    for c in args.concurrency:
        ideal = math.ceil(n / c) * latency
        timeout = 300 + 4 * ideal
        runs: list[Run] = []
        port = free_port()
        count = args.runs_c4 if (c == 4 and args.runs_c4) else args.runs
        for r in range(count):
            order = TOOLS if r % 2 == 0 else TOOLS[::-1]
            for tool in order:
                root = work / f"C{c}-{tool}"
                for cache in ("cold", "warm"):
                    run = run_tool(tool, root, work, binary, n, c, latency, cache, timeout, port)
                    runs.append(run)
                    show(f"run_C{c}_{r + 1}_{tool}_{cache}", describe(run))
        for cache in ("cold", "warm"):
            mine = [x for x in runs if x.cache == cache]
            pf = [x for x in mine if x.tool == "promptfoo"]
            ours = [x for x in mine if x.tool == "gpo-action"]
            if {x.passed for x in mine} != {expected_passes(n)}:
                raise BenchError(f"C={c} {cache}: pass counts differ: {sorted({x.passed for x in mine})}")
            row = {"pf_wall": median(pf, "wall"), "gpo_wall": median(ours, "wall"),
                   "pf_cpu": median(pf, "cpu"), "gpo_cpu": median(ours, "cpu"),
                   "pf_rss": median(pf, "maxrss_mb"), "gpo_rss": median(ours, "maxrss_mb"),
                   "pf_pss": median(pf, "tree_pss_mb"), "gpo_pss": median(ours, "tree_pss_mb")}
            row["ratio"] = row["gpo_wall"] / row["pf_wall"]
            table[(c, cache)] = row
            target = TARGET_COLD if cache == "cold" else TARGET_WARM
            line = (f"promptfoo wall={row['pf_wall']:.2f}s cpu={row['pf_cpu']:.2f}s rss={row['pf_rss']:.0f}MB "
                    f"tree_pss={row['pf_pss']:.0f}MB | "
                    f"gpo-action wall={row['gpo_wall']:.2f}s cpu={row['gpo_cpu']:.2f}s rss={row['gpo_rss']:.0f}MB "
                    f"tree_pss={row['gpo_pss']:.0f}MB | "
                    f"ratio={row['ratio']:.2f}x target <={target:g}x: {verdict(row['ratio'], target)}")
            if cache == "cold":
                row["vs_ideal"] = row["gpo_wall"] / (ideal + startup)
                line += (f" | ideal={ideal:.2f}s +import={ideal + startup:.2f}s gpo/ideal={row['vs_ideal']:.2f}x "
                         f"pf/ideal={row['pf_wall'] / (ideal + startup):.2f}x target <={target_ideal(c):g}x: "
                         f"{verdict(row['vs_ideal'], target_ideal(c))}")
            show(f"C{c}_{cache}", f"medians of {len(pf)} runs each: {line}")

    parts = []
    for c in args.concurrency:
        cold, warm = table[(c, "cold")], table[(c, "warm")]
        parts.append(f"C{c} cold={cold['ratio']:.2f}x ideal={cold['vs_ideal']:.2f}x warm={warm['ratio']:.2f}x")
    met = all(table[(c, "cold")]["ratio"] <= TARGET_COLD and table[(c, "cold")]["vs_ideal"] <= target_ideal(c)
              and table[(c, "warm")]["ratio"] <= TARGET_WARM for c in args.concurrency)
    show("summary", f"gpo-action/promptfoo wall, N={n} {latency * 1000:g}ms: " + "; ".join(parts)
         + f" (targets cold <={TARGET_COLD:g}x promptfoo and <=1.05x (1.3x at C>=64) ideal+import, "
           f"warm <={TARGET_WARM:g}x): "
         + ("all met" if met else "NOT all met"))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=None, help="cases in the suite (default 1000)")
    parser.add_argument("--latency", type=float, default=None, help="server latency, seconds (default 0.2)")
    parser.add_argument("--concurrency", default=None, help="concurrencies, e.g. 4,16,64 (the default)")
    parser.add_argument("--runs", type=int, default=None, help="runs of each tool per concurrency (default 3)")
    parser.add_argument("--runs-c4", type=int, default=None, help="runs at C=4, the slowest (default: --runs)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: N=200, 50 ms, C=16, 1 run")
    parser.add_argument("--promptfoo-version", default=PROMPTFOO_VERSION)
    parser.add_argument("--promptfoo-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for promptfoo eval (repeatable), e.g. --promptfoo-arg=--no-write")
    args = parser.parse_args(argv)
    PROMPTFOO_EXTRA[:] = args.promptfoo_arg
    quick = args.quick
    args.cases = args.cases if args.cases is not None else (200 if quick else 1000)
    args.latency = args.latency if args.latency is not None else (0.05 if quick else 0.2)
    args.runs = args.runs if args.runs is not None else (1 if quick else 3)
    try:
        args.concurrency = [int(c) for c in (args.concurrency or ("16" if quick else "4,16,64")).split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency takes integers separated by commas, e.g. 4,16,64")
    if not args.concurrency or min(args.concurrency) < 1 or max(args.concurrency) > 1024:
        parser.error("--concurrency values must be between 1 and 1024")
    if not 1 <= args.cases <= 100_000:
        parser.error("--cases takes 1 to 100000")
    if not 0 <= args.latency <= 5:
        parser.error("--latency takes 0 to 5 seconds")
    if args.runs < 1 or (args.runs_c4 is not None and args.runs_c4 < 1):
        parser.error("--runs and --runs-c4 take 1 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    return bench_main(bench, parse_args(argv), "gpo-vs-promptfoo-")


if __name__ == "__main__":
    sys.exit(main())
