"""The secrets of a run, and the one scrubber every output passes through.

    from gpo_action import secrets
    secrets.scrub(text)            # every secret (and each encoding of it) replaced by ***

A secret is the value of a credential-looking environment variable (`credential_names`: names
ending in `_API_KEY`, `_APIKEY`, `_TOKEN`, `_PASSWORD`, `_KEY`, `_PAT` or containing `SECRET` or
`CREDENTIAL`, with `-`
read as `_`, so the Action's `INPUT_GITHUB-TOKEN` counts; `GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY`
and `AWS_SESSION_TOKEN` among them), of each variable an `api_key_env` names (gpo.yaml or a
suite, recorded as it is read), and any value handed to `remember` (a token or key passed in
code). The set never depends on how litellm found a key. Values shorter than `MIN_LENGTH`
("true", "1") are not secrets: scrubbing them would wreck every output.

Each secret is matched in the encodings a leak takes: as is, URL-quoted, JSON-escaped, and
base64 (alone, and as `x-access-token:SECRET`, the Basic credential actions/checkout keeps in
`.git/config`), longest first. A text costs one substring search per form (4 to 8 us per KB
with 5 secrets, 17 forms, on 2 loaded cores; one regex alternation of them took 8 to 10 times as
long: bench/scrubber.py).

The process keeps one `Scrubber`, rebuilt from the environment by `reset` at the start of a run
(the CLI's `main`, `pr_pipeline.execute`); `remember` adds to it. What calls `scrub`: `files` (every
report, run directory, trajectory and the job summary), `github.client` (request bodies and
errors), `github.commands` (annotations, outputs), `llm.cache` (stored responses),
`llm.providers.redact` (every provider error) and `streams` (stdout and stderr).
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
from typing import Any, Iterable, Mapping
from urllib.parse import quote, quote_plus

from gpo_action.llm.types import SECRET_PARAMS

MIN_LENGTH = 8                      # an environment value shorter than this is not a secret
MIN_EXPLICIT = 4                    # a value named a secret in code (a token, an api_key param)
MASK = "***"

_NAME = re.compile(r"(?:^|_)(?:API_?KEY|TOKEN|PASSWORD|PASSWD|KEY|PAT)$|SECRET|CREDENTIAL")


def is_credential_name(name: str) -> bool:
    """True for an environment variable whose value is taken as a secret."""
    return bool(_NAME.search(name.upper().replace("-", "_")))


def credential_names(env: Mapping[str, str]) -> list[str]:
    return [name for name in env if is_credential_name(name)]


def encodings(value: str) -> set[str]:
    """`value` and the forms it takes when a leak encodes it."""
    data = value.encode("utf-8")
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""),
             json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
             base64.b64encode(data).decode().rstrip("="),
             base64.b64encode(b"x-access-token:" + data).decode().rstrip("=")}
    return {form for form in forms if form}


class Scrubber:
    """Replaces each of `values` (in every form of `encodings`) with ***."""

    def __init__(self, values: Iterable[str] = ()):
        self.values = frozenset(v for v in values if isinstance(v, str) and v)
        forms = set().union(*(encodings(v) for v in self.values)) if self.values else set()
        self.forms = tuple(sorted(forms, key=lambda f: (-len(f), f)))  # longest first: no half-replaced form

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Scrubber":
        return cls(env[name] for name in credential_names(env) if len(env[name] or "") >= MIN_LENGTH)

    def including(self, values: Iterable[str]) -> "Scrubber":
        """This scrubber, or a new one that also knows `values` (when any is new)."""
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_EXPLICIT} - self.values
        return Scrubber(self.values | new) if new else self

    def scrub(self, text: str) -> str:
        for form in self.forms:  # a form inside a longer one goes with it: the longer comes first
            if form in text:
                text = text.replace(form, MASK)
        return text


_lock = threading.Lock()
_current: Scrubber | None = None


def current() -> Scrubber:
    """The process's scrubber (built from os.environ on first use)."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Scrubber.from_env(os.environ)
    return _current


def reset(env: Mapping[str, str] | None = None) -> Scrubber:
    """Start a run: rebuild the scrubber from os.environ and `env` (values remembered before are dropped)."""
    global _current
    merged = dict(os.environ)
    if env is not None and env is not os.environ:
        merged.update(env)
    with _lock:
        _current = Scrubber.from_env(merged)
    return _current


def remember(*values: str | None) -> None:
    """Treat `values` as secrets from now on (a token or key that may not be in the environment)."""
    global _current
    scrubber = current()
    if all(v is None or v in scrubber.values or len(v) < MIN_EXPLICIT for v in values):
        return  # the common case: known already
    with _lock:
        _current = (_current or scrubber).including(v for v in values if v)


def remember_params(params: Mapping[str, Any]) -> None:
    """The secret params of a model call (`api_key`, `token`, ...), as secrets."""
    values = [params.get(k) for k in SECRET_PARAMS]
    if any(isinstance(v, str) for v in values):
        remember(*(v for v in values if isinstance(v, str)))


def scrub(text: str) -> str:
    """`text` with every secret of the run replaced by ***."""
    return current().scrub(text)


__all__ = ["Scrubber", "MASK", "credential_names", "current", "encodings", "is_credential_name", "remember",
           "remember_params", "reset", "scrub"]
