"""Eval suites: cases, their dev/holdout split, and loading them from a suite file (YAML).

A suite file (YAML) names its prompt, default assertions and cases:

    prompt: prompts/triage.j2          # relative to the repository root (or to this file)
    split: {dev: 0.5, seed: 0}
    assert: [{type: equals, value: "{{ expected }}"}]
    cases:
      - vars: {ticket: "I was charged twice"}
        expected: billing
      - file: more_cases.jsonl         # relative to this file; .jsonl or .csv; a glob is fine

`casefiles` reads the JSONL/CSV rows; every case, inline or from a file, is validated here against
`CaseSpec`. Every problem raises `SuiteError` with the file and line (`ConfigError` for gpo.yaml's
`suites:`).
Paths stored in `Suite` (`path`, `prompt`) are relative to the repository root (POSIX form) when
inside it, absolute otherwise; `root / suite.prompt` opens the template either way.
Every path a suite names (its prompt, case files and globs, a `replay/` model's file, `file://`
references), and every suite file gpo.yaml's `suites:` names, stays inside the repository's
working tree (`containment`). A var, `expected` or assertion value written `file://path` is read
from that file at load (`filerefs`); a case's default id hashes its vars as written.
"""

from __future__ import annotations

import glob
import hashlib
import os
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpo_action.assertions import Assertion
from gpo_action.casefiles import CASE_FILE_SUFFIXES, CaseRecord, case_records, find_case_files, read_case_bytes
from gpo_action.config import SECRET_HINTS, Config, ModelSpec
from gpo_action.containment import Origin, contain, contain_glob, tree_root
from gpo_action.errors import ConfigError, SuiteError
from gpo_action.filerefs import RefPlace, load_value, load_var, reads_file
from gpo_action.llm.types import ModelConfig, canonical_json
from gpo_action.yamlsource import Loc, YamlDoc, load_yaml, validation_error

SUITE_SUFFIXES = (".yaml", ".yml")
MIN_SPLIT_CASES = 4     # below this, split_cases puts every case in dev and none in holdout
DEFAULT_ASSERTION = Assertion(type="equals", value="{{ expected }}")


@dataclass(frozen=True)
class Case:
    id: str                                   # explicit `id`, else a content hash of vars
    vars: Mapping[str, Any]
    expected: Any = None
    asserts: tuple[Assertion, ...] = ()       # the case's own assertions, suite defaults added at load
    source: str = ""                          # "evals/x.yaml:12" or "evals/cases.jsonl:3", for messages
    description: str = ""
    threshold: float | None = None            # the case passes when its score >= this (overrides the suite's)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vars": dict(self.vars),
            "expected": self.expected,
            "asserts": [a.model_dump(mode="json") for a in self.asserts],
            "source": self.source,
            "description": self.description,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Case":
        return cls(
            id=data["id"],
            vars=dict(data["vars"]),
            expected=data.get("expected"),
            asserts=tuple(Assertion.model_validate(a) for a in data.get("asserts", ())),
            source=data.get("source", ""),
            description=data.get("description", ""),
            threshold=data.get("threshold"),
        )


@dataclass(frozen=True)
class Split:
    dev: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class Suite:
    name: str
    path: str                                 # the suite file, relative to the repository root
    prompt: str                               # template path, relative to the repository root
    cases: tuple[Case, ...]
    split: Split = field(default_factory=Split)
    model: ModelConfig | None = None          # overrides the config's task model
    repeats: int = 1
    min_score: float | None = None
    threshold: float | None = None            # a case passes when its score >= threshold (default: all assertions pass)
    description: str = ""


# --- the YAML schema ---------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True)


class SplitSpec(BaseModel):
    model_config = _STRICT

    dev: float = Field(default=0.5, gt=0, lt=1, description="fraction of cases that steer the optimizer")
    seed: int = Field(default=0, description="seed of the deterministic dev/holdout assignment")


