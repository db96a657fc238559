"""The Action's install step, composite against Docker, without Docker.

    python bench/install.py              # 3 runs of each recipe, alternating; about 4 minutes on 2 cores
    python bench/install.py --runs 1

Both recipes start from a fresh venv (`python -m venv`, timed apart) and a copy of the package as
the Dockerfile copies it (pyproject.toml, README.md, gpo_action/), and run the same two commands:
`pip install -r requirements-action.txt`, then `pip install --no-deps .`.

- composite: what action.yml does, from a warm pip cache (the cache actions/cache restores, keyed
  on requirements-action.txt): a cache of its own, filled by one untimed run first.
- docker: the Dockerfile's pip step, which runs with `PIP_NO_CACHE_DIR=1`: every wheel fetched
  again, as in each image build. Pulling python:3.11-slim and the apt-get step of the image are not
  part of it (nor measured here).

Prints per run `composite` / `docker` (venv, requirements, package, total seconds, and CPU
seconds of the pip processes), the size of the composite's pip cache after its warm-up, the load
before each run, then the medians and the composite's target (install under 20 s), then
`summary:`. `--pip-arg=--no-compile` measures a variant (both recipes); `--only` runs one recipe. pip reads this machine's own configuration (its index and find-links); where that
points at a local mirror, the cold figure has no network download in it: say so beside it.
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

from harness import ROOT, BenchError, machine_line, run_guarded, show, verdict

PINS = ROOT / "requirements-action.txt"
TARGET = 20.0          # seconds: the composite's install, venv included, from a warm cache


@dataclass(frozen=True)
class Timing:
    venv: float
    requirements: float
    package: float
    cpu: float

    @property
    def total(self) -> float:
        return self.venv + self.requirements + self.package

    def line(self) -> str:
        return (f"venv {self.venv:.1f} s, requirements {self.requirements:.1f} s, package {self.package:.1f} s, "
                f"total {self.total:.1f} s (cpu {self.cpu:.1f} s)")


def _copy_package(dest: Path) -> Path:
    """The files the Dockerfile copies, so neither recipe builds inside this checkout."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(ROOT / "gpo_action", dest / "gpo_action",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) of one command; its output is kept for the error only."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def install(python: str, work: Path, package: Path, cache: Path | None, extra: tuple[str, ...] = ()) -> Timing:
    """A fresh venv under `work`, then the two pip commands (with `extra` arguments); `cache` None:
    `PIP_NO_CACHE_DIR=1`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_CACHE_DIR", "PIP_NO_CACHE_DIR", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if cache is None:
        env["PIP_NO_CACHE_DIR"] = "1"
    else:
        env["PIP_CACHE_DIR"] = str(cache)
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    venv_wall, venv_cpu = _timed([python, "-m", "venv", str(venv)], env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *extra]
    req_wall, req_cpu = _timed([*pip, "-r", str(PINS)], env)
    pkg_wall, pkg_cpu = _timed([*pip, "--no-deps", str(package)], env)
    shutil.rmtree(venv, ignore_errors=True)
    return Timing(venv_wall, req_wall, pkg_wall, venv_cpu + req_cpu + pkg_cpu)


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each recipe, alternating")
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose venv module is used")
    parser.add_argument("--pip-arg", action="append", default=[], help="an extra argument of both pip installs "
                        "(repeatable), e.g. --pip-arg=--no-compile")
    parser.add_argument("--only", choices=("composite", "docker"), help="run one recipe only")
    args = parser.parse_args(argv)

    def body() -> int:
        print(machine_line(), flush=True)
        show("pip_config", subprocess.run([args.python, "-m", "pip", "config", "list"], capture_output=True,
                                          text=True).stdout.replace("\n", "; ").strip("; ") or "(none)")
        with tempfile.TemporaryDirectory(prefix="gpo-install-bench-") as tmp:
            work = Path(tmp)
            package = _copy_package(work / "package")
            cache = work / "pip-cache"
            extra = tuple(args.pip_arg)
            if args.pip_arg:
                show("pip_args", " ".join(extra))
            if args.only != "docker":
                warm = install(args.python, work, package, cache, extra)
                show("warm-up", f"composite, filling its pip cache: {warm.line()}")
                cached = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) if cache.exists() else 0
                show("pip_cache", f"{cached / 1e6:.1f} MB after the warm-up"
                     + ("" if cached else ": pip cached nothing (every file came from a local path), so warm = cold here"))
            composite: list[Timing] = []
            docker: list[Timing] = []
            for run in range(1, args.runs + 1):
                show("load", _load())
                if args.only != "docker":
                    composite.append(install(args.python, work, package, cache, extra))
                    show(f"composite {run}", composite[-1].line())
                if args.only != "composite":
                    docker.append(install(args.python, work, package, None, extra))
                    show(f"docker {run}", docker[-1].line())
            show("load", _load())
        c = statistics.median(t.total for t in composite) if composite else None
        d = statistics.median(t.total for t in docker) if docker else None
        if c is not None:
            show("composite_median", f"{c:.1f} s, target {TARGET:.0f} s: {verdict(c, TARGET)}")
        if d is not None:
            show("docker_pip_median", f"{d:.1f} s")
        if c is not None and d is not None:
            show("summary", f"composite from a warm cache {c:.1f} s vs the Docker recipe's pip step {d:.1f} s "
                            f"({d / c:.2f}x), {args.runs} runs each")
        return 0

    return run_guarded(body)


if __name__ == "__main__":
    sys.exit(main())
