"""The policy that judges a change, and which side's gpo.yaml it comes from.

A pull request is hostile input (style rule 11): in GitHub Actions the base revision's gpo.yaml
decides how the head is judged, so a pull request cannot loosen its own gate, raise its own
budget, move the cache or send a key somewhere new. Locally the head's configuration is the
user's own and applies; every difference is still listed, as a warning.

    policy = resolve_policy(head_config, load_base_config(root, base_sha, head_config.path),
                            enforce=True, why="GitHub Actions")
    policy.config                       # the configuration to run with
    policy.changes                      # what the head changes, and whether it was applied

What the base decides (`enforce`):
- `gate` (max_drop, alpha, min_score, allow_removed, allow_skipped) and `max_error_rate`: when the check fails;
- `optimize` (when, preset, steps, candidates, budget, deliver): what a fix may cost and where it goes;
- `cache` (path, enabled): where responses are written;
- in every model (`models.*`, a `suites:` entry's `model`, a suite file's `model`) the fields that
  carry an endpoint or a credential (`guarded_param`): `api_base`, `api_key_env`, and any litellm
  param whose name speaks of a URL, host, key, token, secret, account, header, proxy, provider,
  fallback, callback, price or mock response, or starts with a cloud's prefix (aws_, vertex_,
  azure_, ...), or whose value holds a URL; and the provider (the model name's prefix before the
  first "/"; litellm's guess for a bare name). A head model that changes only its name or other
  params (a model upgrade on the same endpoint) is evaluated as the head says; one that changes a
  guarded field runs with the base's guarded fields (the head's model name on the base's
  endpoint), and one that changes provider (or drops the model) runs as the base's model;
- the floor (`min_score`) of a suite the base has, from a `suites:` entry or the suite file.
  A new suite keeps its own floor (it can only fail itself); its own model must use the endpoint
  of the task model the policy gives. A suite's `threshold` is not a gate: it decides which cases
  count as passed (the flipped-case lists), never a score or a verdict.

What the head decides: its prompts, suites, cases and assertions (what is being judged), which
suites run, concurrency, timeouts and retries.

When the base has no gpo.yaml (the pull request that adds gpo-action), the defaults of `Config`
are the policy, and a head model is used only when it carries no guarded field beyond the
provider's own key variable (e.g. `api_key_env: OPENAI_API_KEY` for openai/...); otherwise the
default model runs. Locally, a base without gpo.yaml gives no warnings.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from gpo_action.config import CONFIG_FILE, ROLES, Config, ModelSpec, load_config
from gpo_action.errors import ConfigError
from gpo_action.llm.types import SECRET_PARAMS, ModelConfig

SOURCES = ("base", "head")
MAX_LISTED = 20                 # policy lines shown in a comment; the JSON report has them all

# Name parts (split at "_", "-" and camelCase) of litellm params that carry an endpoint, a
# credential, or what replaces or prices the call.
_GUARDED_WORDS = frozenset({
    "key", "keys", "apikey", "token", "secret", "secrets", "password", "passwd", "pwd", "credential",
    "credentials", "auth", "authorization", "bearer", "cookie", "cookies", "header", "headers", "cert",
    "certificate", "ssl", "tls", "verify", "url", "uri", "urls", "base", "endpoint", "endpoints", "host",
    "hostname", "port", "proxy", "proxies", "organization", "org", "project", "region", "location",
    "deployment", "account", "tenant", "client", "provider", "fallback", "fallbacks", "router", "callback",
    "callbacks", "logger", "mock", "cost", "costs", "price", "pricing",
})
_CLOUD_PREFIXES = frozenset({"aws", "azure", "vertex", "google", "gcp", "watsonx", "bedrock", "sagemaker", "oci",
                             "databricks", "snowflake", "cloudflare", "ibm", "huggingface", "hf"})
_SPEC_GUARDED = ("api_base", "api_key_env")


# --- the record --------------------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyChange:
    """One setting the head sets differently from the base. `setting` starts with "the "."""

    setting: str                 # "the gate", "the endpoint or key of models.task", ...
    detail: str                  # "max_drop 0.02 → 1", "api_base, api_key_env"
    applied: bool                # True: the head's value was used (a local run, trust-head-config)

    @property
    def message(self) -> str:
        if self.applied:
            return f"this change sets {self.setting} differently from the base ({self.detail}); the head's was applied"
        return (f"this pull request changes {self.setting} ({self.detail}); "
                f"the base's {self.setting.removeprefix('the ')} was applied")

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting, "detail": self.detail, "applied": self.applied, "message": self.message}


@dataclass(frozen=True)
class Policy:
    """Whose gpo.yaml judges the change (`source`), why, and what the head changes.

    `config` is the configuration to run with: the head's, with the base's policy in it when
    `source` is "base"."""

    source: str = "head"
    why: str = "a local run"
    changes: tuple[PolicyChange, ...] = ()
    notes: tuple[str, ...] = ()
    config: Config | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown policy source {self.source!r} (known: {', '.join(SOURCES)})")

    @property
    def enforced(self) -> bool:
        """True when the base's policy is applied over the head's."""
        return self.source == "base"

    def adding(self, changes: Iterable[PolicyChange]) -> "Policy":
        return replace(self, changes=self.changes + tuple(changes))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "why": self.why, "changes": [c.to_dict() for c in self.changes],
                "notes": list(self.notes)}


# --- which params are guarded ------------------------------------------------------------------

def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]


def _holds_url(value: Any) -> bool:
    if isinstance(value, str):
        return "://" in value
    if isinstance(value, Mapping):
        return any(_holds_url(k) or _holds_url(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_holds_url(v) for v in value)
    return False


def guarded_param(name: str, value: Any = None) -> bool:
    """True for a model param whose value the base decides (see the module docstring)."""
    if name in SECRET_PARAMS or name in _SPEC_GUARDED:
        return True
    words = _words(name)
    if words and (words[0] in _CLOUD_PREFIXES or _GUARDED_WORDS.intersection(words)):
        return True
    return _holds_url(value)


def provider_of(model_name: str) -> str:
    """The provider a model name routes to: its prefix before the first "/", else litellm's guess
    for a bare name (the name itself when litellm does not know it)."""
    if "://" in model_name:
        return model_name
    if "/" in model_name:
        return model_name.split("/", 1)[0].lower()
    from gpo_action.llm.providers import litellm_provider

    return litellm_provider(model_name) or model_name    # unknown: only the same name is the same provider


# --- models ------------------------------------------------------------------------------------

def _guarded(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and guarded_param(k, v)}


def _decide(head_name: str, head_params: Mapping[str, Any], base_name: str, base_params: Mapping[str, Any]
            ) -> tuple[str, str]:
    """("head" | "merge" | "base", what differs) for a head model against its base."""
    head_guarded, base_guarded = _guarded(head_params), _guarded(base_params)
    differ = sorted(k for k in head_guarded.keys() | base_guarded.keys() if head_guarded.get(k) != base_guarded.get(k))
    head_provider = base_provider = ""
    if head_name != base_name:
        head_provider, base_provider = provider_of(head_name), provider_of(base_name)
    if head_provider != base_provider:
        return "base", ", ".join([f"provider {base_provider} → {head_provider}"] + differ)
    return ("head", "") if not differ else ("merge", ", ".join(differ))


def _spec_params(spec: ModelSpec) -> dict[str, Any]:
    return {**{k: getattr(spec, k) for k in _SPEC_GUARDED}, **spec.extra_params}


def confine_spec(head: ModelSpec | None, base: ModelSpec | None, env_keys: Mapping[str, Sequence[str]] | None = None
                 ) -> tuple[ModelSpec | None, str]:
    """The model the base's policy allows for `head`, and what it changed ("" when nothing).

    `base` None (the base names no model for this role): `head` only when it carries no guarded
    field beyond its provider's own key variable (`env_keys`, default `availability.PROVIDER_KEYS`),
    else None (the default). `head` None (the head drops the role's model): the base's."""
    if head is None:                # the role's default would be a new endpoint too (e.g. openai/gpt-4o-mini)
        return (None, "") if base is None else (base, "the head names no model")
    if base is None:
        guarded = _guarded(_spec_params(head))
        if guarded.get("api_key_env") in _standard_keys(head.model, env_keys):
            guarded.pop("api_key_env")
        return (head, "") if not guarded else (None, ", ".join(sorted(guarded)))
    decision, detail = _decide(head.model, _spec_params(head), base.model, _spec_params(base))
    if decision == "head":
        return head, ""
    if decision == "base":
        return base, detail
    own = {k: getattr(head, k) for k in ModelSpec.model_fields if k not in _SPEC_GUARDED + ("extra_params",)}
    extra = {**{k: v for k, v in head.extra_params.items() if not guarded_param(k, v)},
             **{k: v for k, v in base.extra_params.items() if guarded_param(k, v)}}
    return base.model_copy(update={**own, "extra_params": extra}), detail   # keeps the base's key, read at load


def confine_model(head: ModelConfig, base: ModelConfig) -> tuple[ModelConfig, str]:
    """`confine_spec` for a resolved model (a suite's): the head's name and own params on the
    base's endpoint, or the base's model when the provider changes."""
    decision, detail = _decide(head.name, head.params, base.name, base.params)
    if decision == "head":
        return head, ""
    if decision == "base":
        return base, detail
    params = {**{k: v for k, v in head.params.items() if not guarded_param(k, v)}, **_guarded(base.params)}
    return ModelConfig(head.name, params), detail


def _standard_keys(model_name: str, env_keys: Mapping[str, Sequence[str]] | None) -> tuple[str, ...]:
    if env_keys is None:
        from gpo_action.llm.availability import PROVIDER_KEYS

        env_keys = PROVIDER_KEYS
    return tuple(v for prefix, names in env_keys.items() if model_name.startswith(prefix) for v in names)


# --- the configuration -------------------------------------------------------------------------

def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_show(v) for v in value) or "none"
    return str(value)


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _section_detail(base: Any, head: Any) -> str:
    old = _flat(base.model_dump()) if hasattr(base, "model_dump") else {"": base}
    new = _flat(head.model_dump()) if hasattr(head, "model_dump") else {"": head}
    parts = [f"{k + ' ' if k else ''}{_show(old.get(k))} → {_show(new.get(k))}"
             for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    return ", ".join(parts)


_SECTIONS = (("gate", "the gate"), ("max_error_rate", "the error tolerance (max_error_rate)"),
             ("optimize", "the fix settings (optimize)"), ("cache", "the cache"))


def resolve_policy(head: Config, base: Config | None, *, enforce: bool, why: str,
                   notes: Sequence[str] = ()) -> Policy:
    """The policy for judging `head` against `base` (None: the base has no gpo.yaml); see the module
    docstring. With `enforce` the returned `config` carries the base's policy, else it is `head`."""
    if base is None and not enforce:
        return Policy("head", why, (), tuple(notes), head)
    reference = base if base is not None else Config()
    changes: list[PolicyChange] = []
    update: dict[str, Any] = {}
    for name, setting in _SECTIONS:
        old, new = getattr(reference, name), getattr(head, name)
        if old != new:
            changes.append(PolicyChange(setting, _section_detail(old, new), applied=not enforce))
        update[name] = old
    models: dict[str, Any] = {}
    for role in ROLES:
        spec, detail = confine_spec(getattr(head.models, role), getattr(reference.models, role))
        if detail:
            changes.append(PolicyChange(f"the endpoint or key of models.{role}", detail, applied=not enforce))
        models[role] = spec
    if head.rate_limits() != reference.rate_limits():  # how fast the account may be called: the base's to say
        changes.append(PolicyChange("the models' rate_limit", f"{_limits(reference)} → {_limits(head)}",
                                    applied=not enforce))
    if not enforce:
        return Policy("head", why, tuple(changes), tuple(notes), head)
    update["models"] = head.models.model_copy(update=models)
    confined = head.model_copy(update=update)
    confined._rate_limits = reference.rate_limits()
    return Policy("base", why, tuple(changes), tuple(notes), confined)


def _limits(config: Config) -> str:
    limits = config.rate_limits()
    if not limits:
        return "none"
    return "; ".join(f"{name} " + ", ".join(f"{k} {v:g}" for k, v in (("rpm", limit.rpm), ("tpm", limit.tpm)) if v)
                     for name, limit in sorted(limits.items()))


def confine_jobs(pairs: Sequence[tuple[Any, Any]], policy: Policy, task_model: Callable[[], ModelConfig]
                 ) -> tuple[list[tuple[Any, Any]], list[PolicyChange]]:
    """Each (base job, head job) pair with the head's suite floor and model under `policy`, and what
    the head changed. `task_model()` is the task model the policy gives a suite without its own."""
    enforce = policy.enforced
    out, changes = [], []
    for base, head in pairs:
        if head is None:
            out.append((base, head))
            continue
        suite, model = head.suite, head.model
        against = None
        if base is not None:
            if suite.min_score != base.suite.min_score:
                changes.append(PolicyChange(f"the floor of suite {suite.name}",
                                            f"min_score {_show(base.suite.min_score)} → {_show(suite.min_score)}",
                                            applied=not enforce))
                if enforce:
                    suite = replace(suite, min_score=base.suite.min_score)
            if suite.model is not None or base.suite.model is not None:
                against = base.model
        elif suite.model is not None and enforce:     # a new suite: locally the user's own, nothing to warn of
            against = task_model()
        if against is not None:
            confined, detail = confine_model(model, against)
            if detail:
                changes.append(PolicyChange(f"the endpoint or key of suite {suite.name}'s model", detail,
                                            applied=not enforce))
                if enforce:
                    model = confined
                    suite = replace(suite, model=confined)
        out.append((base, replace(head, suite=suite, model=model)))
    return out, changes


def load_base_config(root: str | Path, base_sha: str, config_path: str | Path | None = None, *,
                     env: Mapping[str, str] | None = None) -> tuple[Config | None, str | None]:
    """The base revision's gpo.yaml (at the head's config path), read from git objects, and a note
    when there is none or it does not load (both mean: the default policy). `env`: where its
    `api_key_env` names are looked up (as `load_config`'s).

    Loaded in a temp directory: only its values are used, never its paths."""
    from gpo_action import gitrepo

    file = Path(config_path) if config_path is not None else Path(root) / CONFIG_FILE
    with gitrepo.open_repo(root) as repo:
        rel = gitrepo.to_repo_path(repo, file)
        text = gitrepo.read_file(repo, base_sha, rel)
    if text is None:
        return None, f"the base revision has no {rel}: the default policy applies"
    with tempfile.TemporaryDirectory(prefix="gpo-base-config-") as tmp:
        path = Path(tmp) / file.name
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path, env=env, contain_paths=False), None   # its paths mean nothing in the temp dir
        except ConfigError as exc:
            where = f" (line {exc.line})" if exc.line else ""
            return None, f"the base revision's {rel} does not load{where}: {exc.message}; the default policy applies"


__all__ = ["Policy", "PolicyChange", "SOURCES", "confine_jobs", "confine_model", "confine_spec", "guarded_param",
           "load_base_config", "provider_of", "resolve_policy"]