class CaseSpec(BaseModel):
    """One case written out (inline in YAML, or a structured JSONL record)."""

    model_config = _STRICT

    id: str | None = Field(default=None, min_length=1, description="stable case id (default: hash of vars)")
    description: str | None = Field(default=None, description="what the case checks, for reports")
    vars: dict[str, Any] = Field(description="template variables")
    expected: Any = Field(default=None, description="reference answer, available to assertions as `expected`")
    asserts: list[Assertion] = Field(default_factory=list, alias="assert", description="this case's assertions")
    threshold: float | None = Field(default=None, ge=0, le=1, description="the case passes when its weighted score reaches this (overrides the suite's)")

    @model_validator(mode="before")
    @classmethod
    def _int_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("id"), int) and not isinstance(data.get("id"), bool):
            return {**data, "id": str(data["id"])}
        return data


class FileRef(BaseModel):
    model_config = _STRICT

    file: str = Field(min_length=1, description="case file (.jsonl or .csv), relative to the suite file; a glob is fine")


class SuiteSpec(BaseModel):
    model_config = _STRICT

    name: str | None = Field(default=None, min_length=1, description="suite name (default: the file stem)")
    description: str | None = Field(default=None, description="what the suite measures")
    prompt: str = Field(min_length=1, description="template path, relative to the repository root (or to the suite file)")
    model: ModelSpec | None = Field(default=None, description="task model for this suite (overrides models.task)")
    repeats: int = Field(default=1, ge=1, description="samples per case")
    min_score: float | None = Field(default=None, ge=0, le=1, description="absolute floor of the suite score")
    threshold: float | None = Field(default=None, ge=0, le=1, description="a case passes when its score reaches this")
    split: SplitSpec = Field(default_factory=SplitSpec, description="dev/holdout split")
    asserts: list[Assertion] = Field(default_factory=list, alias="assert", description="default assertions of every case")
    cases: list[Any] = Field(description="inline cases and {file: ...} references")

    @field_validator("model")
    @classmethod
    def _no_rate_limit(cls, value: ModelSpec | None) -> ModelSpec | None:
        if value is not None and value.rate_limit is not None:
            raise ValueError("rate_limit is not read from a suite: it describes the account, so it belongs to "
                             "gpo.yaml's models (on a pull request, the base's gpo.yaml decides it)")
        return value


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draft:
    """A case before ids and suite defaults are settled (frozen: a case file's are shared, see `_memo`)."""

    id: str | None
    description: str
    vars: dict[str, Any]
    expected: Any
    asserts: tuple[Assertion, ...]
    file: str               # display path
    line: int | None
    written: dict[str, Any]  # vars as written (file:// references unread): the default id hashes these
    threshold: float | None = None
    reads: bool = False      # it read a file:// reference

    @cached_property
    def written_hash(self) -> str:
        return case_hash(self.written)


def load_suite(path: str | Path, root: str | Path, *, env: Mapping[str, str] | None = None,
               tree: str | Path | None = None) -> Suite:
    """Load and validate one suite file. `root` is the repository root (the directory of gpo.yaml);
    a relative `path` is taken relative to it.

    `env` replaces `os.environ` for a suite-level `model: {api_key_env: ...}`. `tree` is the
    directory every path stays inside (default: the repository holding `root`).
    """
    root = Path(root)
    tree = Path(tree) if tree is not None else tree_root(root)
    file = root / path
    shown = display_path(file, root)
    contain(path, root, tree, Origin(shown, None, "", SuiteError), subject="the suite file")
    doc = load_yaml(file, error=SuiteError, display=shown)
    if not isinstance(doc.data, dict):
        found = "an empty file" if doc.data is None else type(doc.data).__name__
        raise SuiteError(f"expected a mapping with `prompt` and `cases`, found {found}", shown, doc.line_of(()))
    try:
        spec = SuiteSpec.model_validate(doc.data, context={"env": env})
    except ValidationError as exc:
        raise validation_error(exc, path=shown, error=SuiteError, model=SuiteSpec,
                               line_of=doc.line_of, hints=SECRET_HINTS) from None

    prompt = _resolve_prompt(spec.prompt, file, root, tree, doc)
    if spec.model is not None:
        spec.model.contain_replay(root, tree, Origin(shown, doc.line_of(("model",)), "model", SuiteError))
    place = RefPlace(root, file.parent, tree, shown)
    defaults = tuple(_load_assertion(a, f"assert.{j}.value", doc.line_of(("assert", j, "value")), place)
                     for j, a in enumerate(spec.asserts))
    for j, assertion in enumerate(defaults):
        _validate_assertion(assertion, shown, doc.line_of(("assert", j)), f"assert.{j}")

    drafts: list[_Draft] = []
    for i, item in enumerate(spec.cases):
        if isinstance(item, dict) and "file" in item:
            drafts.extend(_file_cases(item, i, file, root, tree, doc))
        else:
            drafts.append(_inline_case(item, i, doc, place))
    if not drafts:
        raise SuiteError("the suite has no cases", shown, doc.line_of(("cases",)),
                         hint="add `vars:` entries under `cases:` or a `file:` with rows")

    return Suite(
        name=spec.name or file.stem,
        path=shown,
        prompt=display_path(prompt, root),
        cases=_settle(drafts, defaults),
        split=Split(spec.split.dev, spec.split.seed),
        model=spec.model.to_model_config() if spec.model is not None else None,
        repeats=spec.repeats,
        min_score=spec.min_score,
        threshold=spec.threshold,
        description=spec.description or "",
    )


