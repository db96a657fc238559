"""The Action's install step, composite against Docker, without Docker or GitHub.

    python bench/install.py              # 3 runs of each recipe, alternating; about 35 minutes on 2 shared cores
    python bench/install.py --runs 2 --only venv-hit,venv-package

Every recipe starts where a fresh runner starts: no venv, and a copy of the action's checkout as
GitHub checks it out (requirements-action.txt, action/venv.py, pyproject.toml, README.md,
gpo_action/). The recipes:

- venv-hit: what action.yml does on an exact hit of its venv cache (a pull request's second run,
  or any run after one on the default branch with the same action and pins). The restore is
  simulated by what actions/cache does once the archive is downloaded: `tar` with `zstd -d
  --long=30` into the fixed path (RUNNER_TEMP/gpo-action-venv, here a temp dir). Then the same
  script the action runs, `action/venv.py key` and `action/venv.py install`, which finds the stamps,
  installs nothing and runs `gpo-action --version`. Then, beside the total, not in it: `first eval`,
  the restored venv's first `gpo-action eval` (a 10-case project against the scripted server on
  127.0.0.1, no response cache, bytecode written as on a runner): what the action's own run pays
  for the modules the venv holds no bytecode of (see action/venv.py's slimming).
- venv-package: the same, from a venv of the same environment (pins, Python, path) saved by an
  older checkout (the action updated, its pins not): the restore-key's hit; `install` reinstalls
  the package only (`pip install --no-deps --force-reinstall`). The older checkout differs here in
  README.md, which is part of the package's digest. Its first eval is shown too.
- venv-miss: a cache miss (new pins, a new Python, the first run): `key`, then `install` builds the
  venv (`python -m venv`, `pip install -r requirements-action.txt` with `PIP_NO_CACHE_DIR=1`, the
  package, the slimming), then the save's archive step (`tar` with `zstd -T0 --long=30`, as actions/cache
  creates it). Its archive is the one the hit recipes restore.
- pip-cache: the action's previous recipe: a fresh venv, the two pip commands from a warm pip cache
  of its own (filled by one untimed run first), as when actions/cache kept pip's cache.
- docker: the Dockerfile's pip step (`PIP_NO_CACHE_DIR=1`): every wheel fetched again, as in each
  image build. Pulling python:3.11-slim and the apt-get step of the image are not part of it.
- uv (only with `--uv PATH`, or `uv` on PATH): `uv venv`, `uv pip install -r
  requirements-action.txt` and `uv pip install --no-deps` of the package, from a warm uv cache of
  its own (one untimed run first); uv does not byte-compile unless asked. Not used by action.yml:
  a figure to compare with.

A runner starts with a fresh disk, so no recipe deletes anything while the rounds run: a venv
done with is moved aside (a rename) and the work dir is removed at the end. Deleting it instead
would time this machine's file system, not the recipe: ext4 without a journal (as here; a runner's
disk has one) skips, in every file create, each inode freed in the last 60 s (6 min while its
inode table block is dirty) - `recently_deleted()` in the kernel's ext4 inode allocator. After the
previous round's 23,000-file venv was deleted, each create scanned thousands of them: `perf`
showed 57% of the restore's CPU there, and the same archive took 15-22 s to extract where it takes
3 s into an untouched directory (2026-12-02, load under 1).

Not simulated: the download of the cache archive from GitHub's cache service (and the upload of
a save): its size is printed (`archive:`) so a reader can add the transfer at their runner's rate;
setup-python's own step; the runner's disk, which is not this machine's. The target (under 20 s on
2 cores) is the venv-hit recipe's total, the download left out.

Prints the pip configuration it ran under, the 1/5/15-minute load before each round, per run the
parts in seconds (key, restore, venv, requirements, package, save) with the total and the CPU
seconds of the child processes, then the medians, the target's verdict and `summary:`.
pip reads this machine's own configuration (its index and find-links); where that points at a
local mirror, no figure has a network download in it: say so beside it. `--pip-arg=ARG` adds an
argument to the pip-cache and docker recipes' pip installs (e.g. `--no-compile`).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import (KEY, KEY_ENV, ROOT, BenchError, ServerProcess, check_report, machine_line, run_guarded, show,
                     verdict, write_project)

PINS = "requirements-action.txt"
VENV_SCRIPT = Path("action") / "venv.py"
RECIPES = ("venv-hit", "venv-package", "venv-miss", "pip-cache", "docker", "uv")
TARGET = 20.0          # seconds: the install from a warm cache, on 2 cores
ZSTD_SAVE = "zstd -T0 --long=30"      # as actions/cache (@actions/cache's tar.ts) creates an archive
ZSTD_RESTORE = "zstd -d --long=30"    # and extracts it


@dataclass(frozen=True)
class Timing:
    parts: tuple[tuple[str, float], ...]
    cpu: float
    first_eval: float | None = None     # after the install, not part of its total

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.parts)

    def line(self) -> str:
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.parts)
        after = "" if self.first_eval is None else f"; then first eval {self.first_eval:.1f} s"
        return f"{parts}, total {self.total:.1f} s (cpu {self.cpu:.1f} s){after}"


class Clock:
    """Times commands one after another into named parts, with the CPU of all of them."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.parts: list[tuple[str, float]] = []
        self.cpu = 0.0

    def run(self, name: str, argv: list[str], cwd: Path | None = None) -> str:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        done = subprocess.run(argv, env=self.env, cwd=cwd, capture_output=True, text=True)
        self.parts.append((name, time.monotonic() - start))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-1000:]}{done.stderr[-2000:]}")
        return done.stdout

    def timing(self, first_eval: float | None = None) -> Timing:
        return Timing(tuple(self.parts), self.cpu, first_eval)


