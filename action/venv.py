"""The composite action's venv: its cache key, and the install that reuses a restored venv.

    python action/venv.py key        # writes path=, key=, restore-key= to $GITHUB_OUTPUT
    python action/venv.py install    # makes the venv at $GPO_ACTION_VENV ready; writes bin=

Run by the interpreter actions/setup-python gives (stdlib only: nothing is installed yet), with
GITHUB_ACTION_PATH (this checkout) and RUNNER_TEMP set. The venv lives at one fixed path,
RUNNER_TEMP/gpo-action-venv, because a venv holds absolute paths (its scripts' shebangs and
launchers, pyvenv.cfg's home) and works only where it was made, with the interpreter it was made by.

The key has two digests. The environment's covers what the pinned install reads or bakes in: the
pins (requirements-action.txt), this script (the recipe), the venv's path, the interpreter's real
path and full version, and the runner's OS and arch. The package's covers what `pip install
--no-deps` of this checkout reads (pyproject.toml, README.md, gpo_action/). actions/cache restores
an exact match, else (restore-key) the newest venv of the same environment, whose package is then
reinstalled; anything else is a miss and the venv is built. Two stamp files in the venv record the
digests it was built with, so `install` decides from what is on disk, not from the cache's outputs:
a venv whose environment stamp differs, or whose python does not start, is rebuilt.

A built venv is slimmed before it is stamped (and so before it is saved): the cache's restore makes
one file per entry of the archive, and a pinned install holds thousands no run reads. Removed:
setuptools (the venv's pip builds the checkout in an isolated environment of its own), litellm's
proxy admin UI (UNUSED_TREES: HTML, scripts and images that only `litellm --proxy` serves), and
the bytecode of every module a run does not import: all __pycache__ directories go (but pip's,
KEEP_BYTECODE, which the restore key's hit runs), then every module of gpo_action and the
dependencies it imports lazily (WARM_IMPORTS) are imported once, so Python writes the bytecode a
run loads and nothing else. The slimming is part of this script, so of the environment's digest:
a venv saved by an earlier recipe has another key and is not restored.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PINS = "requirements-action.txt"
PACKAGE_FILES = ("pyproject.toml", "README.md")
PACKAGE_DIR = "gpo_action"
VENV_NAME = "gpo-action-venv"
ENV_STAMP = "gpo-action-environment.sha256"
PACKAGE_STAMP = "gpo-action-package.sha256"
DIGEST_CHARS = 20
UNUSED_TREES = ("litellm/proxy/_experimental/out",)   # relative to site-packages
UNUSED_PACKAGES = ("setuptools",)
WARM_IMPORTS = ("litellm", "git")     # imported inside functions by a run: not reached by importing gpo_action
KEEP_BYTECODE = ("pip",)              # a hit of the restore key reinstalls the package with it

# Run by the venv's python (-I: no PYTHONDONTWRITEBYTECODE, PYTHONPATH or user site from the step's
# environment): argv[1] the trees to remove, argv[2] the imports to warm, argv[3] the packages whose
# bytecode stays, each comma-separated.
SLIM = """
import importlib, importlib.util, pkgutil, shutil, sys, sysconfig
from pathlib import Path
trees, imports, kept = sys.argv[1].split(","), sys.argv[2].split(","), sys.argv[3].split(",")
for root in sorted({Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}):
    for tree in trees:
        if (root / tree).is_dir():
            shutil.rmtree(root / tree)
    for cache in sorted(root.rglob("__pycache__"), reverse=True):
        if cache.relative_to(root).parts[0] not in kept:
            shutil.rmtree(cache)
import gpo_action
names = [m.name for m in pkgutil.walk_packages(gpo_action.__path__, "gpo_action.")
         if m.name.rpartition(".")[2] != "__main__"]
names += [name for name in imports if importlib.util.find_spec(name) is not None]
for name in names:
    importlib.import_module(name)