def _resolve_prompt(prompt: str, suite_file: Path, root: Path, tree: Path, doc: YamlDoc) -> Path:
    origin = Origin(doc.path, doc.line_of(("prompt",)), "prompt", SuiteError)
    refused: SuiteError | None = None
    for base in (root, suite_file.parent):
        try:
            if contain(prompt, base, tree, origin).is_file():
                return base / prompt
        except SuiteError as exc:  # the other reading of the path may stay inside
            refused = refused or exc
    if refused is not None:
        raise refused
    raise SuiteError(f"prompt: file {prompt!r} not found", doc.path, doc.line_of(("prompt",)),
                     hint="the path is relative to the repository root (the directory of gpo.yaml) or to the suite file")


def _load_assertion(assertion: Assertion, key: str, line: int | None, place: RefPlace) -> Assertion:
    value = load_value(assertion.value, key, line, place)
    return assertion if value is assertion.value else assertion.model_copy(update={"value": value})


def _draft(spec: CaseSpec, key: str, line_of, place: RefPlace, line: int | None) -> _Draft:
    """A validated case with its file:// references read; `line_of(loc)` finds a part's line
    (`loc` relative to the case)."""
    vars = {name: load_var(value, f"{key}vars.{name}", line_of(("vars", name)), place) for name, value in spec.vars.items()}
    expected = load_value(spec.expected, f"{key}expected", line_of(("expected",)), place)
    asserts = tuple(_load_assertion(a, f"{key}assert.{j}.value", line_of(("assert", j, "value")), place)
                    for j, a in enumerate(spec.asserts))
    for j, assertion in enumerate(asserts):
        _validate_assertion(assertion, place.shown, line_of(("assert", j)), f"{key}assert.{j}")
    reads = any(map(reads_file, spec.vars.values())) or reads_file(spec.expected) or any(reads_file(a.value) for a in spec.asserts)
    return _Draft(spec.id, spec.description or "", vars, expected, asserts, place.shown, line, dict(spec.vars),
                  spec.threshold, reads)


def _inline_case(item: Any, index: int, doc: YamlDoc, place: RefPlace) -> _Draft:
    loc: Loc = ("cases", index)
    if not isinstance(item, dict):
        raise SuiteError(f"cases.{index}: a case must be a mapping with `vars:` (or `file:`), found {type(item).__name__}",
                         doc.path, doc.line_of(loc))
    try:
        spec = CaseSpec.model_validate(item)
    except ValidationError as exc:
        raise validation_error(exc, path=doc.path, error=SuiteError, model=CaseSpec,
                               line_of=doc.line_of, prefix=loc) from None
    return _draft(spec, f"cases.{index}.", lambda part: doc.line_of(loc + part), place, doc.line_of(loc))


