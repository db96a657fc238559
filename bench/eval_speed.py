"""How fast `gpo-action eval` is: its own per-case overhead, latency-bound runs, a cached re-run.

Runs the real CLI as whole processes (`python -m gpo_action eval`) against the scripted
OpenAI-compatible server, started as a separate process on 127.0.0.1 (its CPU is not counted),
on a generated project in a temp dir: one suite of N cases, one `equals` assertion each, the
one-line template `Say {{ word }}`. The server echoes the prompt; every tenth case expects
something else, so the pass count is known (N - N // 10) and is checked on every run.

    python bench/eval_speed.py                 # the full run (about 5 minutes on 2 cores)
    python bench/eval_speed.py --quick         # a smoke run (small N)
    python bench/eval_speed.py --cases 500 --latency 0.1 --concurrency 4,16

Figures, one per line, then a `summary:` line:
1. overhead: the tool's own time per case (render + score + cache) on a fully warm run, timed
   in-process around `Workspace.evaluate` only; plus cold per-request CPU at zero latency and,
   apart, what raw `litellm.acompletion` costs per call in a process of its own.
2. latency runs: wall, CPU and peak RSS (largest process) and tree PSS (all processes) per concurrency, against the
   ideal ceil(N / C) x latency plus start-up (`gpo-action --help`).
3. cached re-run: a whole process over a fully cached suite, median of 5, with no server running.

Each measured process runs under a fresh wrapper (`harness.measure`) that also waits for the
worker processes gpo-action starts: CPU is the whole tree's, rss the largest single process,
tree_pss the peak memory of all of them together (the 10,000-case target is on tree_pss).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import (HOST, KEY, KEY_ENV, MODEL, ROOT, BenchError, Measured, ServerProcess, bench_env,
                     expected_passes, interrupt, kill_group, machine_line, run_eval, run_guarded, show,
                     startup_seconds, verdict, write_project)

sys.path.insert(0, str(ROOT))

TARGET_OVERHEAD_MS = 1.0
TARGET_RATIO = 1.15
TARGET_CACHED_S = 1.0
TARGET_PSS_MB = 300  # the N=10,000 cold run, the whole process tree (workers included)


# ---- measurements ---------------------------------------------------------------------------------


def warm_in_process(root: Path, n: int, repeats: int) -> list[float]:
    """Seconds of `Workspace.evaluate` over a fully cached suite, in this process, `repeats` times."""
    from gpo_action.workspace import Workspace

    os.environ[KEY_ENV] = KEY
    ws = Workspace.open(root / "gpo.yaml")
    suites = ws.suites()
    seconds = []
    for _ in range(repeats):
        calls = ws.client.usage.calls
        started = time.perf_counter()
        results = ws.evaluate(suites)
        seconds.append(time.perf_counter() - started)
        result = results[0]
        if (result.passed, result.errors, ws.client.usage.calls - calls) != (expected_passes(n), 0, 0):
            raise BenchError(f"warm run of {n}: passed {result.passed}, errors {result.errors}, "
                             f"{ws.client.usage.calls - calls} provider calls")
    ws.client.close()
    ws.client.cache.close()
    return seconds


def raw_litellm(url: str, calls: int, concurrency: int) -> dict:
    """In a process of its own: import time of litellm and CPU per raw `acompletion` call."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--raw-litellm", url,
            "--raw-calls", str(calls), "--concurrency", str(concurrency)]
    proc = subprocess.Popen(argv, env=bench_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except BaseException:
        kill_group(proc)
        raise
    if proc.returncode != 0:
        raise BenchError(f"raw litellm timing failed: {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def raw_litellm_main(url: str, calls: int, concurrency: int) -> None:
    """(The child side of raw_litellm.) Prints one JSON line."""
    from gpo_action.llm.providers import import_litellm

    started, cpu = time.perf_counter(), time.process_time()
    litellm = import_litellm()
    import_wall, import_cpu = time.perf_counter() - started, time.process_time() - cpu

    async def batch(count: int, offset: int) -> None:
        numbers = iter(range(offset, offset + count))

        async def worker() -> None:
            for i in numbers:
                response = await litellm.acompletion(
                    model=MODEL, messages=[{"role": "user", "content": f"Say r{i:06d}"}], api_base=url + "/v1",
                    api_key=KEY, timeout=30, max_retries=0, num_retries=0)
                if response.choices[0].message.content != f"Say r{i:06d}":
                    raise RuntimeError(f"unexpected reply {response.choices[0].message.content!r}")

        await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))

    async def run() -> tuple[float, float]:
        await batch(min(64, calls), 10**6)  # warm-up: connections, lazy imports
        started, cpu = time.perf_counter(), time.process_time()
        await batch(calls, 0)
        return time.perf_counter() - started, time.process_time() - cpu

    wall, cpu = asyncio.run(run())
    print(json.dumps({"import_wall": import_wall, "import_cpu": import_cpu, "calls": calls,
                      "wall": wall, "cpu": cpu, "cpu_per_call_ms": cpu / calls * 1000}))