"""


class VenvError(Exception):
    """A step of the install failed; the message names it."""


@dataclass(frozen=True)
class Key:
    path: Path          # the venv
    environment: str    # digest of what the pinned install depends on
    package: str        # digest of the package's sources
    prefix: str         # gpo-action-venv-OS-ARCH-pyX.Y.Z-

    @property
    def key(self) -> str:
        return f"{self.prefix}{self.environment}-{self.package}"

    @property
    def restore_key(self) -> str:
        return f"{self.prefix}{self.environment}-"


def _digest(parts: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, data in parts:
        # length-prefixed, so no two different lists hash alike
        for field in (name.encode(), data):
            h.update(len(field).to_bytes(8, "big"))
            h.update(field)
    return h.hexdigest()[:DIGEST_CHARS]


def package_files(action_path: Path) -> list[Path]:
    """What `pip install --no-deps` of the checkout builds from (bytecode left out)."""
    files = [action_path / name for name in PACKAGE_FILES]
    files += sorted(p for p in (action_path / PACKAGE_DIR).rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return files


def compute_key(action_path: Path, venv: Path, runner_os: str, runner_arch: str,
                python: str = sys.executable) -> Key:
    """The key of the venv at `venv` built by `python` from `action_path`."""
    real_python = os.path.realpath(python)
    environment = _digest([
        ("pins", (action_path / PINS).read_bytes()),
        ("recipe", Path(__file__).read_bytes()),
        ("venv", str(venv).encode()),
        ("python", real_python.encode()),
        ("version", sys.version.encode()),
        ("runner", f"{runner_os}/{runner_arch}/{platform.machine()}".encode()),
    ])
    package = _digest([(p.relative_to(action_path).as_posix(), p.read_bytes())
                       for p in package_files(action_path)])
    prefix = f"gpo-action-venv-{runner_os}-{runner_arch}-py{platform.python_version()}-"
    return Key(venv, environment, package, prefix)


def bin_dir(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _exe(venv: Path, name: str) -> Path:
    return bin_dir(venv) / (name + ".exe" if os.name == "nt" else name)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _starts(python: Path) -> bool:
    try:
        return subprocess.run([str(python), "-c", "import sys"], capture_output=True).returncode == 0
    except OSError:
        return False


def _run(what: str, argv: list[str]) -> None:
    done = subprocess.run(argv)
    if done.returncode != 0:
        raise VenvError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}")


def _say(message: str) -> None:
    print(message, flush=True)   # before the subprocesses' own output


def install(key: Key, action_path: Path, say=_say) -> Path:
    """Make the venv ready and return its scripts directory: reuse a restored venv built for this
    environment, else build it; reinstall the package when its stamp differs. The stamps are
    written only after their step succeeded, so an interrupted install is redone."""
    venv = key.path
    python = _exe(venv, "python")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    built = False
    if _read(venv / ENV_STAMP) == key.environment and _starts(python):
        say(f"gpo-action: reusing the restored venv {venv}")
    else:
        if venv.exists():
            say(f"gpo-action: the venv at {venv} was built for another environment (or does not start): rebuilding")
            shutil.rmtree(venv)
        say(f"gpo-action: building the venv {venv} from {PINS}")
        _run("creating the venv", [sys.executable, "-m", "venv", str(venv)])
        _run(f"installing {PINS}", [*pip, "-r", str(action_path / PINS)])
        built = True
    if _read(venv / PACKAGE_STAMP) != key.package:
        say("gpo-action: installing gpo-action from the action's checkout")
        (venv / PACKAGE_STAMP).unlink(missing_ok=True)
        _run("installing gpo-action", [*pip, "--no-deps", "--force-reinstall", str(action_path)])
        (venv / PACKAGE_STAMP).write_text(key.package + "\n")
    else:
        say("gpo-action: the venv's gpo-action is this checkout's")
    if built:
        slim(venv)
        (venv / ENV_STAMP).write_text(key.environment + "\n")   # last: a venv not slimmed is rebuilt
    _run("gpo-action --version", [str(_exe(venv, "gpo-action")), "--version"])
    return bin_dir(venv)


def slim(venv: Path) -> None:
    """Remove from a built venv what no run reads (see the module's docstring)."""
    python = str(_exe(venv, "python"))
    _run("removing " + ", ".join(UNUSED_PACKAGES),
         [python, "-m", "pip", "uninstall", "--yes", "--quiet", "--disable-pip-version-check", *UNUSED_PACKAGES])
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}   # as the action's run: no fetch at import
    lists = [",".join(names) for names in (UNUSED_TREES, WARM_IMPORTS, KEEP_BYTECODE)]
    done = subprocess.run([python, "-I", "-c", SLIM, *lists], env=env)
    if done.returncode != 0:
        raise VenvError(f"slimming the venv (compiling what a run imports) failed (exit {done.returncode})")


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise VenvError(f"{name} is not set (this script runs inside the composite action)")
    return value


def key_from_env() -> Key:
    venv = Path(os.environ.get("GPO_ACTION_VENV") or Path(_env("RUNNER_TEMP")) / VENV_NAME)
    return compute_key(Path(_env("GITHUB_ACTION_PATH")), venv, _env("RUNNER_OS"), _env("RUNNER_ARCH"))


def _output(lines: dict[str, str]) -> None:
    text = "".join(f"{name}={value}\n" for name, value in lines.items())
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def main(argv: list[str]) -> int:
    if argv not in (["key"], ["install"]):
        print("usage: venv.py key|install", file=sys.stderr)
        return 2
    try:
        key = key_from_env()
        if argv == ["key"]:
            _output({"path": str(key.path), "key": key.key, "restore-key": key.restore_key})
        else:
            # forward slashes: the next step is bash, Git Bash on Windows
            _output({"bin": install(key, Path(_env("GITHUB_ACTION_PATH"))).as_posix()})
    except (VenvError, OSError) as e:
        print(f"gpo-action: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