def _file_cases(item: dict, index: int, suite_file: Path, root: Path, tree: Path, doc: YamlDoc) -> list[_Draft]:
    loc: Loc = ("cases", index)
    try:
        ref = FileRef.model_validate(item)
    except ValidationError as exc:
        raise validation_error(exc, path=doc.path, error=SuiteError, model=FileRef,
                               line_of=doc.line_of, prefix=loc) from None
    line = doc.line_of(loc + ("file",))
    files = find_case_files(ref.file, suite_file.parent, tree, Origin(doc.path, line, f"cases.{index}.file", SuiteError))
    if not files:
        raise SuiteError(f"cases.{index}.file: {ref.file!r} matched no files", doc.path, line,
                         hint=f"case files are relative to the suite file's directory ({display_path(suite_file.parent, root)})")
    drafts: list[_Draft] = []
    for case_file in files:
        if case_file.suffix.lower() not in CASE_FILE_SUFFIXES:
            raise SuiteError(f"cases.{index}.file: cannot read {case_file.name!r} as cases", doc.path, line,
                             hint="case files are .jsonl or .csv")
        shown = display_path(case_file, root)
        place = RefPlace(root, suite_file.parent, tree, shown)
        drafts.extend(_case_file_drafts(read_case_bytes(case_file, shown), case_file.suffix, place))
    return drafts


# Case files already read, by content: `run` loads the head's suites and the base's, and a case
# file both hold unchanged (10,000 cases, say) was parsed and validated twice. A file's drafts are
# kept only when none read a file:// reference (each side reads its own tree's), and a file that
# fails is never kept: it fails again, with the same error.
MEMO_FILES = 16
_memo: dict[tuple[bytes, str, str], tuple[_Draft, ...]] = {}
_memo_lock = threading.Lock()


def _case_file_drafts(raw: bytes, suffix: str, place: RefPlace) -> tuple[_Draft, ...]:
    """The cases in a case file's bytes, validated, their references read from `place`."""
    key = (hashlib.sha256(raw).digest(), suffix.lower(), place.shown)
    with _memo_lock:
        drafts = _memo.pop(key, None)
    if drafts is None:
        drafts = tuple(_record_case(record, place) for record in case_records(raw, suffix, place.shown))
        if any(d.reads for d in drafts):
            return drafts
    with _memo_lock:
        _memo[key] = drafts  # the most recently used last
        while len(_memo) > MEMO_FILES:
            del _memo[next(iter(_memo))]
    return drafts


def _record_case(record: CaseRecord, place: RefPlace) -> _Draft:
    try:
        spec = CaseSpec.model_validate(record.data)
    except ValidationError as exc:
        raise validation_error(exc, path=place.shown, error=SuiteError, model=CaseSpec, line=record.line) from None
    return _draft(spec, "", lambda part: record.line, place, record.line)


def _validate_assertion(assertion: Assertion, shown: str, line: int | None, key: str) -> None:
    from gpo_action.assertions import validate_assertion  # the checker registry, loaded on first use

    try:
        validate_assertion(assertion)
    except ValueError as exc:
        raise SuiteError(f"{key}: {exc}", shown, line) from None


def _settle(drafts: list[_Draft], defaults: tuple[Assertion, ...]) -> tuple[Case, ...]:
    """Give every case its id (deduplicated in file order) and its full list of assertions."""
    cases: list[Case] = []
    used: set[str] = set()
    for draft in drafts:
        base = draft.id if draft.id is not None else draft.written_hash
        case_id, n = base, 1
        while case_id in used:
            n += 1
            case_id = f"{base}#{n}"
        used.add(case_id)
        asserts = draft.asserts + defaults
        if not asserts:
            if draft.expected is None:
                raise SuiteError(f"case {case_id!r} has no assertions and no expected value", draft.file, draft.line,
                                 hint="give it `expected:`, or `assert:` on the case or the suite")
            asserts = (DEFAULT_ASSERTION,)
        source = f"{draft.file}:{draft.line}" if draft.line else draft.file
        cases.append(Case(case_id, draft.vars, draft.expected, asserts, source, draft.description, draft.threshold))
    return tuple(cases)


