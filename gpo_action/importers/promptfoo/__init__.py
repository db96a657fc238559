"""`gpo-action import promptfoo`: a promptfooconfig.yaml (and the files it names) -> gpo.yaml,
prompts/ and evals/, one suite per prompt x provider, and IMPORT-NOTES.md listing, item by item with
file and line, what was not converted. Exit: 0 all converted, 1 converted with omissions, 2 the input
cannot be read (an `InputError`, raised). Every write is atomic and inside `out`."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpo_action.containment import Origin, contain
from gpo_action.errors import InputError
from gpo_action.importers.promptfoo.prompts import Prompt, read_prompts
from gpo_action.importers.promptfoo.providers import Model, to_model
from gpo_action.importers.promptfoo.reading import Note, Project
from gpo_action.importers.promptfoo.tests import Case, convert_assert, load_vars, read_tests

DEFAULT_CONFIG = "promptfooconfig.yaml"
NOTES_FILE = "IMPORT-NOTES.md"
_TOP_KEYS = {"description", "prompts", "providers", "tests", "defaultTest"}


@dataclass(frozen=True)
class ImportResult:
    written: tuple[Path, ...]
    notes: tuple[Note, ...]
    changes: tuple[str, ...]       # Nunjucks constructs rewritten for Jinja2
    suites: int
    cases: int

    @property
    def exit_code(self) -> int:
        return 1 if self.notes else 0


def import_promptfoo(config: str | Path | None, out: str | Path, *, force: bool = False) -> ImportResult:
    """Import `config` (default ./promptfooconfig.yaml; a directory: the one in it) into `out`.
    Input that cannot be read raises InputError, never anything else (malformed values included)."""
    try:
        return _import(config, out, force)
    except InputError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OSError, RecursionError) as exc:
        raise InputError(f"cannot import: {type(exc).__name__}: {exc}", str(config or DEFAULT_CONFIG)) from None


def _import(config: str | Path | None, out: str | Path, force: bool) -> ImportResult:
    path = Path(config or DEFAULT_CONFIG)
    if path.is_dir():
        path = path / DEFAULT_CONFIG
    if not path.is_file():
        raise InputError("promptfoo config not found", str(path), hint="name the promptfooconfig.yaml to import")
    project = Project.at(path.absolute())
    doc = project.yaml(project.config)
    if not isinstance(doc.data, dict):
        raise InputError("expected a mapping (prompts, providers, tests)", doc.path, doc.line_of(()))
    data = doc.data
    for key in sorted(set(data) - _TOP_KEYS):
        project.note(doc.path, doc.line_of((key,)), f"`{key}`" + (" (a red-team config)" if key == "redteam" else "")
                     + ": not converted")
    prompts = read_prompts(project, doc)
    models = _models(project, doc)
    defaults, judge, threshold, default_vars = _default_test(project, doc)
    cases = read_tests(project, data.get("tests") or [], doc.path, doc.line_of) if "tests" in data else []
    for case in cases:
        case.vars = {**default_vars, **case.vars}
    files = _project_files(project, prompts, models, defaults, judge, threshold, cases, data.get("description"))
    files[NOTES_FILE] = notes_markdown(project.notes, project.changes, project.shown(project.config))
    written = write_files(Path(out), files, force=force)
    suites = sum(1 for name in files if name.startswith("evals/"))
    return ImportResult(tuple(written), tuple(project.notes), tuple(project.changes), suites, len(cases))


def _models(project: Project, doc) -> list[Model]:
    raw = doc.data.get("providers", doc.data.get("targets"))
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    models = []
    for i, item in enumerate(items):
        model = to_model(project, item, doc.path, doc.line_of(("providers", i) if isinstance(raw, list) else ("providers",)))
        if model is not None:
            models.append(model)
    return models


def _default_test(project: Project, doc):
    raw = doc.data.get("defaultTest") or {}
    shown = doc.path
    if isinstance(raw, str) or not isinstance(raw, dict):
        project.note(shown, doc.line_of(("defaultTest",)), "defaultTest from a file: not converted")
        return [], None, None, {}
    line = doc.line_of(("defaultTest",))
    defaults = [a for a in (convert_assert(project, item, shown, doc.line_of(("defaultTest", "assert", i)))
                            for i, item in enumerate(raw.get("assert") or [])) if a]
    judge = None
    for key, value in (raw.get("options") or {}).items():
        if key == "provider":
            model = to_model(project, value, shown, doc.line_of(("defaultTest", "options", "provider")))
            judge = model.spec if model else None
        else:
            project.note(shown, doc.line_of(("defaultTest", "options", key)), f"defaultTest option `{key}`: not converted")
    for key in sorted(set(raw) - {"assert", "options", "vars", "threshold", "metadata", "description"}):
        project.note(shown, doc.line_of(("defaultTest", key)), f"defaultTest `{key}`: not converted")
    vars = load_vars(project, raw.get("vars"), shown, line) or {}
    threshold = raw.get("threshold") if isinstance(raw.get("threshold"), (int, float)) else None
    return defaults, judge, threshold, vars


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.").lower() or "x"


def _selected(filters: list[str], *names: str) -> bool:
    return not filters or any(fnmatch.fnmatchcase(name, pattern) for pattern in filters for name in names)


def _project_files(project, prompts: list[Prompt], models: list[Model], defaults, judge, threshold,
                   cases: list[Case], description) -> dict[str, str]:
    files: dict[str, str] = {}
    config: dict[str, Any] = {"models": {}}
    if models:
        config["models"]["task"] = models[0].spec
    if judge:
        config["models"]["judge"] = judge
    if not config["models"]:
        del config["models"]
    suites = []
    pairs = [(p, m) for p in prompts for m in (models or [None])]
    for prompt, model in pairs:
        suffix, content = prompt.file_text()
        files[f"prompts/{prompt.stem}{suffix}"] = content
        name = prompt.stem if len(models) <= 1 else f"{prompt.stem}-{_slug(model.label)}"
        chosen = [c for c in cases if _selected(c.prompts, prompt.label, prompt.stem)
                  and (model is None or _selected(c.providers, model.label, model.spec["model"]))]
        entries = []
        for case in chosen:
            if not case.asserts and not defaults:
                project.note(project.shown(project.config), None, f"test {case.description or case.vars!r} has no "
                             "assertions (promptfoo passes it unchecked): not converted")
                continue
            entry: dict[str, Any] = {}
            if case.description:
                entry["description"] = case.description
            entry["vars"] = case.vars
            if case.threshold is not None:
                entry["threshold"] = case.threshold
            if case.asserts:
                entry["assert"] = case.asserts
            entries.append(entry)
        if not entries:
            project.note(project.shown(project.config), None, f"suite {name}: no test could be converted: no suite written")
            continue
        suite: dict[str, Any] = {"name": name}
        if description:
            suite["description"] = str(description)
        suite["prompt"] = f"prompts/{prompt.stem}{suffix}"
        if len(models) > 1:
            suite["model"] = model.spec
        if threshold is not None:
            suite["threshold"] = threshold
        if defaults:
            suite["assert"] = defaults
        suite["cases"] = entries
        files[f"evals/{name}.yaml"] = _dump(suite)
        suites.append(f"evals/{name}.yaml")
    if not suites:
        raise InputError("nothing could be converted: no prompt with a test", project.shown(project.config),
                         hint="; ".join(str(n) for n in project.notes[:5]) or None)
    config["suites"] = suites
    files["gpo.yaml"] = _dump(config)
    return files


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)


def notes_markdown(notes, changes, source: str) -> str:
    lines = [f"# Imported from promptfoo ({source})", ""]
    lines += ["## Not converted", ""] + ([f"- {n}" for n in notes] or ["Nothing: every item was converted."])
    lines += ["", "## Nunjucks rewritten for Jinja2", ""] + ([f"- {c}" for c in changes] or ["None."])
    return "\n".join(lines) + "\n"


def write_files(out: Path, files: dict[str, str], *, force: bool) -> list[Path]:
    from gpo_action.files import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    existing = [name for name in files if (out / name).exists()]
    if existing and not force:
        raise InputError(f"{out}: would overwrite {', '.join(sorted(existing)[:5])}", hint="pass --force to replace them")
    origin = Origin(str(out), None, "", InputError)
    written = []
    for name, text in files.items():
        target = contain(name, out, out, origin)  # never outside --out, never through a symlink out of it
        write_atomic(target, text)
        written.append(out / name)
    return written
