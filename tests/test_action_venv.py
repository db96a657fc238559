"""action/venv.py, the composite action's venv: its cache key, and the install that reuses a restored
venv, run with real pip and real venvs on a tiny action checkout (a wheel as the pins, a package
with an in-tree build backend), offline (PIP_NO_INDEX)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "action" / "venv.py"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"action_venv_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module      # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


venv_script = _load(SCRIPT)


def checkout(root: Path, pins: str = "dep==1.0\n", version: str = "1.0") -> Path:
    """The files of an action checkout that the key reads."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "requirements-action.txt").write_text(pins)
    (root / "pyproject.toml").write_text(f'[project]\nname = "gpo-action"\nversion = "{version}"\n')
    (root / "README.md").write_text("readme\n")
    (root / "gpo_action").mkdir(exist_ok=True)
    (root / "gpo_action" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    return root


def key_of(action: Path, venv: Path | None = None, runner_os: str = "Linux", arch: str = "X64"):
    return venv_script.compute_key(action, venv or action.parent / "temp" / "gpo-action-venv", runner_os, arch)


def test_the_key_names_the_runner_and_the_exact_python_and_is_the_same_for_the_same_inputs(tmp_path):
    action = checkout(tmp_path / "a")
    key = key_of(action)
    major_minor_micro = ".".join(str(n) for n in sys.version_info[:3])
    assert key.key.startswith(f"gpo-action-venv-Linux-X64-py{major_minor_micro}-")
    assert key.key == f"{key.restore_key}{key.package}" and key.restore_key.endswith(f"{key.environment}-")
    assert key_of(action) == key
    # the same files elsewhere (another action version's directory), the same venv path: the same key
    assert key_of(checkout(tmp_path / "b"), venv=key.path) == key


def test_the_pins_change_the_environment_so_no_older_venv_is_restored(tmp_path):
    before = key_of(checkout(tmp_path / "a"))
    after = key_of(checkout(tmp_path / "a", pins="dep==1.1\n"))
    assert after.environment != before.environment and after.restore_key != before.restore_key
    assert after.package == before.package


def test_the_package_changes_only_the_package_digest_so_the_environment_is_still_restored(tmp_path):
    action = checkout(tmp_path / "a")
    before = key_of(action)
    (action / "gpo_action" / "cli.py").write_text("print('new')\n")
    after = key_of(action)
    assert after.package != before.package and after.key != before.key
    assert after.restore_key == before.restore_key
    (action / "gpo_action" / "__pycache__").mkdir()
    (action / "gpo_action" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"bytecode")
    assert key_of(action) == after                              # bytecode is not a source
    (action / "pyproject.toml").write_text('[project]\nname = "gpo-action"\nversion = "2.0"\n')
    assert key_of(action).package != after.package


@pytest.mark.parametrize("change", ["venv path", "os", "arch"])
def test_what_a_venv_bakes_in_changes_the_environment(tmp_path, change):
    action = checkout(tmp_path / "a")
    base = key_of(action)
    other = {"venv path": lambda: key_of(action, venv=tmp_path / "elsewhere" / "gpo-action-venv"),
             "os": lambda: key_of(action, runner_os="macOS"),
             "arch": lambda: key_of(action, arch="ARM64")}[change]()
    assert other.environment != base.environment and other.restore_key != base.restore_key


def test_the_recipe_is_part_of_the_environment(tmp_path):
    """A change to venv.py (how the venv is built) must not reuse venvs the old recipe built."""
    action = checkout(tmp_path / "a")
    edited = tmp_path / "edited" / "venv.py"
    edited.parent.mkdir()
    edited.write_text(SCRIPT.read_text() + "\n# another recipe\n")
    venv = tmp_path / "temp" / "gpo-action-venv"
    assert _load(edited).compute_key(action, venv, "Linux", "X64").environment != key_of(action, venv).environment


def test_the_package_digest_covers_what_setuptools_packages():
    """venv.py hashes gpo_action/ (and pyproject.toml, README.md): the build must take nothing else."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == [f"{venv_script.PACKAGE_DIR}*"]
    assert project["project"]["readme"] in venv_script.PACKAGE_FILES
    files = venv_script.package_files(ROOT)
    assert ROOT / "gpo_action" / "cli.py" in files and ROOT / "pyproject.toml" in files
    assert not [f for f in files if "__pycache__" in f.parts]


def test_key_command_writes_the_outputs_the_action_reads(tmp_path):
    action = checkout(tmp_path / "a")
    output = tmp_path / "output"
    env = {**os.environ, "GITHUB_ACTION_PATH": str(action), "RUNNER_TEMP": str(tmp_path / "temp"),
           "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "GITHUB_OUTPUT": str(output)}
    env.pop("GPO_ACTION_VENV", None)
    subprocess.run([sys.executable, str(SCRIPT), "key"], env=env, check=True)
    lines = dict(line.split("=", 1) for line in output.read_text().splitlines())
    key = key_of(action, tmp_path / "temp" / "gpo-action-venv")
    assert lines == {"path": str(tmp_path / "temp" / "gpo-action-venv"), "key": key.key,
                     "restore-key": key.restore_key}
    del env["RUNNER_TEMP"]
    done = subprocess.run([sys.executable, str(SCRIPT), "key"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "RUNNER_TEMP is not set" in done.stderr


# ---- the install, with real pip --------------------------------------------------------------
BACKEND = '''"""An in-tree PEP 517 backend: a wheel of gpo_action/ with a gpo-action console script."""
import base64, hashlib, pathlib, zipfile

def _version():
    for line in pathlib.Path("pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split('"')[1]

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    name = f"gpo_action-{version}-py3-none-any.whl"
    info = f"gpo_action-{version}.dist-info"
    files = {f"gpo_action/{p.name}": p.read_bytes() for p in pathlib.Path("gpo_action").glob("*.py")}
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: gpo-action\\nVersion: {version}\\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    files[f"{info}/entry_points.txt"] = b"[console_scripts]\\ngpo-action = gpo_action:main\\n"
    record = []
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / name, "w") as z:
        for path, data in files.items():
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\\n".join(record) + "\\n")
    return name
'''


def _wheel(directory: Path, name: str, files: dict[str, str]) -> Path:
    """A real wheel to pin: `name` 1.0 with `files`."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for file, text in files.items():
            z.writestr(file, text)
        z.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{name}-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{name}-1.0.dist-info/RECORD", "")
    return path


def _dep_wheel(directory: Path) -> Path:
    """`dep`, which the tiny gpo_action imports, and `dep_unused`, which nothing imports."""
    return _wheel(directory, "dep", {"dep.py": "VALUE = 1\n", "dep_unused.py": "VALUE = 2\n"})


def _litellm_wheel(directory: Path) -> Path:
    """A stand-in with the tree the slimming removes (the proxy's admin UI) beside one it keeps."""
    return _wheel(directory, "litellm", {
        "litellm/__init__.py": "", "litellm/proxy/__init__.py": "",
        "litellm/proxy/_experimental/post_call_rules.py": "",
        "litellm/proxy/_experimental/out/index.html": "<html></html>\n",
        "litellm/proxy/_experimental/out/_next/static/app.js": "0\n"})


def _pins(tmp_path: Path) -> tuple[Path, str]:
    """The wheels directory and a requirements file's text pinning dep and the litellm stand-in."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    return wheels, f"{_dep_wheel(wheels)}\n{_litellm_wheel(wheels)}\n"


def _bytecode(module: Path) -> Path:
    return module.parent / "__pycache__" / f"{module.stem}.{sys.implementation.cache_tag}.pyc"


def installable_checkout(root: Path, pins: str, version: str) -> Path:
    action = checkout(root, pins=pins, version=version)
    (action / "pyproject.toml").write_text(
        f'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        f'[project]\nname = "gpo-action"\nversion = "{version}"\n')
    (action / "backend.py").write_text(BACKEND)
    (action / "gpo_action" / "__init__.py").write_text(
        f'import dep\n\ndef main():\n    print("gpo-action, version {version}")\n')
    return action


class Runner:
    """`venv.py install` as the action's install step runs it (a fresh process, the step's env)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.temp = tmp / "runner-temp"
        self.temp.mkdir()
        self.venv = self.temp / "gpo-action-venv"
        self.output = tmp / "output"

    def install(self, action: Path) -> subprocess.CompletedProcess:
        self.output.write_text("")
        # a runner's step has no PYTHONPATH: one naming a gpo-action checkout would shadow the tiny package
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHONPATH"))}
        env.update(GITHUB_ACTION_PATH=str(action), RUNNER_TEMP=str(self.temp), RUNNER_OS="Linux",
                   RUNNER_ARCH="X64", GPO_ACTION_VENV=str(self.venv), GITHUB_OUTPUT=str(self.output),
                   PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        return subprocess.run([sys.executable, str(SCRIPT), "install"], env=env, capture_output=True, text=True)

    def plant(self) -> Path:
        """A file only the venv that is there now has: gone when the venv is rebuilt."""
        marker = self.venv / "planted-by-the-test"
        marker.write_text("")
        return marker


@pytest.mark.skipif(os.name == "nt", reason="the test's venv paths are POSIX ones")
def test_install_builds_reuses_reinstalls_only_the_package_and_rebuilds_what_it_cannot_trust(tmp_path):
    wheels, pins = _pins(tmp_path)
    run = Runner(tmp_path)

    # a miss: no venv, so it is built from the pins, then the package; the outputs name its bin/
    first = run.install(installable_checkout(tmp_path / "v1", pins, "1.0"))
    assert first.returncode == 0, first.stderr
    assert "building the venv" in first.stdout and "gpo-action, version 1.0" in first.stdout
    assert run.output.read_text() == f"bin={(run.venv / 'bin').as_posix()}\n"
    marker = run.plant()

    # an exact hit (the same checkout): nothing installed, the venv kept, the entry point run
    again = run.install(tmp_path / "v1")
    assert again.returncode == 0, again.stderr
    assert "reusing the restored venv" in again.stdout and "installing" not in again.stdout
    assert "gpo-action, version 1.0" in again.stdout and marker.exists()

    # a hit of the environment by a newer checkout: only the package is reinstalled
    newer = run.install(installable_checkout(tmp_path / "v2", pins, "2.0"))
    assert newer.returncode == 0, newer.stderr
    assert "reusing the restored venv" in newer.stdout and "installing gpo-action" in newer.stdout
    assert "gpo-action, version 2.0" in newer.stdout and marker.exists()

    # the pins changed (here: pins that cannot install): the venv is rebuilt, the failure named,
    # and no stamp says it is complete, so the next run builds it again
    broken = installable_checkout(tmp_path / "v3", f"{wheels / 'missing-1.0-py3-none-any.whl'}\n", "2.0")
    failed = run.install(broken)
    assert failed.returncode == 1 and "installing requirements-action.txt failed" in failed.stderr
    assert not marker.exists() and not (run.venv / venv_script.ENV_STAMP).exists()
    fixed = run.install(installable_checkout(tmp_path / "v3", pins + "\n", "2.0"))
    assert fixed.returncode == 0, fixed.stderr
    assert "building the venv" in fixed.stdout and "gpo-action, version 2.0" in fixed.stdout

    # a venv whose stamps match but whose python does not start (restored onto another machine): rebuilt
    marker = run.plant()
    (run.venv / "bin" / "python").unlink()
    (run.venv / "bin" / "python").symlink_to(tmp_path / "no-such-python")
    healed = run.install(tmp_path / "v3")
    assert healed.returncode == 0, healed.stderr
    assert "does not start): rebuilding" in healed.stdout and not marker.exists()
    assert "gpo-action, version 2.0" in healed.stdout


@pytest.mark.skipif(os.name == "nt", reason="the test's venv paths are POSIX ones")
def test_a_built_venv_keeps_only_what_a_run_reads(tmp_path):
    """The slimming of a miss: bytecode of what gpo_action and the lazy imports load, no other
    bytecode, no proxy UI, no setuptools; the venv still runs, and a package reinstall still works."""
    _, pins = _pins(tmp_path)
    run = Runner(tmp_path)
    built = run.install(installable_checkout(tmp_path / "v1", pins, "1.0"))
    assert built.returncode == 0, built.stderr
    site = next((run.venv / "lib").glob("python3.*/site-packages"))
    assert _bytecode(site / "dep.py").is_file()                          # imported by gpo_action
    assert _bytecode(site / "litellm" / "__init__.py").is_file()          # a lazy import, warmed
    assert _bytecode(site / "gpo_action" / "__init__.py").is_file()
    assert (site / "dep_unused.py").is_file() and not _bytecode(site / "dep_unused.py").exists()
    assert list((site / "pip").rglob("*.pyc"))                            # kept: a package reinstall runs pip
    experimental = site / "litellm" / "proxy" / "_experimental"
    assert (experimental / "post_call_rules.py").is_file() and not (experimental / "out").exists()
    assert not (site / "setuptools").exists() and not list(site.glob("setuptools-*.dist-info"))
    assert (run.venv / venv_script.ENV_STAMP).is_file()

    # a newer checkout on the restored venv: pip reinstalls the package
    newer = run.install(installable_checkout(tmp_path / "v2", pins, "2.0"))
    assert newer.returncode == 0, newer.stderr
    assert "reusing the restored venv" in newer.stdout and "gpo-action, version 2.0" in newer.stdout