# ---- the run --------------------------------------------------------------------------------------


def bench(args: argparse.Namespace, work: Path) -> int:
    quick = args.quick
    sizes = (100, 400) if quick else (1000, 10000)
    n = args.cases if args.cases is not None else (64 if quick else 1000)
    repeats = 3 if quick else 5
    show("machine", machine_line()[len("machine: "):])

    startup = startup_seconds(work)
    show("startup_help_s", f"{startup:.3f} (gpo-action --help, median of 5)")

    # 1. cold runs at zero latency fill the caches; then raw litellm apart
    projects: dict[int, Path] = {}
    cold: dict[int, Measured] = {}
    with ServerProcess(0.0, work) as server:
        for size in sizes:
            root = projects[size] = write_project(work / f"zero-{size}", server.url, size, 16)
            cold[size] = m = run_eval(root, size, timeout=120 + size * 0.05, cached=False)
            memory = (f" target <{TARGET_PSS_MB:g}MB (tree PSS): {verdict(m.tree_pss_mb, TARGET_PSS_MB)}"
                      if size == 10000 else "")
            show(f"cold_zero_latency_N{size}",
                 f"wall={m.wall:.2f}s cpu={m.cpu:.2f}s rss={m.maxrss_mb:.0f}MB tree_pss={m.tree_pss_mb:.0f}MB "
                 f"wall_per_request={m.wall / size * 1000:.2f}ms cpu_per_request={m.cpu / size * 1000:.2f}ms "
                 f"(C=16; includes start-up and the litellm import){memory}")
        small, large = sizes
        marginal = (cold[large].cpu - cold[small].cpu) / (large - small) * 1000
        show("cold_cpu_per_request_ms", f"{marginal:.2f} (marginal: CPU difference N{large} - N{small}, "
                                        f"over {large - small} requests; fixed costs cancel)")
        raw = raw_litellm(server.url, 200 if quick else 2000, 16)
        show("litellm_import_s", f"wall={raw['import_wall']:.2f} cpu={raw['import_cpu']:.2f} (once per cold process)")
        show("litellm_acompletion_cpu_per_call_ms",
             f"{raw['cpu_per_call_ms']:.2f} (raw litellm.acompletion, {raw['calls']} calls, C=16, own process)")
        show("gpo_cpu_per_request_ms",
             f"{marginal - raw['cpu_per_call_ms']:.2f} (cold per-request CPU, every process, minus raw litellm's; "
             "below 0 when the worker processes ran: they spare litellm its fuzzy price search for an unpriced "
             "model and its message redaction, which the raw call pays)")

    # warm, in-process, no server running: everything must come from the cache
    overhead: dict[int, float] = {}
    for size in sizes:
        seconds = warm_in_process(projects[size], size, repeats)
        overhead[size] = statistics.median(seconds) / size * 1000
        show(f"overhead_N{size}_ms_per_case",
             f"{overhead[size]:.3f} (warm Workspace.evaluate in-process, median of {repeats}: "
             f"{', '.join(f'{s:.3f}s' for s in seconds)}) target <{TARGET_OVERHEAD_MS:g}ms: "
             f"{verdict(overhead[size], TARGET_OVERHEAD_MS)}")

    # 3. fully cached whole-process re-run, no server running
    cached_n = sizes[0] if quick else 1000
    cached_root = projects[cached_n]
    walls = []
    for _ in range(5):
        m = run_eval(cached_root, cached_n, timeout=120, cached=True)
        walls.append(m.wall)
    cached_s = statistics.median(walls)
    show(f"cached_rerun_N{cached_n}_s",
         f"{cached_s:.3f} (whole process, median of 5: {', '.join(f'{w:.3f}' for w in walls)}; "
         f"rss={m.maxrss_mb:.0f}MB tree_pss={m.tree_pss_mb:.0f}MB cpu={m.cpu:.2f}s) "
         f"target <{TARGET_CACHED_S:g}s: {verdict(cached_s, TARGET_CACHED_S)}")

    # 2. latency-bound runs, a fresh server and a cold cache each
    ratios: dict[int, float] = {}
    for c in args.concurrency:
        with ServerProcess(args.latency, work) as server:
            root = write_project(work / f"latency-C{c}", server.url, n, c)
            ideal = math.ceil(n / c) * args.latency
            m = run_eval(root, n, timeout=120 + 4 * ideal, cached=False)
        ratios[c] = m.wall / (ideal + startup)
        show(f"latency_C{c}",
             f"N={n} latency={args.latency:g}s wall={m.wall:.2f}s cpu={m.cpu:.2f}s rss={m.maxrss_mb:.0f}MB "
             f"tree_pss={m.tree_pss_mb:.0f}MB ideal={ideal:.2f}s startup={startup:.3f}s "
             f"beyond={m.wall - ideal - startup:.2f}s "
             f"ratio={ratios[c]:.2f}x server_peak={server.peak()} "
             f"target {TARGET_RATIO:g}x: {verdict(ratios[c], TARGET_RATIO)}")

    worst = max(overhead.values())
    show("summary", f"overhead={worst:.2f}ms/case cached_rerun={cached_s:.2f}s "
                    + " ".join(f"C{c}={r:.2f}x" for c, r in ratios.items()) + f" (target {TARGET_RATIO:g}x)")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=None, help="cases of the latency-bound runs (default 1000)")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency of the latency-bound runs, seconds")
    parser.add_argument("--concurrency", default="4,16,64", help="concurrencies of the latency-bound runs")
    parser.add_argument("--quick", action="store_true", help="small N everywhere: a smoke run")
    parser.add_argument("--raw-litellm", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--raw-calls", type=int, default=2000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_litellm is not None:
        if not args.raw_litellm.startswith(f"http://{HOST}:"):
            parser.error(f"--raw-litellm only talks to {HOST}")
        return args
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    except ValueError:
        parser.error("--concurrency takes integers separated by commas, e.g. 4,16,64")
    if not args.concurrency or min(args.concurrency) < 1 or max(args.concurrency) > 1024:
        parser.error("--concurrency values must be between 1 and 1024")
    if args.cases is not None and not 1 <= args.cases <= 100_000:
        parser.error("--cases takes 1 to 100000")
    if args.latency < 0 or args.latency > 5:
        parser.error("--latency takes 0 to 5 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.raw_litellm is not None:
        raw_litellm_main(args.raw_litellm, args.raw_calls, int(args.concurrency))
        return 0
    signal.signal(signal.SIGTERM, interrupt)
    with tempfile.TemporaryDirectory(prefix="gpo-eval-speed-") as tmp:
        return run_guarded(lambda: bench(args, Path(tmp)))


if __name__ == "__main__":
    sys.exit(main())
