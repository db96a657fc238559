"""What the benches share: measured child processes, the scripted server as a process, the project.

- `measure(argv, cwd, timeout, env=None) -> Measured`: wall time, CPU (user + sys) and peak RSS of
  one command, run under a fresh wrapper process that reads its RUSAGE_CHILDREN, so the figures
  are that command's (and its descendants') alone.
- `ServerProcess(latency, log_dir, *extra)`: tests/support/openai_server.py started as a separate
  process on 127.0.0.1 (its CPU is never counted); `.url`, and after exit `.served()`, `.peak()`,
  `.outcomes()`. `free_port()` for servers that must keep one URL across runs.
- `write_project(root, url, n, concurrency)`: a gpo-action project of N cases, one `equals` each,
  template `Say {{ word }}`; the server echoes, every tenth case expects something else, so the
  pass count is known: `expected_passes(n)`. `case_rows(n)` gives the same cases to other tools.
- `run_eval`, `check_report`, `startup_seconds`, `machine_line`, `show`, `verdict`.
- `run_guarded(body)`: a bench's exit code, with its errors and Ctrl-C/SIGTERM (`interrupt`) reported.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = ROOT / "tests" / "support" / "openai_server.py"
HOST = "127.0.0.1"
KEY_ENV = "GPO_BENCH_KEY"
KEY = "sk-bench-not-a-secret"
MODEL = "openai/scripted"
FAIL_EVERY = 10  # case i fails when i % FAIL_EVERY == FAIL_EVERY - 1

# Runs one command, then prints its wall time and its own rusage (RUSAGE_CHILDREN deltas of this
# fresh process, whose only child it is) as JSON on stdout.
WRAPPER = r"""
import json, resource, subprocess, sys, time
argv, cwd, timeout = json.loads(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
try:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    code, out, err = proc.returncode, proc.stdout, proc.stderr
except subprocess.TimeoutExpired as exc:
    text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
    code, out, err = None, text(exc.stdout), text(exc.stderr) + f"\n[timed out after {timeout} s]"
wall = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
json.dump({"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
           "maxrss_kb": after.ru_maxrss, "code": code, "stdout": out[-4000:], "stderr": err[-4000:]}, sys.stdout)
"""


class BenchError(Exception):
    """A run failed, timed out, or scored differently from what the script knows it must."""


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float
    maxrss_mb: float
    code: int | None
    stdout: str
    stderr: str


# ---- processes ------------------------------------------------------------------------------------


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: this checkout first on the path, the key the project names,
    litellm's local cost map, no proxies (unless `extra` sets them), then `extra`."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update({KEY_ENV: KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost", "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra or {})
    return env


def kill_group(proc: subprocess.Popen) -> None:
    """Stop a child started in its own session, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def measure(argv: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> Measured:
    """Run `argv` under a fresh wrapper; its wall time, CPU (user + sys) and peak RSS."""
    wrapper = [sys.executable, "-c", WRAPPER, json.dumps([argv, str(cwd), timeout])]
    proc = subprocess.Popen(wrapper, cwd=cwd, env=bench_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise BenchError(f"{' '.join(argv[-3:])}: no result within {timeout + 30:g} s") from None
    except BaseException:
        kill_group(proc)
        raise
    if proc.returncode != 0:
        raise BenchError(f"the measuring wrapper failed: {err.strip()[-2000:]}")
    data = json.loads(out)
    if data["code"] is None:
        raise BenchError(f"{' '.join(argv)} timed out after {timeout:g} s: {data['stderr'][-1000:]}")
    return Measured(data["wall"], data["user"] + data["sys"], data["maxrss_kb"] / 1024, data["code"],
                    data["stdout"], data["stderr"])


class ServerProcess:
    """The scripted server as a separate process on 127.0.0.1; always stopped on exit.
    `extra` are more command-line arguments (fault rates, seed, hang seconds...)."""

    def __init__(self, latency: float, log_dir: Path, *extra: str):
        self.latency = latency
        self.extra = list(extra)
        self.log_path = log_dir / f"server-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.final = ""

    def __enter__(self) -> "ServerProcess":
        argv = [sys.executable, str(SERVER_SCRIPT), "--host", HOST, "--port", "0",
                "--latency", f"{self.latency:g}", "--reply-mode", "echo", *self.extra]
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(argv, env=bench_env(), stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     start_new_session=True)
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], 30)
            line = self.proc.stdout.readline().strip() if ready else ""
            if not line.startswith(f"http://{HOST}:"):
                raise BenchError(f"the scripted server did not start (got {line!r}; log {self.log_path})")
            self.url = line
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                out, _ = proc.communicate(timeout=10)
                self.final = out.strip()
            except subprocess.TimeoutExpired:
                kill_group(proc)
        self._log.close()

    def _field(self, marker: str, end: str) -> str | None:
        if marker not in self.final:
            return None
        return self.final.split(marker, 1)[1].split(end, 1)[0]

    def peak(self) -> int | None:
        """The server's peak concurrency, from its exit line (after __exit__)."""
        value = self._field("peak concurrency ", ",")
        return None if value is None else int(value)

    def outcomes(self) -> dict[str, int]:
        """Requests per outcome ("ok", "429", "hang", ...), from its exit line (after __exit__)."""
        value = self._field("outcomes ", "\n")
        return json.loads(value) if value else {}

    def served(self) -> int | None:
        """How many requests the server received, from its exit line (after __exit__)."""
        value = self._field("served ", " ")
        return None if value is None else int(value)


def free_port() -> int:
    """A port on 127.0.0.1 free now. Cache keys include the server's URL, so runs meant to share a
    cache use servers on one port (the scripted server binds with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# ---- the project ----------------------------------------------------------------------------------


def expected_passes(n: int) -> int:
    return n - sum(1 for i in range(n) if i % FAIL_EVERY == FAIL_EVERY - 1)


def case_rows(n: int) -> Iterator[dict[str, str]]:
    """The N cases as vars: `word`, and `expected` (what the echoing server says, except every tenth)."""
    for i in range(n):
        word = f"w{i:06d}"
        yield {"word": word, "expected": "Say nothing" if i % FAIL_EVERY == FAIL_EVERY - 1 else f"Say {word}"}


def write_project(root: Path, url: str, n: int, concurrency: int, *, timeout: float = 30,
                  retries: str = "{max: 0, base: 0.1, max_wait: 1}", max_error_rate: float = 0) -> Path:
    """gpo.yaml, prompts/say.j2 and evals/speed.yaml with N cases in evals/cases.jsonl."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "evals").mkdir(exist_ok=True)
    (root / "gpo.yaml").write_text(
        "models:\n"
        f'  task: {{model: {MODEL}, api_base: "{url}/v1", api_key_env: {KEY_ENV}}}\n'
        "suites:\n  - eval: evals/*.yaml\n"
        f"concurrency: {concurrency}\n"
        f"timeout: {timeout:g}\n"
        f"retries: {retries}\n"
        f"max_error_rate: {max_error_rate:g}\n"
        "cache: {path: .gpo/cache.sqlite}\n",
        encoding="utf-8",
    )
    (root / "prompts" / "say.j2").write_text("Say {{ word }}", encoding="utf-8")
    (root / "evals" / "speed.yaml").write_text(
        'prompt: prompts/say.j2\nassert:\n  - {type: equals, value: "{{ expected }}"}\ncases:\n  - file: cases.jsonl\n',
        encoding="utf-8",
    )
    lines = [json.dumps(row) for row in case_rows(n)]
    (root / "evals" / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def clear_cache(root: Path) -> None:
    """Remove the project's response cache (and its WAL companions): the next run is cold."""
    for path in (root / ".gpo").glob("cache.sqlite*"):
        path.unlink()


def eval_argv() -> list[str]:
    return [sys.executable, "-m", "gpo_action", "eval", "--json", "out.json"]


def check_report(root: Path, n: int, *, cached: bool) -> dict:
    """The JSON report must show the known pass count, no errors, and the expected use of the cache."""
    report = json.loads((root / "out.json").read_text(encoding="utf-8"))
    suite, usage = report["suites"][0], report["usage"]
    got = (suite["passed"], suite["failed"], suite["errors"])
    want = (expected_passes(n), n - expected_passes(n), 0)
    if got != want:
        raise BenchError(f"{root.name}: passed/failed/errors {got}, expected {want}")
    calls, hits = usage["calls"], usage["cache_hits"]
    if (calls, hits) != ((0, n) if cached else (n, 0)):
        raise BenchError(f"{root.name}: {calls} provider calls and {hits} cache hits ({'warm' if cached else 'cold'} run of {n})")
    return report


def run_eval(root: Path, n: int, timeout: float, *, cached: bool) -> Measured:
    out = root / "out.json"
    if out.exists():
        out.unlink()
    m = measure(eval_argv(), root, timeout)
    if m.code != 0:
        raise BenchError(f"gpo-action eval in {root} exited {m.code}: {m.stderr.strip()[-2000:]}")
    check_report(root, n, cached=cached)
    return m


# ---- reporting ------------------------------------------------------------------------------------


def startup_seconds(cwd: Path, runs: int = 5) -> float:
    """Median wall time of `gpo-action --help` as a whole process."""
    walls = []
    for _ in range(runs):
        m = measure([sys.executable, "-m", "gpo_action", "--help"], cwd, 60)
        if m.code != 0:
            raise BenchError(f"gpo-action --help exited {m.code}: {m.stderr[-1000:]}")
        walls.append(m.wall)
    return statistics.median(walls)


def machine_line() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        litellm_version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        litellm_version = "absent"
    return (f"machine: nproc={os.cpu_count()} cpu={cpu!r} python={platform.python_version()} "
            f"litellm={litellm_version} os={platform.system()} {platform.release()} "
            f"date={time.strftime('%Y-%m-%d', time.gmtime())}")


def show(name: str, text: str) -> None:
    print(f"{name}: {text}", flush=True)


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else f"MISSED by {(value / target - 1) * 100:.0f}%"


def interrupt(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so the `finally`s stop the server and any running child."""
    raise KeyboardInterrupt


def run_guarded(body: Callable[[], int]) -> int:
    """`body()`'s exit code; a BenchError prints `error: ...` and gives 1, Ctrl-C (or SIGTERM, see
    `interrupt`) prints `interrupted` and gives 130."""
    try:
        return body()
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
