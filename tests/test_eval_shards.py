"""`eval --shard K/N` and `merge` of eval partials: shards as separate processes against the scripted
server, each in a checkout of its own, merged into what one unsharded `eval` gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.projects import TICKETS, write_triage_eval

KEY = "sk-test-secret-eval-shards-77"
CANARY = "sk-canary-eval-shards-9a8b7c6d5e4f"
WRONG = {t for i, t in enumerate(TICKETS) if i % 4 == 0}  # 8 of 30 answered wrongly


def reply(body, index):
    """The ticket's category, except for the WRONG tickets; the second suite's prompt gets 'other'."""
    text = body["messages"][-1]["content"]
    ticket = text.split("Ticket: ", 1)[1].split("\n", 1)[0]
    if "Sort:" in text:
        return "other"
    return "other" if ticket in WRONG and TICKETS[ticket] != "other" else TICKETS[ticket]


@pytest.fixture
def project(tmp_path, openai_server):
    """Two suites: triage (30 cases, 22 or more right) and sorting (30 cases, a floor of 0.5 it
    misses: the eval exits 1)."""
    root = tmp_path / "project"
    root.mkdir()
    write_triage_eval(root, openai_server.url, TICKETS)
    (root / "prompts" / "sorting.j2").write_text("Sort: billing, bug or other.\nTicket: {{ ticket }}\n")
    listed = "".join(f"  - vars: {{ticket: {t!r}}}\n    expected: {e}\n" for t, e in TICKETS.items())
    (root / "evals" / "sorting.yaml").write_text(
        "prompt: prompts/sorting.j2\nmin_score: 0.5\nassert:\n  - {type: icontains, value: '{{ expected }}'}\n"
        "cases:\n" + listed)
    openai_server.set_reply(reply)
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return {**env, "GPO_TEST_KEY": KEY, **extra}


def gpo(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpo_action", *args], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=300)


def _shards(project: Path, tmp_path: Path, n: int, env: dict[str, str] | None = None) -> list[Path]:
    """`eval --shard k/n` for every k, as n processes at once, each in a copy of the project (a
    matrix job's checkout, with a cache of its own); the partials' paths."""
    jobs = [tmp_path / f"job{k}-of-{n}" for k in range(1, n + 1)]
    for job in jobs:
        shutil.copytree(project, job)
    procs = [subprocess.Popen([sys.executable, "-m", "gpo_action", "eval", "--shard", f"{k}/{n}"], cwd=job,
                              env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, job in enumerate(jobs, 1)]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out == ""  # a shard prints no result: the merge does
    return [job / ".gpo" / f"eval-partial-{k}-of-{n}.json" for k, job in enumerate(jobs, 1)]


def _without_timings(data):
    if isinstance(data, dict):
        return {k: _without_timings(v) for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


def test_three_eval_shards_as_processes_then_merge_equal_one_unsharded_eval(project, openai_server, tmp_path):
    alone_dir = tmp_path / "alone"
    shutil.copytree(project, alone_dir)
    partials = _shards(project, tmp_path, 3)
    sizes = [json.loads(p.read_text())["jobs"] for p in partials]
    per_shard = [sum(len(j["result"]["cases"]) for j in jobs) for jobs in sizes]
    assert sum(per_shard) == 60 and all(per_shard), per_shard  # 30 cases of each suite, every shard some
    assert openai_server.total == 60  # each case asked once, by the shard that holds it

    merged = gpo(project, "merge", *map(str, partials), "--json", "merged.json", "--junit", "merged.xml",
                 "--html", "merged.html")
    assert openai_server.total == 60, merged.stderr  # the merge evaluates nothing
    alone = gpo(alone_dir, "eval", "--json", "alone.json", "--junit", "alone.xml", "--html", "alone.html")
    assert openai_server.total == 120
    assert alone.returncode == 1, alone.stderr  # sorting is under its floor
    assert merged.returncode == alone.returncode, merged.stderr

    # each checkout's own absolute prompt path set aside
    one = json.loads((alone_dir / "alone.json").read_text().replace(str(alone_dir), "P"))
    many = json.loads((project / "merged.json").read_text().replace(str(project), "P"))
    assert many["kind"] == "eval" and many["exit_code"] == 1
    triage = next(s for s in many["suites"] if s["name"] == "triage")
    assert (triage["passed"], triage["failed"]) == (30 - len([t for t in WRONG if TICKETS[t] != "other"]),
                                                    len([t for t in WRONG if TICKETS[t] != "other"]))
    assert _without_timings(many) == _without_timings(one)  # every case, score, pass/fail, usage, exit code
    # the other outputs: the same bytes, once the prompt's path (each checkout's own) and timings are set aside
    assert _junit_cases(project / "merged.xml") == _junit_cases(alone_dir / "alone.xml")
    assert len(_junit_cases(project / "merged.xml")) == 60
    assert _table_rows(merged.stdout) == _table_rows(alone.stdout)
    assert (project / ".gpo" / "report.json").exists()  # the merge's report is the last report, for `show`
    merged_html, alone_html = (project / "merged.html").read_text(), (alone_dir / "alone.html").read_text()
    assert merged_html.count('data-case-id="') == alone_html.count('data-case-id="') == 60


def _junit_cases(path: Path) -> list[tuple[str, str, bool]]:
    """(classname, name, failed) per testcase: the verdicts JUnit carries, without its times."""
    import xml.etree.ElementTree as ET

    return [(c.get("classname"), c.get("name"), c.find("failure") is not None)
            for c in ET.parse(path).getroot().iter("testcase")]


def _table_rows(stdout: str) -> list[str]:
    """The table's rows without its timing column's figures, nor the padding a wider figure moves."""
    import re

    return [" ".join(re.sub(r"\d+(\.\d+)?s\b", "T", line).split())
            for line in stdout.splitlines() if "triage" in line or "sorting" in line]


def test_a_missing_shard_a_duplicate_a_mix_and_another_configuration_are_each_refused_by_name(project, tmp_path):
    p1, p2, p3 = _shards(project, tmp_path, 3)
    missing = gpo(project, "merge", str(p1), str(p3))
    assert missing.returncode == 2 and "shard 2/3 is missing" in missing.stderr, missing.stderr
    twice = tmp_path / "again.json"
    shutil.copy(p1, twice)
    duplicate = gpo(project, "merge", str(p1), str(p2), str(p3), str(twice))
    assert duplicate.returncode == 2 and "shard 1/3 is given twice" in duplicate.stderr, duplicate.stderr
    assert str(twice) in duplicate.stderr and str(p1) in duplicate.stderr

    run_partial = tmp_path / "partial-1-of-3.json"  # what `run --shard` writes: another kind
    run_partial.write_text(json.dumps({"tool": "gpo-action", "version": "x", "kind": "partial"}))
    mixed = gpo(project, "merge", str(p1), str(p2), str(run_partial))
    assert mixed.returncode == 2 and "eval --shard" in mixed.stderr and "run --shard" in mixed.stderr, mixed.stderr
    assert str(run_partial) in mixed.stderr and str(p1) in mixed.stderr

    run_only = gpo(project, "merge", str(p1), str(p2), str(p3), "--markdown", "c.md")
    assert run_only.returncode == 2 and "--markdown" in run_only.stderr, run_only.stderr

    suite = project / "evals" / "triage.yaml"  # the merge's checkout differs: one case's expected value
    suite.write_text(suite.read_text().replace("expected: billing", "expected: bug", 1))
    other = gpo(project, "merge", str(p1), str(p2), str(p3))
    assert other.returncode == 2 and "another configuration" in other.stderr, other.stderr
    assert str(p1) in other.stderr
    shutil.copy(tmp_path / "job1-of-3" / "evals" / "triage.yaml", suite)
    config = project / "gpo.yaml"
    config.write_text(config.read_text() + "max_error_rate: 0.5\n")  # the exit code's tolerance
    tolerance = gpo(project, "merge", str(p1), str(p2), str(p3))
    assert tolerance.returncode == 2 and "another configuration" in tolerance.stderr, tolerance.stderr


def test_an_eval_shard_writes_no_report_and_its_partial_holds_no_secret(project, openai_server, tmp_path):
    openai_server.set_reply(lambda body, index: f"billing {CANARY}")
    env = _env(GPO_TEST_KEY=CANARY)
    shard = gpo(project, "eval", "--shard", "2/2", "--partial", "p2.json", env=env)
    assert shard.returncode == 0, shard.stderr
    assert "shard 2/2" in shard.stderr and "p2.json" in shard.stderr
    text = (project / "p2.json").read_text()
    data = json.loads(text)
    assert data["kind"] == "eval-partial" and data["shard"] == {"index": 2, "count": 2}
    assert any(c["samples"] for j in data["jobs"] for c in j["result"]["cases"])  # the outputs are in it...
    assert CANARY not in text  # ...scrubbed
    assert not (project / ".gpo" / "report.json").exists()  # a shard's result is no result
    assert CANARY not in shard.stdout + shard.stderr
    first = gpo(project, "eval", "--shard", "1/2", "--partial", "p1.json", env=env)
    assert first.returncode == 0, first.stderr
    merged = gpo(project, "merge", "p1.json", "p2.json", "--json", "m.json", env=env)
    assert merged.returncode in (0, 1), merged.stderr
    assert CANARY not in merged.stdout + merged.stderr + (project / "m.json").read_text()


def test_shard_flags_that_do_not_go_together_are_input_errors(project):
    alone = gpo(project, "eval", "--partial", "p.json")
    assert alone.returncode == 2 and "--shard" in alone.stderr
    report = gpo(project, "eval", "--shard", "1/2", "--json", "r.json")
    assert report.returncode == 2 and "--json" in report.stderr and "merge" in report.stderr
    bad = gpo(project, "eval", "--shard", "3/2")
    assert bad.returncode == 2 and "3/2" in bad.stderr
