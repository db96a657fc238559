"""What the benches share: measured child processes, the scripted server as a process, the project.

- `measure(argv, cwd, timeout, env=None) -> Measured`: one command, run under a fresh wrapper
  process (a child subreaper on Linux, which waits for every descendant, so workers the command
  leaves running are counted too). The figures are that command's tree alone:
  - `wall`: from start to the command's own exit (not the wait for its leftover descendants,
    which is `linger`, up to 10 s before they are killed);
  - `cpu`: user + sys of the command and all its descendants (RUSAGE_CHILDREN deltas);
  - `maxrss_mb`: ru_maxrss, the peak RSS of the largest single process in the tree;
  - `tree_pss_mb`: the peak, over samples every 200 ms, of PSS summed over all live descendants
    (/proc/PID/smaps_rollup; shared pages split between their sharers): the tree's memory;
  - `tree_rss_mb`: the same peak with RSS, which counts pages shared by forked workers once per
    process, so it overstates the tree. Both tree figures are 0 where there is no /proc.
- `ServerProcess(latency, log_dir, *extra)`: tests/support/openai_server.py started as a separate
  process on 127.0.0.1 (its CPU is never counted); `.url`, and after exit `.served()`, `.peak()`,
  `.outcomes()`, `.counters()`, `.rate_limited()` (429s from its `--rps`/`--tpm` limits), `.admitted()`. `free_port()` for servers that must keep one URL across runs.
- `write_project(root, url, n, concurrency)`: a gpo-action project of N cases, one `equals` each,
  template `Say {{ word }}`; the server echoes, every tenth case expects something else, so the
  pass count is known: `expected_passes(n)`. `case_rows(n)` gives the same cases to other tools.
- `bench_env(extra)`: every child's environment; gpo_action runs from bytecode (`compile_checkout`),
  as an installed gpo-action does.
- `run_eval`, `check_report`, `startup_seconds`, `machine_line`, `show`, `verdict`, `copy_cache`.
- `run_guarded(body)`: a bench's exit code, with its errors and Ctrl-C/SIGTERM (`interrupt`) reported.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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

# Runs one command and prints its figures as JSON on stdout. This fresh process is a child
# subreaper, so the workers the command leaves behind are reparented to it and it waits for them
# all: RUSAGE_CHILDREN (deltas; ru_maxrss is the largest single process) then covers the whole
# tree. A thread sums PSS and RSS over the live descendants every 200 ms and keeps the peaks; wall
# is the command's own, the wait for stragglers is `linger`.
WRAPPER = r"""
import ctypes, json, os, resource, signal, subprocess, sys, tempfile, threading, time
argv, cwd, timeout = json.loads(sys.argv[1])
try:
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER (Linux only)
except (OSError, AttributeError):
    pass
me = os.getpid()

def tree():
    # pids of our descendants now, from the ppid links in /proc (none where there is no /proc)
    kids = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])  # the name may hold spaces and ")"
        except (OSError, IndexError, ValueError):
            continue  # it vanished
        kids.setdefault(ppid, []).append(int(entry))
    found, todo = [], [me]
    while todo:
        pids = kids.pop(todo.pop(), [])  # pop: each parent once, even if a reused pid made a cycle
        found += pids
        todo += pids
    return found

def memory(pids):
    pss = rss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except (OSError, ValueError):
            pass  # it vanished (or is a zombie)
    return pss, rss

def kill(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

def reap(limit):
    # wait for every descendant (all ours now) up to `limit` s; True when none is left
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.01)
        except ChildProcessError:
            return True
    return False

peak = {"pss": 0, "rss": 0, "timed_out": False}
done = threading.Event()

def sample():
    while True:
        pids = tree()
        pss, rss = memory(pids)
        peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)
        if time.perf_counter() - start > timeout and not peak["timed_out"]:
            peak["timed_out"] = True
            kill(pids)  # the whole tree: workers run in sessions of their own
        if done.wait(0.2):  # each sample reads smaps_rollup (~1.4 ms per big process): keep it rare
            return

out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # files, not pipes: nothing to drain
before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
code = proc.wait()  # blocking, so wall ends when the command does
wall = time.perf_counter() - start
done.set()
sampler.join()
linger = time.perf_counter()
if not reap(10):
    kill(tree())
    reap(10)
linger = time.perf_counter() - linger
after = resource.getrusage(resource.RUSAGE_CHILDREN)