def case_hash(vars: Mapping[str, Any]) -> str:
    """The default case id: the first 12 hex digits of sha256 of the canonical JSON of `vars`."""
    return hashlib.sha256(canonical_json(vars).encode("utf-8")).hexdigest()[:12]


def display_path(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form when inside it, else absolute."""
    absolute = _normal(Path(path))
    for base, target in ((_normal(Path(root)), absolute), (Path(root).resolve(), absolute.resolve())):
        try:
            return target.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(absolute)


# --- the configured suites ---------------------------------------------------------------------


def resolve_suites(config: Config) -> list[Suite]:
    """Load every suite named by `config.suites`, in entry order, each glob sorted.

    A file matched by several entries is loaded once, at its first position; each matching
    entry's `model`/`min_score` override the suite's, later entries over earlier ones.
    """
    root = config.root
    chosen: dict[Path, dict[str, Any]] = {}
    for i, entry in enumerate(config.suites):
        origin = Origin(config.display_path, config.line_of(("suites", i)), f"suites.{i}", ConfigError)
        matches = _expand_suite_files(entry.eval, root, config.path, config.tree, origin)
        if not matches:
            raise ConfigError(f"suites.{i}: {entry.eval!r} matched no suite files", config.display_path,
                              config.line_of(("suites", i)),
                              hint="paths and globs are relative to the directory of gpo.yaml; suites are .yaml files")
        for match in matches:
            overrides = chosen.setdefault(match, {})
            if entry.model is not None:
                overrides["model"] = entry.model.to_model_config()
            if entry.min_score is not None:
                overrides["min_score"] = entry.min_score
    suites: list[Suite] = []
    by_name: dict[str, Suite] = {}
    for path, overrides in chosen.items():
        suite = load_suite(path, root, env=config.environ, tree=config.tree)
        if overrides:
            suite = replace(suite, **overrides)
        if suite.name in by_name:
            raise ConfigError(f"two suites are named {suite.name!r}: {by_name[suite.name].path} and {suite.path}",
                              config.display_path, config.line_of(("suites",)),
                              hint="give one of them a different `name:`")
        by_name[suite.name] = suite
        suites.append(suite)
    return suites


def _expand_suite_files(pattern: str, root: Path, config_path: Path | None, tree: Path, origin: Origin) -> list[Path]:
    if glob.has_magic(pattern):
        found = contain_glob(pattern, root, tree, origin)
    else:
        target = root / pattern
        if contain(pattern, root, tree, origin, expect="any").is_dir():
            found = [p for p in target.iterdir() if p.suffix.lower() in SUITE_SUFFIXES]
            for p in found:
                contain(p, root, tree, origin, expect="any", subject=f"{pattern!r} holds {p.name!r}, which")
        else:
            return [_normal(target)] if contain(pattern, root, tree, origin).is_file() else []
    skip = _normal(config_path) if config_path is not None else None
    files = [_normal(p) for p in found if p.suffix.lower() in SUITE_SUFFIXES and p.is_file()]
    return sorted((p for p in files if p != skip), key=lambda p: p.as_posix())


def _normal(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))


# --- dev / holdout -----------------------------------------------------------------------------


def split_cases(suite: Suite) -> tuple[tuple[Case, ...], tuple[Case, ...]]:
    """Split a suite's cases into (dev, holdout), each in the suite's order.

    Cases are ranked by sha256(f"{seed}:{id}") and the first round(dev * n) go to dev (Python's
    round, half to even; at least one each side), so the assignment of an id depends only on the seed and the set of ids, not
    on file order. A suite with fewer than MIN_SPLIT_CASES (4) cases is not split: the result is
    (all cases, ()), and callers should warn that nothing is held out.
    """
    cases = suite.cases
    n = len(cases)
    if n < MIN_SPLIT_CASES:
        return cases, ()
    k = min(max(round(suite.split.dev * n), 1), n - 1)
    seed = suite.split.seed
    ranked = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{cases[i].id}".encode("utf-8")).digest())
    chosen = set(ranked[:k])
    dev = tuple(c for i, c in enumerate(cases) if i in chosen)
    holdout = tuple(c for i, c in enumerate(cases) if i not in chosen)
    return dev, holdout
