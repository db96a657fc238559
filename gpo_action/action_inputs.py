"""The Action's inputs: `Options` (what one pull-request run is asked to do), read from the
runner's `INPUT_<NAME>` variables by `options_from_inputs` (the CLI builds them from its flags),
and the secrets a run knows masked in the log (`mask_secrets`).

Inputs of the Action (`options_from_inputs`, from the runner's `INPUT_<NAME>` variables):
github-token, config, base, mode (fix | check), deliver (comma-separated: comment, suggestion,
commit; empty = gpo.yaml's `optimize.deliver`), budget-usd (overrides `optimize.budget.max_usd`),
comment-author (the bot login a GitHub App's installation token posts as; default github-actions[bot]),
trust-head-config (true: the head's gpo.yaml is the policy; see action.yml for the risk), shard
(K/N: evaluate that shard's cases and write its partial only); mode merge takes every partial
under `gpo-partials/` instead of evaluating, adds each `cache.sqlite` there to the run's cache,
then goes on as mode fix.
Outputs: regressed, improved, removed, proposed, verdicts, exit-code, report-path, junit-path,
html-path, partial-path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping

from gpo_action import secrets
from gpo_action.delivery import MODES
from gpo_action.errors import InputError
from gpo_action.github.commands import add_mask
from gpo_action.report.lastreport import LAST_REPORT
from gpo_action.shards import Shard

MODES_OF_RUN = ("fix", "check")
INPUTS = ("github-token", "config", "base", "mode", "deliver", "budget-usd", "comment-author", "trust-head-config",
          "shard")
OUTPUTS = ("regressed", "improved", "removed", "proposed", "verdicts", "exit-code", "report-path", "junit-path",
           "html-path", "partial-path")
REPORT_FILE = LAST_REPORT                           # the Action's JSON report is the last report (`show`)
JUNIT_FILE = ".gpo/junit.xml"                       # the Action always writes JUnit XML here
HTML_FILE = ".gpo/report.html"                      # and the HTML report here
PARTIALS_DIR = "gpo-partials"                     # mode merge: the shards' partials, where download-artifact puts them
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\[bot\])?")


@dataclass(frozen=True)
class Options:
    config: str | None = None
    base: str | None = None
    mode: str = "fix"                               # fix: optimize per optimize.when; check: compare only
    deliver: tuple[str, ...] | None = None          # None: gpo.yaml's optimize.deliver
    budget_usd: float | None = None
    token: str | None = None                        # GitHub token: deliver to the pull request
    comment_author: str | None = None               # an installation token's bot login (None: github-actions[bot])
    out_dir: str | None = None                      # deliver to files here instead
    report_path: str | None = None                  # the JSON report (None: none, unless in Actions)
    markdown_path: str | None = None
    junit_path: str | None = None                   # JUnit XML (None: none, unless in Actions)
    html_path: str | None = None                    # the HTML report (None: none, unless in Actions)
    steps: int | None = None                        # optimizer overrides (the demo keeps them small)
    candidates: int | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    trust_head_config: bool = False                 # in Actions: the head's gpo.yaml is the policy
    shard: Shard | None = None                      # evaluate this shard's cases and write its partial, nothing else
    partials: tuple[str, ...] = ()                  # merge: take every outcome from these shards' partials
    partial_path: str | None = None                 # where a shard writes its partial (None: .gpo/partial-K-of-N.json)
    merge_caches: tuple[str, ...] = ()              # merge: the shards' cache files, added to this run's cache first

    def __post_init__(self) -> None:
        if self.mode not in MODES_OF_RUN:
            raise InputError(f"unknown mode {self.mode!r}", hint=f"use one of: {', '.join(MODES_OF_RUN)}")
        unknown = [m for m in self.deliver or () if m not in MODES]
        if unknown:
            raise InputError(f"unknown delivery {unknown[0]!r}", hint=f"use some of: {', '.join(MODES)}")
        if self.budget_usd is not None and self.budget_usd < 0:
            raise InputError(f"budget-usd must be 0 or more, got {self.budget_usd}")
        if self.shard is not None and self.partials:
            raise InputError("a shard evaluates its cases; a merge takes them from partials: not both at once")
        if self.comment_author is not None and not LOGIN.fullmatch(self.comment_author):
            raise InputError(f"comment-author must be a GitHub login such as my-app[bot], got {self.comment_author!r}")


def parse_deliver(text: str | None) -> tuple[str, ...] | None:
    """"comment, suggestion" -> ("comment", "suggestion"); empty -> None (use gpo.yaml's)."""
    items = tuple(part.strip() for part in (text or "").replace(" ", ",").split(",") if part.strip())
    return items or None


def _input(env: Mapping[str, str], name: str) -> str:
    # The runner passes `with:` inputs as INPUT_<NAME> (upper case, hyphens kept); accept "_" too.
    key = f"INPUT_{name.upper()}"
    return (env.get(key) or env.get(key.replace("-", "_")) or "").strip()


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = _input(env, name).lower()
    if value in ("", "false"):
        return False
    if value == "true":
        return True
    raise InputError(f"{name} must be true or false, got {value!r}")


def partials_dir(env: Mapping[str, str]) -> Path:
    """Mode merge: where the shards' artifacts are. `$RUNNER_TEMP/gpo-partials` when it exists (the
    workflow `init --matrix` writes downloads there, outside the checkout, so a pull request cannot
    commit a partial or a cache in their place), else `gpo-partials/` in the workspace, where
    nothing may be tracked by git (`untracked_partials`)."""
    temp = env.get("RUNNER_TEMP")
    if temp and (Path(temp) / PARTIALS_DIR).is_dir():
        return Path(temp) / PARTIALS_DIR
    return untracked_partials(Path(PARTIALS_DIR))


def untracked_partials(directory: Path) -> Path:
    """`directory`, after checking that the checkout tracks nothing under it: a committed partial or
    cache.sqlite there would stand in for a shard's artifact (InputError naming them)."""
    try:
        import git

        repo = git.Repo(Path.cwd(), search_parent_directories=True)
        tracked = repo.git.ls_files("--", str(directory.resolve())).splitlines()
    except Exception:  # noqa: BLE001  (not a repository, or no git: nothing can be committed there)
        return directory
    if tracked:
        shown = ", ".join(tracked[:3]) + (f" and {len(tracked) - 3} more" if len(tracked) > 3 else "")
        raise InputError(f"mode merge refuses {directory}/: the checkout commits files there ({shown}), which "
                         "would stand in for the shards' artifacts",
                         hint="download the artifacts outside the checkout (path: ${{ runner.temp }}/gpo-partials)")
    return directory


def merge_partials(directory: str | os.PathLike = PARTIALS_DIR) -> tuple[str, ...]:
    """Mode merge: every shard's partial (`partial-K-of-N.json`) under `directory`, sorted."""
    found = tuple(sorted(str(path) for path in Path(directory).rglob("partial-*-of-*.json") if path.is_file()))
    if not found:
        raise InputError(f"mode merge found no partial report (partial-K-of-N.json) under {directory}/",
                         hint="download every shard's artifact there first (actions/download-artifact, "
                              "path: ${{ runner.temp }}/gpo-partials)")
    return found


def options_from_inputs(env: Mapping[str, str]) -> Options:
    budget = _input(env, "budget-usd")
    try:
        budget_usd = float(budget) if budget else None
    except ValueError:
        raise InputError(f"budget-usd must be a number of dollars, got {budget!r}") from None
    mode, shard = _input(env, "mode") or "fix", _input(env, "shard")
    directory = partials_dir(env) if mode == "merge" else None
    partials = merge_partials(directory) if directory is not None else ()
    caches = tuple(sorted(str(p) for p in directory.rglob("cache.sqlite") if p.is_file())) if directory else ()
    return Options(config=_input(env, "config") or None, base=_input(env, "base") or None,
                   mode="fix" if mode == "merge" else mode, deliver=parse_deliver(_input(env, "deliver")),
                   budget_usd=budget_usd, token=_input(env, "github-token") or None,
                   comment_author=_input(env, "comment-author") or None, report_path=REPORT_FILE,
                   junit_path=JUNIT_FILE, html_path=HTML_FILE, trust_head_config=_flag(env, "trust-head-config"),
                   shard=Shard.parse(shard) if shard else None, partials=partials, merge_caches=caches)


def mask_secrets(stream: IO[str], masked: set[str]) -> None:
    """::add-mask:: each secret the run's scrubber knows (`secrets`) that is not in `masked` yet
    (the runner masks their encodings itself); `masked` grows by them."""
    for value in sorted(secrets.current().values - masked):
        masked.add(value)
        add_mask(value, stream)


__all__ = ["Options", "options_from_inputs", "parse_deliver", "mask_secrets", "INPUTS", "OUTPUTS", "MODES_OF_RUN",
           "REPORT_FILE", "JUNIT_FILE", "HTML_FILE"]
