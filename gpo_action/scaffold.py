"""`gpo-action init`: a small working project (config, one prompt, one suite, the workflows: one on
`pull_request`, one answering `/gpo` commands in its comments)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from gpo_action.errors import InputError
from gpo_action.files import write_atomic
from gpo_action.shards import MAX_SHARDS

# Target path in the user's repository -> file shipped in gpo_action/scaffold/.
SCAFFOLD = {
    "gpo.yaml": "gpo.yaml",
    "prompts/triage.j2": "triage.j2",
    "evals/triage.yaml": "triage.yaml",
    ".github/workflows/gpo.yml": "workflow.yml",
    ".github/workflows/gpo-commands.yml": "workflow_commands.yml",   # `/gpo` commands in pull request comments
}
GITIGNORE = ".gitignore"
IGNORED = ".gpo/"                        # the response cache and the reports live there
# Lines of a .gitignore that already ignore .gpo/ at the top (a narrower rule is left alone: we add ours).
IGNORES_GPO = {".gpo", ".gpo/", "/.gpo", "/.gpo/", ".gpo/*", "/.gpo/*", ".gpo/**", "/.gpo/**"}


MATRIX_WORKFLOW = "workflow_matrix.yml"  # `init --matrix N`: a shard job per K, then one merge job


def write_scaffold(root: Path, force: bool = False, matrix: int | None = None) -> list[Path]:
    """Write every scaffold file under `root`; refuse (writing nothing) if any exists, unless `force`.
    `matrix`: the workflow runs the evaluation as that many shards and one merge job."""
    if matrix is not None and not 2 <= matrix <= MAX_SHARDS:
        raise InputError(f"--matrix must be 2 to {MAX_SHARDS} shards, got {matrix}")
    targets = {root / rel: name for rel, name in SCAFFOLD.items()}
    existing = [str(path.relative_to(root)) for path in targets if path.exists()]
    if existing and not force:
        raise InputError(f"would overwrite {', '.join(existing)}", hint="use --force to replace them")
    package = resources.files("gpo_action") / "scaffold"
    for path, name in targets.items():
        if matrix is not None and name == "workflow.yml":
            text = (package / MATRIX_WORKFLOW).read_text(encoding="utf-8")
            text = text.replace("SHARD_LIST", ", ".join(str(k) for k in range(1, matrix + 1))).replace("SHARDS", str(matrix))
            write_atomic(path, text)
            continue
        write_atomic(path, (package / name).read_text(encoding="utf-8"))
    written = list(targets)
    if ignore_gpo(root / GITIGNORE):
        written.append(root / GITIGNORE)
    return written


def ignore_gpo(path: Path) -> bool:
    """Add `.gpo/` to the .gitignore at `path` (created if missing, else appended to, its content
    kept); False when a line there already ignores it. A symlinked .gitignore is written through."""
    real = Path(os.path.realpath(path))
    text = ""
    if real.exists():
        with open(real, encoding="utf-8", newline="") as handle:   # newline="": CRLF stays CRLF
            text = handle.read()
    if any(line.strip() in IGNORES_GPO for line in text.splitlines()):
        return False
    eol = "\r\n" if "\r\n" in text else "\n"
    separator = eol if text and not text.endswith("\n") else ""
    write_atomic(real, f"{text}{separator}{IGNORED}{eol}")
    return True
