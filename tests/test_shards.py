"""`run --shard K/N` and `merge`: shards as separate processes against the scripted server, in real
git repositories, merged into what one unsharded run gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from gpo_action.errors import InputError
from gpo_action.shards import Shard
from tests.support.projects import BAD, git, local_run_repo

CANARY = "sk-canary-shards-5f0c1d2e3a4b5c6d"


@pytest.fixture
def repo(tmp_path, openai_server, monkeypatch):
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    git(root, "checkout", "-qb", "pr")
    (root / "prompts" / "triage.j2").write_text(BAD)
    git(root, "commit", "-qam", "shorter prompt")
    return root


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return {**env, "OPENAI_API_KEY": "test-key", **extra}


def gpo(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gpo_action", *args], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=300)


def cli(cwd: Path, *args: str, monkeypatch):
    """The same command in this process (the checks that need no process of their own)."""
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _shards(repo: Path, n: int, env: dict[str, str] | None = None) -> list[Path]:
    """`run --shard k/n` for every k, as n processes at once; the partials' paths."""
    procs = [subprocess.Popen([sys.executable, "-m", "gpo_action", "run", "--base", "main", "--shard", f"{k}/{n}"],
                              cwd=repo, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(1, n + 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    return [repo / ".gpo" / f"partial-{k}-of-{n}.json" for k in range(1, n + 1)]


def _without_timings(data):
    """A report without its timings, and each prompt path from its project's root on (the base's lies
    in a temp dir of its own run, the head's in its own checkout)."""
    if isinstance(data, dict):
        return {k: (v.split("/prompts/")[-1] if k == "prompt" and isinstance(v, str) else _without_timings(v))
                for k, v in data.items() if k != "seconds"}
    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


def test_shard_parsing_and_every_case_in_exactly_one_shard():
    assert Shard.parse("2/4") == Shard(2, 4) and str(Shard.parse(" 1 / 3 ")) == "1/3"
    for bad in ("0/3", "4/3", "3", "a/b", "1/0", "1/257", ""):
        with pytest.raises(InputError):
            Shard.parse(bad)
    ids = [f"case-{i}" for i in range(500)]
    owners = {i: [k for k in range(1, 5) if Shard(k, 4).holds(i)] for i in ids}
    assert all(len(found) == 1 for found in owners.values())
    sizes = [sum(1 for found in owners.values() if found == [k]) for k in range(1, 5)]
    assert min(sizes) > 80, sizes  # a hash spreads them: 125 each expected
    # adding cases elsewhere never moves a case: ownership depends on the id alone
    more = ids + [f"new-{i}" for i in range(300)]
    assert {i: [k for k in range(1, 5) if Shard(k, 4).holds(i)] for i in more if i in owners} == owners


def test_a_jobs_identity_follows_every_cases_assertions_and_nothing_else(tmp_path):
    """`basehead.job_identity`, which each partial carries and the merge checks: the same for a suite
    loaded twice; another when one case's own assertion changes, or two cases swap theirs (most
    cases share the suite's assertions, whose repr is made once)."""
    from gpo_action.basehead import job_identity
    from gpo_action.evaluate import EvalJob
    from gpo_action.llm.types import ModelConfig
    from gpo_action.suites import load_suite
    from gpo_action.templates import load_template

    (tmp_path / "p.j2").write_text("Say {{ w }}")

    def identity(first: str, second: str) -> str:
        (tmp_path / "s.yaml").write_text(
            "prompt: p.j2\nassert: [{type: contains, value: a}]\ncases:\n"
            f"  - {{vars: {{w: one}}, assert: [{{type: contains, value: {first}}}]}}\n"
            f"  - {{vars: {{w: two}}, assert: [{{type: contains, value: {second}}}]}}\n"
            + "".join(f"  - {{vars: {{w: w{i}}}}}\n" for i in range(20)))
        suite = load_suite("s.yaml", tmp_path, tree=tmp_path)
        return job_identity(EvalJob(suite, load_template(tmp_path / "p.j2", tree=tmp_path), ModelConfig("openai/m")))

    same = identity("x", "y")
    assert identity("x", "y") == same
    assert len({same, identity("x", "z"), identity("y", "x"), identity("x", "x")}) == 4


def test_three_shards_as_processes_then_merge_equal_one_unsharded_run(repo, openai_server, tmp_path):
    """Each shard in a checkout (and cache) of its own, as matrix jobs are; the merge in a fourth."""
    unsharded = tmp_path / "unsharded"
    shutil.copytree(repo, unsharded)
    jobs = [tmp_path / f"job{k}" for k in (1, 2, 3)]
    for job in jobs:
        shutil.copytree(repo, job)
    procs = [subprocess.Popen([sys.executable, "-m", "gpo_action", "run", "--base", "main", "--shard", f"{k}/3"],
                              cwd=job, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, job in enumerate(jobs, 1)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    partials = [job / ".gpo" / f"partial-{k}-of-3.json" for k, job in enumerate(jobs, 1)]
    sizes = [sum(len(j["result"]["cases"]) for j in json.loads(p.read_text())["jobs"]) for p in partials]
    assert sum(sizes) == 60 and all(sizes), sizes  # 30 cases on each side, every shard some
    assert openai_server.total == 60  # each case asked once, by the shard that holds it
    merged = gpo(repo, "merge", *map(str, partials), "--base", "main", "--json", "merged.json", "--junit", "merged.xml")
    assert merged.returncode == 1, merged.stderr  # the regression, found over all 30 cases
    assert openai_server.total == 60  # the merge evaluates nothing

    alone = gpo(unsharded, "run", "--base", "main", "--json", "alone.json", "--junit", "alone.xml")
    assert alone.returncode == 1, alone.stderr
    assert openai_server.total == 120
    one, many = json.loads((unsharded / "alone.json").read_text()), json.loads((repo / "merged.json").read_text())
    assert many["comparisons"][0]["verdict"] == "regressed"
    assert _without_timings(many) == _without_timings(one)  # verdicts, p, intervals, every case, usage
    assert (repo / "merged.xml").read_text().count("<testcase") == (unsharded / "alone.xml").read_text().count("<testcase")

    # the shards' caches merged into the merge job's: the next full run asks the server nothing
    caches = [str(job / ".gpo" / "cache.sqlite") for job in jobs]
    joined = gpo(repo, "cache", "merge", *caches, "--into", ".gpo/cache.sqlite")
    assert joined.returncode == 0, joined.stderr
    assert ".gpo/cache.sqlite: 60 responses" in joined.stdout
    again = gpo(repo, "run", "--base", "main")
    assert again.returncode == 1 and openai_server.total == 120, again.stderr
    twice = gpo(repo, "cache", "merge", *caches, "--into", ".gpo/cache.sqlite")
    assert twice.returncode == 0 and "0 responses added" in twice.stderr and "60 responses" in twice.stdout


def test_cache_merge_refuses_what_is_not_a_cache(repo, tmp_path, monkeypatch):
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    result = cli(repo, "cache", "merge", str(junk), "--into", str(tmp_path / "dest.sqlite"), monkeypatch=monkeypatch)
    assert result.exit_code == 2 and "junk.sqlite" in result.stderr and "Traceback" not in result.output
    missing = cli(repo, "cache", "merge", str(tmp_path / "none.sqlite"), "--into", str(tmp_path / "dest.sqlite"), monkeypatch=monkeypatch)
    assert missing.exit_code == 2 and "no cache file" in missing.stderr


def test_a_missing_shard_a_duplicate_and_a_stranger_are_each_refused_by_name(repo, tmp_path, monkeypatch):
    p1, p2, p3 = _shards(repo, 3)
    missing = cli(repo, "merge", str(p1), str(p3), "--base", "main", monkeypatch=monkeypatch)
    assert missing.exit_code == 2 and "shard 2/3 is missing" in missing.stderr, missing.stderr
    twice = tmp_path / "again.json"
    shutil.copy(p1, twice)
    duplicate = cli(repo, "merge", str(p1), str(p2), str(p3), str(twice), "--base", "main", monkeypatch=monkeypatch)
    assert duplicate.exit_code == 2 and "shard 1/3 is given twice" in duplicate.stderr, duplicate.stderr
    assert str(twice) in duplicate.stderr

    (repo / "prompts" / "triage.j2").write_text(BAD + "One more line.\n")  # another head commit
    git(repo, "commit", "-qam", "another edit")
    stranger = cli(repo, "merge", str(p1), str(p2), str(p3), "--base", "main", monkeypatch=monkeypatch)
    assert stranger.exit_code == 2 and "made at head commit" in stranger.stderr, stranger.stderr
    assert "partial-1-of-3.json" in stranger.stderr


def test_a_partial_from_another_configuration_and_a_broken_file_are_refused(repo, tmp_path, monkeypatch):
    partials = _shards(repo, 2)
    config = repo / "gpo.yaml"
    config.write_text(config.read_text() + "gate: {max_drop: 0.5}\n")  # the working tree: same commit, other gate
    other = cli(repo, "merge", *map(str, partials), "--base", "main", monkeypatch=monkeypatch)
    assert other.exit_code == 2 and "another configuration" in other.stderr, other.stderr
    git(repo, "checkout", "-q", "gpo.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text('{"tool": "gpo-action",\n "kind": ')
    bad = cli(repo, "merge", str(partials[0]), str(broken), "--base", "main", monkeypatch=monkeypatch)
    assert bad.exit_code == 2 and "broken.json:2:" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.output


def test_a_shard_posts_nothing_and_its_partial_holds_no_secret(repo, openai_server):
    secret_reply = f"billing {CANARY}"
    openai_server.set_reply(lambda body, index: secret_reply)
    env = _env(OPENAI_API_KEY=CANARY)
    shard = gpo(repo, "run", "--base", "main", "--shard", "1/2", "--partial", "p1.json", env=env)
    assert shard.returncode == 0, shard.stderr
    assert "shard 1/2" in shard.stderr and "p1.json" in shard.stderr
    text = (repo / "p1.json").read_text()
    assert json.loads(text)["kind"] == "partial" and CANARY not in text
    assert not (repo / ".gpo" / "report.json").exists()  # a shard's verdict is no verdict: no report, no comment
    assert CANARY not in shard.stdout + shard.stderr


def test_partial_without_shard_is_an_input_error(repo, monkeypatch):
    result = cli(repo, "run", "--base", "main", "--partial", "p.json", monkeypatch=monkeypatch)
    assert result.exit_code == 2 and "--shard" in result.stderr



def test_the_actions_merge_mode_takes_every_partial_under_gpo_partials(tmp_path, monkeypatch):
    from gpo_action.action_inputs import options_from_inputs

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="no partial report"):
        options_from_inputs({"INPUT_MODE": "merge"})
    for k in (2, 1):  # as download-artifact lays them out: a folder per artifact
        (tmp_path / "gpo-partials" / f"shard-{k}").mkdir(parents=True)
        (tmp_path / "gpo-partials" / f"shard-{k}" / f"partial-{k}-of-2.json").write_text("{}")
    (tmp_path / "gpo-partials" / "notes.json").write_text("{}")
    options = options_from_inputs({"INPUT_MODE": "merge"})
    assert options.mode == "fix" and [Path(p).name for p in options.partials] == ["partial-1-of-2.json", "partial-2-of-2.json"]
    sharded = options_from_inputs({"INPUT_SHARD": "2/2"})
    assert sharded.shard == Shard(2, 2) and sharded.partials == ()


def test_merge_mode_reads_the_runners_temp_and_refuses_partials_the_checkout_commits(tmp_path, monkeypatch):
    import git

    from gpo_action.action_inputs import options_from_inputs

    work, temp = tmp_path / "work", tmp_path / "runner-temp"
    repo = git.Repo.init(work)
    monkeypatch.chdir(work)
    planted = work / "gpo-partials" / "x"
    planted.mkdir(parents=True)
    (planted / "partial-1-of-1.json").write_text("{}")
    (planted / "cache.sqlite").write_bytes(b"planted")
    repo.index.add([str(planted / "partial-1-of-1.json"), str(planted / "cache.sqlite")])
    repo.index.commit("a pull request plants a shard's artifact")
    with pytest.raises(InputError, match=r"refuses gpo-partials/: the checkout commits files there \(gpo-partials/x/"):
        options_from_inputs({"INPUT_MODE": "merge"})
    (temp / "gpo-partials" / "shard-1").mkdir(parents=True)
    (temp / "gpo-partials" / "shard-1" / "partial-1-of-1.json").write_text("{}")
    (temp / "gpo-partials" / "shard-1" / "cache.sqlite").write_bytes(b"")
    options = options_from_inputs({"INPUT_MODE": "merge", "RUNNER_TEMP": str(temp)})
    assert options.partials == (str(temp / "gpo-partials" / "shard-1" / "partial-1-of-1.json"),)
    assert options.merge_caches == (str(temp / "gpo-partials" / "shard-1" / "cache.sqlite"),)


def test_init_matrix_writes_a_shard_job_per_k_and_one_merge_job_reading_where_merge_mode_looks(tmp_path, monkeypatch):
    import yaml

    from gpo_action.action_inputs import PARTIALS_DIR

    result = cli(tmp_path, "init", "--matrix", "3", monkeypatch=monkeypatch)
    assert result.exit_code == 0, result.output
    flow = yaml.safe_load((tmp_path / ".github" / "workflows" / "gpo.yml").read_text())
    shard, merge = flow["jobs"]["shard"], flow["jobs"]["merge"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3]
    [run] = [s for s in shard["steps"] if "gpo-action" in s.get("uses", "")]
    assert run["with"]["shard"] == "${{ matrix.shard }}/3"
    [upload] = [s for s in shard["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    # exactly this shard's partial: another one the pull request commits is not uploaded in its place
    assert upload["with"]["include-hidden-files"] is True
    assert upload["with"]["path"].splitlines() == [".gpo/partial-${{ matrix.shard }}-of-3.json", ".gpo/cache.sqlite*"]
    assert merge["needs"] == "shard"
    [download] = [s for s in merge["steps"] if s.get("uses", "").startswith("actions/download-artifact")]
    assert download["with"]["path"] == "${{ runner.temp }}/" + PARTIALS_DIR  # outside the checkout
    [final] = [s for s in merge["steps"] if "gpo-action" in s.get("uses", "")]
    assert final["with"]["mode"] == "merge"
    (tmp_path / "one").mkdir()
    refused = cli(tmp_path / "one", "init", "--matrix", "1", monkeypatch=monkeypatch)
    assert refused.exit_code == 2 and "--matrix" in refused.stderr