def text(f):
    f.seek(0)
    return f.read().decode(errors="replace")

out, err = text(out), text(err)
if peak["timed_out"]:
    code, err = None, err + f"\n[timed out after {timeout} s]"
json.dump({"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
           "maxrss_kb": after.ru_maxrss, "tree_pss_kb": peak["pss"], "tree_rss_kb": peak["rss"], "linger": linger,
           "code": code, "stdout": out[-4000:], "stderr": err[-4000:]}, sys.stdout)
"""


class BenchError(Exception):
    """A run failed, timed out, or scored differently from what the script knows it must."""


@dataclass(frozen=True)
class Measured:
    wall: float  # the command's own, start to exit
    cpu: float  # user + sys of the command and every descendant, workers included
    maxrss_mb: float  # peak RSS of the largest single process
    code: int | None
    stdout: str
    stderr: str
    tree_pss_mb: float = 0.0  # peak of the PSS summed over the process tree (0 without /proc)
    tree_rss_mb: float = 0.0  # peak of the RSS summed over the process tree (counts shared pages twice)
    linger: float = 0.0  # seconds waited after the command's exit for the descendants it left running


# ---- processes ------------------------------------------------------------------------------------


@functools.cache
def compile_checkout() -> None:
    """Compile this checkout's gpo_action into its `__pycache__` (gitignored), once per bench process:
    an installed gpo-action runs from bytecode (pip compiles at install; the Action's venv keeps the
    bytecode of every module a run imports, action/venv.py), while a checkout run under this
    machine's PYTHONDONTWRITEBYTECODE recompiles its ~130 modules on every start (a merge: about
    0.2 s), a cost no user pays. (PYTHONPYCACHEPREFIX would hide site-packages' own bytecode.)"""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "gpo_action")], check=True,
                   stdout=subprocess.DEVNULL)


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: this checkout first on the path, compiled
    (`compile_checkout`), the key the project names, litellm's local cost map, no proxies (unless
    `extra` sets them), then `extra`."""
    compile_checkout()
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
    """Run `argv` under a fresh wrapper (see WRAPPER): wall time, CPU and memory of it and its descendants."""
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
                    data["stdout"], data["stderr"], tree_pss_mb=data["tree_pss_kb"] / 1024,
                    tree_rss_mb=data["tree_rss_kb"] / 1024, linger=data["linger"])


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

    def counters(self) -> dict:
        """The server's counters from its `counters {json}` exit line (after __exit__): total,
        admitted, rate_limited, limited_by, statuses, outcomes, peak; {} if it printed none."""
        value = self._field("counters ", "\n")
        return json.loads(value) if value else {}

    def rate_limited(self) -> int | None:
        """Requests the server's rate limits answered 429 (after __exit__)."""
        return self.counters().get("rate_limited")

    def admitted(self) -> int | None:
        """Requests the server's rate limits let through and served (after __exit__)."""
        return self.counters().get("admitted")


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
                  retries: str = "{max: 0, base: 0.1, max_wait: 1}", max_error_rate: float = 0,
                  max_tokens: int | None = None) -> Path:
    """gpo.yaml, prompts/say.j2 and evals/speed.yaml with N cases in evals/cases.jsonl; `max_tokens`
    goes into the task model's params when given."""
    (root / "prompts").mkdir(parents=True, exist_ok=True)
    (root / "evals").mkdir(exist_ok=True)
    (root / "gpo.yaml").write_text(
        "models:\n"
        f'  task: {{model: {MODEL}, api_base: "{url}/v1", api_key_env: {KEY_ENV}'
        + (f", max_tokens: {max_tokens}" if max_tokens else "") + "}\n"
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


def copy_cache(source: Path, target: Path) -> None:
    """A response cache (SQLite, with its write-ahead log if any) copied for a run of its own."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


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


def bench_main(bench: Callable[[object, Path], int], args: object, prefix: str) -> int:
    """A bench's `main`: SIGTERM unwinds like Ctrl-C, `bench(args, work)` runs in a temp work dir
    (gone after), the time it took goes to stderr; the exit code as `run_guarded` gives it."""
    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()

    def run() -> int:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            code = bench(args, Path(tmp))
        print(f"# took {time.monotonic() - started:.0f} s", file=sys.stderr)
        return code

    return run_guarded(run)
