"""House rule 7: importing the package or asking for --help must not pull in heavy libraries."""

import json
import subprocess
import sys

HEAVY = ["litellm", "git", "llama_cpp", "openai", "rich.progress"]


def modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]
    return set(json.loads(out))


def test_import_package_is_light():
    loaded = modules_after("import gpo_action")
    assert not [m for m in HEAVY if m in loaded]


def test_help_is_light():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom gpo_action.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(main, ['eval', '--help'])\nassert r.exit_code == 0, r.output\n"
    )
    loaded = modules_after(code)
    assert not [m for m in HEAVY if m in loaded]
