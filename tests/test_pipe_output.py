"""Output that is no terminal (a pipe: every CI log) is not cut to 80 columns; a terminal's is as
wide as the terminal. Real `python -m gpo_action` processes against the scripted server."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.test_eval_cli import KEY, scripted_answers, write_project

REPO = Path(__file__).resolve().parent.parent
LONG_NAME = "ticket-routing-for-the-enterprise-support-queue-with-escalations-and-refunds"  # 76 characters
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def project(tmp_path, openai_server):
    write_project(tmp_path, openai_server.url)
    suite = tmp_path / "evals" / "triage.yaml"
    suite.write_text(f"name: {LONG_NAME}\n" + suite.read_text(encoding="utf-8"), encoding="utf-8")
    scripted_answers(openai_server)
    return tmp_path


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "COLUMNS", "LINES", "NO_COLOR")}
    return {**env, "GPO_TEST_KEY": KEY, "PYTHONPATH": str(REPO), **extra}


@pytest.mark.parametrize("extra", [{}, {"FORCE_COLOR": "1"}], ids=["plain", "FORCE_COLOR"])
def test_piped_eval_prints_the_whole_suite_name_on_one_line(project, extra):
    proc = subprocess.run([sys.executable, "-m", "gpo_action", "eval"], cwd=project, env=child_env(**extra),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = ANSI.sub("", proc.stdout)
    row = next(line for line in out.splitlines() if LONG_NAME[:10] in line)
    assert LONG_NAME in row                                          # unbroken, on the row with its figures
    assert "100.0" in row and "…" not in out
    widths = [len(line) for line in out.splitlines()]
    assert 80 < max(widths) < 200      # wider than rich's default for a pipe, and no line padded to the pipe's width


def test_in_a_terminal_the_table_keeps_to_the_terminal_width(project):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # an 80-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "gpo_action", "eval"], cwd=project, env=child_env(),
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = ANSI.sub("", b"".join(chunks).decode("utf-8")).replace("\r\n", "\n").splitlines()
    table = [line for line in lines if line.strip()]
    assert any(LONG_NAME[:8] in line for line in table)
    assert max(len(line) for line in table) <= 80                    # the terminal's width, as before