def _copy_checkout(dest: Path, readme_suffix: str = "") -> Path:
    """The files of the action's checkout that its install reads, so no recipe builds in this one."""
    dest.mkdir()
    for name in ("pyproject.toml", PINS):
        shutil.copy2(ROOT / name, dest / name)
    (dest / "README.md").write_text((ROOT / "README.md").read_text() + readme_suffix)
    (dest / "action").mkdir()
    shutil.copy2(ROOT / VENV_SCRIPT, dest / VENV_SCRIPT)
    shutil.copytree(ROOT / "gpo_action", dest / "gpo_action",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_CACHE_DIR", "PIP_NO_CACHE_DIR", "VIRTUAL_ENV", "GITHUB_OUTPUT", "UV_CACHE_DIR")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


class Runner:
    """The recipes, in one work dir: `runner-temp/` is the runner's RUNNER_TEMP."""

    def __init__(self, python: str, work: Path, pip_args: tuple[str, ...], uv: str | None, server_url: str = ""):
        self.python, self.work, self.pip_args, self.uv = python, work, pip_args, uv
        self.server_url = server_url        # the scripted server of the hits' first eval
        self.removed = work / "removed"     # what a round is done with (see the docstring)
        self.removed.mkdir()
        self.checkout = _copy_checkout(work / "checkout")
        self.older = _copy_checkout(work / "older-checkout", "\n<!-- an older checkout -->\n")
        self.temp = work / "runner-temp"
        self.temp.mkdir()
        self.venv = self.temp / "gpo-action-venv"
        self.archive = work / "cache.tzst"          # the cache entry of this checkout's venv
        self.older_archive = work / "older.tzst"    # the one an older checkout saved
        self.pip_cache = work / "pip-cache"
        self.uv_cache = work / "uv-cache"

    def _action_env(self, checkout: Path) -> dict[str, str]:
        env = _base_env()
        env.update(GITHUB_ACTION_PATH=str(checkout), RUNNER_TEMP=str(self.temp), RUNNER_OS="Linux",
                   RUNNER_ARCH="X64", GPO_ACTION_VENV=str(self.venv), PIP_NO_CACHE_DIR="1")
        return env

    def _script(self, clock: Clock, checkout: Path) -> str:
        script = str(checkout / VENV_SCRIPT)
        out = clock.run("key", [self.python, script, "key"])
        if "key=gpo-action-venv-" not in out:
            raise BenchError(f"venv.py key printed no key: {out!r}")
        out = clock.run("install", [self.python, script, "install"])
        if "bin=" not in out or "gpo-action, version" not in out:
            raise BenchError(f"venv.py install did not end with gpo-action --version: {out[-500:]!r}")
        return out

    def _set_aside(self, path: Path) -> None:
        if path.exists():
            path.rename(self.removed / f"{len(list(self.removed.iterdir()))}-{path.name}")

    def _fresh(self) -> None:
        self._set_aside(self.venv)

    def first_eval(self) -> float:
        """The restored venv's first `gpo-action eval`, as the action's run step starts it."""
        project = write_project(self.work / f"project-{len(list(self.removed.iterdir()))}", self.server_url, 10, 4)
        env = {k: v for k, v in _base_env().items() if not k.startswith(("PYTHON", "PIP_"))}
        env.update({KEY_ENV: KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
        start = time.monotonic()
        done = subprocess.run([str(self.venv / "bin" / "gpo-action"), "eval", "--json", "out.json"], cwd=project,
                              env=env, capture_output=True, text=True)
        seconds = time.monotonic() - start
        if done.returncode != 0:
            raise BenchError(f"the first eval exited {done.returncode}: {done.stderr[-2000:]}")
        check_report(project, 10, cached=False)
        self._set_aside(project)
        return seconds

    def miss(self, checkout: Path | None = None, archive: Path | None = None) -> Timing:
        checkout, archive = checkout or self.checkout, archive or self.archive
        self._fresh()
        clock = Clock(self._action_env(checkout))
        self._script(clock, checkout)
        archive.unlink(missing_ok=True)
        clock.run("save", ["tar", "-cf", str(archive), "--use-compress-program", ZSTD_SAVE,
                           "-C", str(self.temp), self.venv.name])
        self._fresh()
        return clock.timing()

    def hit(self, archive: Path, expect: str) -> Timing:
        self._fresh()
        clock = Clock(self._action_env(self.checkout))
        clock.run("restore", ["tar", "-xf", str(archive), "--use-compress-program", ZSTD_RESTORE,
                              "-C", str(self.temp)])
        out = self._script(clock, self.checkout)
        if expect not in out or "building the venv" in out:
            raise BenchError(f"the restored venv was not used as expected ({expect!r}): {out[-500:]!r}")
        first_eval = self.first_eval() if self.server_url else None
        self._fresh()
        return clock.timing(first_eval)

    def pip(self, cache: Path | None) -> Timing:
        """A fresh venv and the two pip commands; `cache` None: `PIP_NO_CACHE_DIR=1`."""
        env = _base_env()
        if cache is None:
            env["PIP_NO_CACHE_DIR"] = "1"
        else:
            env["PIP_CACHE_DIR"] = str(cache)
        venv = self.work / "venv"
        self._set_aside(venv)
        clock = Clock(env)
        clock.run("venv", [self.python, "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *self.pip_args]
        clock.run("requirements", [*pip, "-r", str(self.checkout / PINS)])
        clock.run("package", [*pip, "--no-deps", str(self.checkout)])
        self._set_aside(venv)
        return clock.timing()

    def uv_install(self) -> Timing:
        env = _base_env()
        env["UV_CACHE_DIR"] = str(self.uv_cache)
        venv = self.work / "uv-venv"
        self._set_aside(venv)
        env["VIRTUAL_ENV"] = str(venv)
        clock = Clock(env)
        assert self.uv is not None
        clock.run("venv", [self.uv, "venv", "--quiet", "--python", self.python, str(venv)])
        clock.run("requirements", [self.uv, "pip", "install", "--quiet", "-r", str(self.checkout / PINS)])
        clock.run("package", [self.uv, "pip", "install", "--quiet", "--no-deps", str(self.checkout)])
        clock.run("version", [str(venv / "bin" / "gpo-action"), "--version"])
        self._set_aside(venv)
        return clock.timing()

    def recipe(self, name: str) -> Timing:
        if name == "venv-hit":
            return self.hit(self.archive, "reusing")
        if name == "venv-package":
            return self.hit(self.older_archive, "installing gpo-action")
        if name == "venv-miss":
            return self.miss()
        if name == "pip-cache":
            return self.pip(self.pip_cache)
        if name == "docker":
            return self.pip(None)
        return self.uv_install()


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each recipe, alternating")
    parser.add_argument("--python", default=sys.executable, help="the interpreter the venvs are made by")
    parser.add_argument("--pip-arg", action="append", default=[], help="an extra argument of the pip-cache and "
                        "docker recipes' pip installs (repeatable), e.g. --pip-arg=--no-compile")
    parser.add_argument("--only", help=f"comma-separated recipes to run, of {','.join(RECIPES)}")
    parser.add_argument("--uv", default=shutil.which("uv"), help="the uv binary of the uv recipe (default: uv on PATH)")
    args = parser.parse_args(argv)
    chosen = [r for r in RECIPES if r != "uv" or args.uv]
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(RECIPES)
        if unknown:
            parser.error(f"unknown recipe(s) {', '.join(sorted(unknown))}; choose from {', '.join(RECIPES)}")
        if "uv" in wanted and not args.uv:
            parser.error("the uv recipe needs --uv PATH (no uv on PATH)")
        chosen = [r for r in RECIPES if r in wanted]

    def body() -> int:
        print(machine_line(), flush=True)
        show("pip_config", subprocess.run([args.python, "-m", "pip", "config", "list"], capture_output=True,
                                          text=True).stdout.replace("\n", "; ").strip("; ") or "(none)")
        if args.uv and "uv" in chosen:
            show("uv", subprocess.run([args.uv, "--version"], capture_output=True, text=True).stdout.strip())
        with tempfile.TemporaryDirectory(prefix="gpo-install-bench-") as tmp, \
                ServerProcess(0, Path(tmp)) as server:
            r = Runner(args.python, Path(tmp), tuple(args.pip_arg), args.uv, server.url)
            if args.pip_arg:
                show("pip_args", " ".join(args.pip_arg))
            if "venv-package" in chosen:
                show("warm-up", f"venv-miss, saving the older checkout's venv: {r.miss(r.older, r.older_archive).line()}")
            if {"venv-hit", "venv-package", "venv-miss"} & set(chosen):
                show("warm-up", f"venv-miss, saving this checkout's venv: {r.miss().line()}")
                show("archive", f"{r.archive.stat().st_size / 1e6:.1f} MB (zstd) of a {_venv_size(r)} venv: "
                                "the download a hit adds, not measured here")
            if "pip-cache" in chosen:
                show("warm-up", f"pip-cache, filling its pip cache: {r.pip(r.pip_cache).line()}")
                cached = _size(r.pip_cache)
                show("pip_cache", f"{cached / 1e6:.1f} MB after the warm-up"
                     + ("" if cached else ": pip cached nothing, so its warm run is no warmer than docker here"))
            if "uv" in chosen:
                show("warm-up", f"uv, filling its cache: {r.uv_install().line()}")
                show("uv_cache", f"{_size(r.uv_cache) / 1e6:.1f} MB after the warm-up")
            results: dict[str, list[Timing]] = {name: [] for name in chosen}
            for run in range(1, args.runs + 1):
                show("load", _load())
                for name in chosen:
                    results[name].append(r.recipe(name))
                    show(f"{name} {run}", results[name][-1].line())
            show("load", _load())
        medians = {name: statistics.median(t.total for t in runs) for name, runs in results.items()}
        for name, median in medians.items():
            target = f", target {TARGET:.0f} s: {verdict(median, TARGET)}" if name == "venv-hit" else ""
            evals = [t.first_eval for t in results[name] if t.first_eval is not None]
            after = f"; then first eval {statistics.median(evals):.1f} s" if evals else ""
            show(f"{name}_median", f"{median:.1f} s (cpu {statistics.median(t.cpu for t in results[name]):.1f} s){target}"
                 f"{after}")
        show("summary", "; ".join(f"{name} {median:.1f} s" for name, median in medians.items())
             + f" (medians of {args.runs} runs"
             + (f"; venv-hit against the {TARGET:.0f} s target: {verdict(medians['venv-hit'], TARGET)}, the archive's "
                "download not included)" if "venv-hit" in medians else ")"))
        return 0

    return run_guarded(body)


def _venv_size(r: Runner) -> str:
    """The venv's size on disk and its entries (files, directories, links): extracted once more, untimed."""
    subprocess.run(["tar", "-xf", str(r.archive), "--use-compress-program", ZSTD_RESTORE, "-C", str(r.temp)],
                   check=True)
    size = _size(r.venv)
    entries = sum(1 for _ in r.venv.rglob("*"))
    r._set_aside(r.venv)
    return f"{size / 1e6:.0f} MB, {entries:,}-entry"


if __name__ == "__main__":
    sys.exit(main())
