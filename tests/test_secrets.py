"""One secret scrubber at every output, and no workflow command forged by what a pull request names.

Canary secrets sit in the environment under the names a runner gives them (OPENAI_API_KEY, the
token input and GITHUB_TOKEN, a `*_SECRET*` variable, a variable only an `api_key_env` names); the
model echoes them and a provider's 401 quotes the key. None may appear in any file, request to
the GitHub stand-in or stream, but in our own `::add-mask::` lines."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from gpo_action import secrets
from gpo_action.action_inputs import OUTPUTS
from gpo_action.github.commands import set_outputs
from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig
from gpo_action.secrets import Scrubber
from gpo_action.streams import GuardedStream
from tests.support.github_server import GitHubServer
from tests.test_action import REPO, World, bot_comments, git, github, reply  # noqa: F401  (github: a fixture)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "ghs_canaryGitHubToken0123456789abcdefXYZ"
CANARIES = {
    "OPENAI_API_KEY": "sk-canary-openai-7f3a9c2e5b1d4e8f",
    "DEPLOY_SECRET_VALUE": "canary-deploy-secret-55aa77bb",
    "GPO_MODEL_CREDENTIAL": 'canary/model+cred="9q8w"',   # only an api_key_env names it; needs encoding
}


def leaks(text: str, secrets) -> list[str]:
    """The secrets found in `text`, as they are or in an encoding a leak takes."""
    found = []
    for secret in secrets:
        forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1],
                 base64.b64encode(f"x-access-token:{secret}".encode()).decode().rstrip("=")}
        if any(form in text for form in forms):
            found.append(secret)
    return found


def tree_text(root: Path) -> dict[str, str]:
    """Every file under `root` (sqlite databases and their WAL included), as text."""
    return {str(p.relative_to(root)): p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()}


def lines_of(text: str) -> list[str]:
    """The log lines the runner sees: split at \\n and at \\r."""
    return re.split(r"\r\n|\r|\n", text)


# ---- the scrubber ---------------------------------------------------------------------------------
def test_every_credential_looking_variable_is_a_secret_in_every_encoding_and_short_values_are_not():
    env = {"OPENAI_API_KEY": "sk-abc/def+ghi=jkl", "INPUT_GITHUB-TOKEN": TOKEN, "DB_PASSWORD": 'p"w\\d-0123',
           "MY_SECRET_THING": "thing-0123456789", "AWS_SECRET_ACCESS_KEY": "aws-secret-0123456789",
           "AWS_SESSION_TOKEN": "aws-session-0123456789", "WATSONX_APIKEY": "watson-0123456789",
           "GH_PAT": "github_pat_0123456789", "GOOGLE_APPLICATION_CREDENTIALS_JSON": '{"private_key": "pk-0123456789"}',
           "FEATURE_TOKEN": "true", "HOME": "/home/runner/work", "GITHUB_REPOSITORY": "octo/hello-world",
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    scrubber = Scrubber.from_env(env)
    secret = [v for k, v in env.items() if k not in ("FEATURE_TOKEN", "HOME", "GITHUB_REPOSITORY", "PATH")]
    assert scrubber.values == set(secret)
    text = " | ".join([
        *secret,
        quote(env["OPENAI_API_KEY"], safe=""),                                  # in a URL
        json.dumps({"k": env["DB_PASSWORD"]}),                                  # JSON-escaped
        "AUTHORIZATION: basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode(),  # checkout's
        "true", "/home/runner/work", "octo/hello-world",
    ])
    out = scrubber.scrub(text)
    assert leaks(out, secret) == [] and base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() not in out
    assert out.count("***") >= len(secret) + 3
    assert "true" in out and "/home/runner/work" in out and "octo/hello-world" in out  # not secrets
    assert Scrubber.from_env({"PATH": env["PATH"], "XDG_PATH": "/usr/share/xdg-0123"}).values == set()


# ---- (a) a provider's 401 quoting a key litellm found in the environment by itself ------------------
def test_a_401_quoting_the_environment_key_and_echoed_secrets_reach_no_report_cache_or_stream(tmp_path,
                                                                                            openai_server):
    url = openai_server.url
    (tmp_path / "gpo.yaml").write_text(
        "models:\n"
        f'  task: {{model: openai/scripted, api_base: "{url}/v1"}}\n'              # the README's setup: no api_key_env
        f'  judge: {{model: openai/judge, api_base: "{url}/v1", api_key_env: GPO_MODEL_CREDENTIAL}}\n'
        "suites: [evals/*.yaml]\nconcurrency: 2\ntimeout: 5\nretries: {max: 1, base: 0.01, max_wait: 0.05}\n"
        "max_error_rate: 1.0\ncache: {path: .gpo/cache.sqlite}\n")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.j2").write_text("Classify: {{ ticket }}\n")
    (tmp_path / "evals").mkdir()
    cases = "".join(f"  - vars: {{ticket: 'ticket {i}'}}\n" for i in range(6))
    (tmp_path / "evals" / "triage.yaml").write_text(
        "prompt: prompts/triage.j2\nassert:\n  - {type: icontains, value: billing}\ncases:\n" + cases)
    echoed = " ".join([*CANARIES.values(), TOKEN])
    openai_server.set_reply(lambda body, index: f"billing (the model echoes {echoed})")
    openai_server.enqueue_faults("401", "401")                       # quotes the bearer token it was sent
    env = {**os.environ, **CANARIES, "GITHUB_TOKEN": TOKEN, "GPO_WORKERS": "0"}
    env.pop("GITHUB_ACTIONS", None)
    done = subprocess.run([sys.executable, "-m", "gpo_action", "eval", "--json", "out.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1, 3), done.stderr
    report = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert "Incorrect API key provided: ***" in report                # litellm sent the env key; it was quoted
    assert "the model echoes ***" in report
    places = {"stdout": done.stdout, "stderr": done.stderr, "out.json": report, **tree_text(tmp_path / ".gpo")}
    assert any(name.startswith("cache.sqlite") for name in places)
    secrets = [*CANARIES.values(), TOKEN]
    assert {where: leaks(text, secrets) for where, text in places.items() if leaks(text, secrets)} == {}


def test_a_provider_error_is_scrubbed_at_its_source_of_a_key_litellm_read_from_the_environment(openai_server,
                                                                                            monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARIES["OPENAI_API_KEY"])
    secrets.reset()                                                    # a run starts
    openai_server.enqueue_faults("401")
    model = ModelConfig("openai/scripted", {"api_base": openai_server.url + "/v1"})   # no api_key param
    with LLMClient(ClientSettings(max_retries=0)) as client:
        [response] = client.complete([LLMRequest(model, ({"role": "user", "content": "hello"},))])
    assert response.error_type == "AuthError" and "Incorrect API key provided: ***" in response.error


# ---- (b) `gpo-action action` end to end -----------------------------------------------------------
def leaky(body: dict, index: int) -> str:
    """test_action's model, echoing every canary; the optimizer's prompt carries one too."""
    text = reply(body, index)
    echo = " ".join([*CANARIES.values(), TOKEN])
    if text.startswith("<START>"):
        return text.replace("\n<END>", f"\nReference {CANARIES['OPENAI_API_KEY']}.\n<END>")
    return f"{text} (echo: {echo})"


@pytest.mark.parametrize("deliver", ["comment,suggestion", "commit,comment"])
def test_the_action_end_to_end_leaks_no_canary_into_files_requests_history_or_streams(deliver, tmp_path,
                                                                                     openai_server, monkeypatch):
    openai_server.set_reply(leaky)
    with GitHubServer(repository=REPO, token=TOKEN) as github:
        world = World(tmp_path, openai_server.url, github, monkeypatch, key_env="GPO_MODEL_CREDENTIAL")
        for name, value in CANARIES.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        result, _, _ = world.run(world.head, deliver=deliver, key=CANARIES["GPO_MODEL_CREDENTIAL"])
        assert result.exit_code == 1, result.output
        secrets = [*CANARIES.values(), TOKEN]

        masked = {line.removeprefix("::add-mask::") for line in result.stdout.splitlines()
                  if line.startswith("::add-mask::")}
        assert set(secrets) <= masked
        for where, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
            for line in lines_of(stream):
                assert line.startswith("::add-mask::") or not leaks(line, secrets), f"{where}: {line}"

        comment = bot_comments(github)[0]["body"]
        assert "(echo: ***" in comment                                   # the echoes were there, scrubbed
        requests = [{"path": r.path, "query": r.query, "body": r.body,
                     "headers": {k: v for k, v in r.headers.items() if k.lower() != "authorization"}}
                    for r in github.requests]
        assert all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in github.requests)
        # universal newlines off: a value's \r must stay as written
        read = lambda path: path.read_bytes().decode("utf-8", "replace")  # noqa: E731
        places = {"GitHub requests": json.dumps(requests, ensure_ascii=False),
                  "GITHUB_OUTPUT": read(tmp_path / "output"), "job summary": read(tmp_path / "summary.md"),
                  "remote history": git(world.remote, "log", "--all", "-p", "--format=%an %ae%n%B"),
                  **{f".gpo/{k}": v for k, v in tree_text(world.work / ".gpo").items()}}
        assert ".gpo/report.json" in places and any("trajectory.jsonl" in k for k in places)
        assert {where: leaks(text, secrets) for where, text in places.items() if leaks(text, secrets)} == {}


# ---- point 8: no forged workflow command ----------------------------------------------------------
def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT read as the runner reads it (`name=value`, or `name<<DELIMITER` ... `DELIMITER`),
    but stricter: a `name=value` line ends at a `\\r` as well (a parser that splits there must not be
    fooled either)."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, i)
            outputs[name] = "\n".join(lines[i:end])
            i = end + 1
            continue
        for part in line.split("\r"):
            name, sep, value = part.partition("=")
            assert sep, f"not an output line: {part!r}"
            outputs[name] = value
    return outputs


def forged(stream: str) -> list[str]:
    """Lines of `stream` the runner would take as a command, other than our masks and annotations."""
    ours = ("::add-mask::", "::error file=prompts/triage.j2,line=1,title=gpo-action::")
    return [line for line in lines_of(stream)
            if (line.lstrip().startswith("::") and not line.startswith(ours)) or "##[" in line]


def hostile_world(tmp_path, openai_server, monkeypatch, github, suite_name: str, suite: str) -> tuple[World, str]:
    openai_server.set_reply(reply)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    world = World(tmp_path, openai_server.url, github, monkeypatch)
    (world.work / "evals" / f"{suite_name}.yaml").write_text(suite)
    git(world.work, "add", "-A")
    git(world.work, "commit", "-qm", "a hostile suite")
    return world, git(world.work, "rev-parse", "HEAD")


def test_names_and_case_ids_with_line_breaks_forge_no_command_and_no_output(tmp_path, openai_server, monkeypatch,
                                                                           github):
    name = "cr\r::warning::forged-by-name\r##[error]legacy"
    suite = ("prompt: prompts/triage.j2\nassert:\n  - {type: icontains, value: billing}\ncases:\n"
             "  - id: \"c1\\n::warning::forged-by-id\\r::error::forged\"\n"
             "    vars: {ticket: 'ticket number 0 about billing'}\n")
    world, head = hostile_world(tmp_path, openai_server, monkeypatch, github, name, suite)
    result, _, _ = world.run(head, mode="check")
    assert result.exit_code == 1, result.output                       # triage still regressed
    assert forged(result.stdout) == [] and forged(result.stderr) == []
    outputs = parse_outputs((tmp_path / "output").read_bytes().decode("utf-8"))
    assert set(outputs) == set(OUTPUTS)                                 # exactly ours, none forged
    verdicts = outputs["verdicts"].split(",")
    assert len(verdicts) == 2 and verdicts[0].startswith(f"{name}=") and "triage=regressed" in verdicts


def test_an_error_naming_a_hostile_file_prints_it_without_starting_a_command(tmp_path, openai_server, monkeypatch,
                                                                            github):
    name = "evil\n::warning::forged\r  ::error::forged-after-blanks\n##[warning]legacy"
    suite = "prompt: prompts/triage.j2\ncases:\n  - vars: {ticket: x}\n    assert: [{type: nosuchtype}]\n"
    world, head = hostile_world(tmp_path, openai_server, monkeypatch, github, name, suite)
    result, _, _ = world.run(head, mode="check")
    assert result.exit_code == 2 and "unknown assertion type" in result.stderr
    assert "::warning::forged" in result.stderr                        # the name is shown...
    assert forged(result.stdout) == [] and forged(result.stderr) == []  # ...as text, not as a command


def test_outside_actions_the_cli_prints_names_unchanged(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gpo_action.cli import main

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpo.yaml").write_text("suites: ['evals/*.yaml']\n")
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "a\n::warning::x.yaml").write_text("prompt: [\n")
    result = CliRunner().invoke(main, ["eval"])
    assert result.exit_code == 2 and "a\n::warning::x.yaml" in result.stderr and "\u200b" not in result.stderr


# ---- the guarded stream, piece by piece ------------------------------------------------------------
class Sink:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass


@pytest.mark.parametrize("writes", [
    ["a\n::warning::x\n"],
    ["a\n", "::warning::x\n"],
    ["a\n  :", ":warning::x\n"],                 # the command start split across writes
    ["\t", ":", ":warning::x\n"],
    ["a\r::error::x\n"],                         # \r ends a line for the runner
    ["text ##[error]x\n"],                       # the legacy form, anywhere in a line
    ["text #", "#[error]x\n"],
    ["text ##", "[error]x\n"],
])
def test_free_text_written_in_any_pieces_starts_no_command(writes):
    sink = Sink()
    stream = GuardedStream(sink, actions=True)
    for piece in writes:
        stream.write(piece)
    stream.close()
    assert forged(sink.text) == []
    assert sink.text.replace("\u200b", "") == "".join(writes)           # nothing else changed


def test_an_ascii_stream_gets_a_visible_mark_instead_of_an_encoding_error():
    raw = io.BytesIO()
    inner = io.TextIOWrapper(raw, encoding="ascii", errors="strict", write_through=True)
    GuardedStream(inner, actions=True).write("a\n::warning::x ##[error]y\n")
    assert raw.getvalue() == b"a\n\\::warning::x #\\#[error]y\n"


def test_our_own_commands_start_their_own_line_and_pass_unchanged():
    sink = Sink()
    stream = GuardedStream(sink, actions=True)
    stream.write("a partial line")
    stream.write_command("::add-mask::value\n")
    stream.write("::warning::not ours\n")
    assert lines_of(sink.text)[:3] == ["a partial line", "::add-mask::value", "\u200b::warning::not ours"]


def test_the_guarded_stream_and_the_outputs_are_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_SECRET_VALUE", CANARIES["DEPLOY_SECRET_VALUE"])
    secrets.reset()
    sink = Sink()
    GuardedStream(sink).write(f"a traceback quoting {CANARIES['DEPLOY_SECRET_VALUE']}\n")
    assert sink.text == "a traceback quoting ***\n"
    path = tmp_path / "output"
    path.write_text("")
    set_outputs({"note": f"x {CANARIES['DEPLOY_SECRET_VALUE']}"}, {"GITHUB_OUTPUT": str(path)})
    assert path.read_text() == "note=x ***\n"


def test_outputs_with_a_carriage_return_use_the_delimited_form(tmp_path):
    path = tmp_path / "output"
    path.write_text("")
    set_outputs({"verdicts": "a\r::warning::x=1", "plain": "ok"}, {"GITHUB_OUTPUT": str(path)})
    assert parse_outputs(path.read_bytes().decode()) == {"verdicts": "a\r::warning::x=1", "plain": "ok"}
    with pytest.raises(ValueError):
        set_outputs({"bad\nname": "x"}, {"GITHUB_OUTPUT": str(path)})
