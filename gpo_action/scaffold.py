"""`gpo-action init`: a small working project (config, one prompt, one suite, a workflow)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from gpo_action.errors import InputError
from gpo_action.files import write_atomic

# Target path in the user's repository -> file shipped in gpo_action/scaffold/.
SCAFFOLD = {
    "gpo.yaml": "gpo.yaml",
    "prompts/triage.j2": "triage.j2",
    "evals/triage.yaml": "triage.yaml",
    ".github/workflows/gpo.yml": "workflow.yml",
}


def write_scaffold(root: Path, force: bool = False) -> list[Path]:
    """Write every scaffold file under `root`; refuse (writing nothing) if any exists, unless `force`."""
    targets = {root / rel: name for rel, name in SCAFFOLD.items()}
    existing = [str(path.relative_to(root)) for path in targets if path.exists()]
    if existing and not force:
        raise InputError(f"would overwrite {', '.join(existing)}", hint="use --force to replace them")
    package = resources.files("gpo_action") / "scaffold"
    for path, name in targets.items():
        write_atomic(path, (package / name).read_text(encoding="utf-8"))
    return list(targets)
