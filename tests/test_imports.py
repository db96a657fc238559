"""House rule 7: importing the package or asking for --help must not pull in heavy libraries."""

import json
import subprocess
import sys

import pytest

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


def test_optimize_and_its_report_are_light():
    loaded = modules_after(
        "import gpo_action.optimize.plan, gpo_action.optimize.projection, gpo_action.report.optimize")
    assert not [m for m in HEAVY if m in loaded]


def test_only_the_llm_package_imports_litellm():
    import re
    from pathlib import Path

    import gpo_action

    package = Path(gpo_action.__file__).parent
    pattern = re.compile(r"^\s*(import litellm|from litellm\b)|import_litellm", re.MULTILINE)
    offenders = [str(p.relative_to(package)) for p in sorted(package.rglob("*.py"))
                 if p.relative_to(package).parts[0] != "llm" and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_markdown_rendering_does_not_import_rich():
    """The comment and the job summary share the plain formatters (`report.formats`), not the
    terminal's rich module: rendering Markdown loads no rich at all."""
    loaded = modules_after("import gpo_action.report.markdown, gpo_action.report.comment")
    assert [m for m in loaded if m == "rich" or m.startswith("rich.")] == []
    assert "gpo_action.report.formats" in loaded


def test_the_process_entry_collects_less_and_the_library_leaves_the_collector_alone():
    """`run_process` (the console script, `python -m gpo_action`) raises the cycle collector's first
    threshold (`process.COLLECT_EVERY`); a library caller running `main` keeps its own."""
    code = (
        "import gc, json, sys\nfrom click.testing import CliRunner\nfrom gpo_action.cli import main, run_process\n"
        "default = gc.get_threshold()\nassert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
        "library = gc.get_threshold()\n"
        "@main.command('probe')\ndef probe():\n    print(json.dumps([default, library, gc.get_threshold()]))\n"
        "sys.argv = ['gpo-action', 'probe']\nrun_process()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    default, library, entry = json.loads(out.strip().splitlines()[-1])
    from gpo_action.process import COLLECT_EVERY

    assert library == default and entry == [COLLECT_EVERY, *default[1:]] and default[0] < COLLECT_EVERY


def test_a_command_that_makes_no_model_call_runs_without_the_collector_and_restores_it():
    """`collector_paused` (a merge that fixes nothing): no collection inside, the collector as it
    was after, an exception included; a collector someone else disabled stays disabled."""
    import gc

    from gpo_action.process import collector_paused

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with collector_paused():
        assert not gc.isenabled()
        built = [{"case": i} for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() == frozen  # a library caller's objects stay collectable
    del built
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failing merge")
    assert gc.isenabled()
    with collector_paused(False):
        assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_process_entry_freezes_what_a_pause_built_so_no_collection_walks_it_again():
    """In `run_process` (it ends with os._exit, no teardown) the pause's end moves what it built
    out of the collector's reach (`gc.freeze`): the first collection after it walked it all."""
    code = (
        "import gc, json, sys\nfrom gpo_action.cli import main, run_process\n"
        "from gpo_action.process import collector_paused\n"
        "@main.command('probe')\ndef probe():\n    before = gc.get_freeze_count()\n"
        "    with collector_paused():\n        built = [{'case': [i]} for i in range(10_000)]\n"
        "    young = any(o is built[-1] for o in gc.get_objects())\n"
        "    print(json.dumps([before, gc.get_freeze_count(), gc.isenabled(), len(built), young]))\n"
        "sys.argv = ['gpo-action', 'probe']\nrun_process()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after, enabled, n, young = json.loads(out.strip().splitlines()[-1])
    assert enabled and n == 10_000 and after >= before + 10_000
    assert not young  # the collector's generations no longer hold what the pause built


def test_the_pipeline_and_the_step_printer_leave_the_optimizer_unloaded():
    """`run` and `merge` import the fix stage (the optimizer's engine, spec and parts) only when
    it runs: the pipeline, the step line and delivery's figures need none of it."""
    loaded = modules_after("import gpo_action.pr_pipeline, gpo_action.report.optimize, gpo_action.delivery")
    assert [m for m in ("gpo_action.optimize.engine", "gpo_action.optimize.spec", "gpo_action.optimize.projection",
                        "gpo_action.fixes") if m in loaded] == []
