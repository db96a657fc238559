"""A hostile reviewer's pull requests against `gpo-action action` (issue 11): the ways past the ten
promises that the other files do not try. The GitHub stand-in, the scripted OpenAI-compatible
server, a real repository with a bare `origin`, canary keys in the environment (`Project` of
test_policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_action import BAD, GOOD, KEY, PATH, reply, github  # noqa: F401 (github: a fixture)
from tests.test_policy import CANARY, Project, config, git, suite

OUT_CACHE = "cache: {path: cache/responses.sqlite}\n"   # a base whose cache is not under .gpo/


def project_with(tmp_path: Path, openai_server, github, monkeypatch, extra: str = "") -> Project:
    openai_server.set_reply(reply)
    return Project(tmp_path, github, monkeypatch, {
        "gpo.yaml": config(openai_server.url, extra=extra), PATH: GOOD, "evals/triage.yaml": suite()})


def test_a_committed_gpo_symlink_does_not_move_the_json_report_out_of_the_tree(tmp_path, openai_server, github,
                                                                                monkeypatch):
    """The Action writes .gpo/report.json; a pull request that commits `.gpo` as a symlink to a
    directory outside must not make it write there (the cache path, checked already, is elsewhere)."""
    project = project_with(tmp_path, openai_server, github, monkeypatch, extra=OUT_CACHE)
    outside = tmp_path / "outside"
    outside.mkdir()
    (project.work / ".gpo").symlink_to(outside)
    git(project.work, "add", "-f", ".gpo")
    head = project.change({PATH: BAD})
    result, outputs, summary = project.run(head)
    assert result.exit_code == 2, result.output
    assert ("the JSON report: '.gpo/report.json' is a symlink that leads outside the repository"
            in result.output)
    assert list(outside.iterdir()) == []
    assert openai_server.total == 0                       # refused before anything is evaluated or paid
    for text in (result.output, outputs, summary):
        assert KEY not in text.replace(f"::add-mask::{KEY}", "") and CANARY not in text.replace(
            f"::add-mask::{CANARY}", "")
