"""gpo.yaml: its schema and its loading.

Every section is a pydantic model with `extra="forbid"` and strict types, validated once by
`load_config`; any problem becomes one `ConfigError` naming the file, the line and the key.
Code after loading receives `Config`, never raw dicts.

A model is written as a litellm model string or as a mapping of that string plus litellm params:

    models:
      task: openai/gpt-4o-mini
      judge: {model: openai/gpt-4o, temperature: 0, api_key_env: JUDGE_KEY}

`api_key_env` names an environment variable; its value is read at load into the model's params
as `api_key` (`ModelConfig.public_params()` drops it). An inline `api_key` is refused.

Paths (`cache.path`, the file of a `replay/<file.jsonl>` model) must stay inside the repository's
working tree (`Config.tree`, see `containment`); one that does not is a ConfigError at load.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gpo_action import secrets
from gpo_action.containment import Origin, contain, tree_root
from gpo_action.errors import ConfigError
from gpo_action.llm.types import SECRET_PARAMS, ModelConfig, RateLimit
from gpo_action.yamlsource import Loc, YamlDoc, load_yaml, validation_error

CONFIG_FILE = "gpo.yaml"
CACHE_FILE_SUFFIXES = ("", "-wal", "-shm", "-journal")   # the cache file and what sqlite writes beside it
ROLES = ("task", "optimizer", "judge", "embedding")
DEFAULT_SUITES = "evals/*.yaml"

SECRET_HINT = ("inline secrets are not allowed here; put the key in an environment variable and "
               "name that variable with `api_key_env: NAME`")
SECRET_HINTS = {name: SECRET_HINT for name in SECRET_PARAMS}

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STRICT = ConfigDict(extra="forbid", strict=True)

# litellm params checked here; any other key of a model mapping passes through to litellm as is.
_TYPED_PARAMS = ("api_base", "api_version", "temperature", "top_p", "max_tokens", "seed")


class RateLimitSpec(BaseModel):
    """A model's own limits, to pace requests before they are sent (`llm/ratelimits.py`)."""

    model_config = _STRICT

    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute (prompt estimated from the rendered "
                                                              "messages, plus max_tokens)")


class ModelSpec(BaseModel):
    """A model as written in YAML: a string, or a mapping with `model` plus litellm params."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: str = Field(min_length=1, description="litellm model string (or replay/<file.jsonl>, local/<name>)")
    api_key_env: str | None = Field(default=None, description="name of the environment variable that holds the API key")
    api_base: str | None = Field(default=None, description="base URL of an OpenAI-compatible or self-hosted endpoint")
    api_version: str | None = Field(default=None, description="API version (Azure)")
    temperature: float | None = Field(default=None, ge=0, le=2, description="sampling temperature")
    top_p: float | None = Field(default=None, ge=0, le=1, description="nucleus sampling mass")
    max_tokens: int | None = Field(default=None, ge=1, description="completion token limit")
    seed: int | None = Field(default=None, description="provider sampling seed, where supported")
    rate_limit: RateLimitSpec | None = Field(default=None, description="requests and tokens per minute this model "
                                             "may take (the provider's headers are followed as well)")
    extra_params: dict[str, Any] = Field(default_factory=dict,
                                         description="any other key of the mapping, passed to litellm unchanged")

    _api_key: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"model": data}
        if not isinstance(data, dict):
            return data
        declared = [n for n in cls.model_fields if n != "extra_params"]
        out: dict[Any, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            if key in declared or key in SECRET_PARAMS or not isinstance(key, str):
                out[key] = value    # secrets stay here so that extra="forbid" reports them at their line
                continue
            close = difflib.get_close_matches(key, declared, n=1, cutoff=0.8)
            if close:
                raise ValueError(f"unknown key {key!r}; did you mean {close[0]!r}?")
            extra[key] = value
        if extra:
            out["extra_params"] = extra
        return out

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the NAME of an environment variable (letters, digits, _), never the key itself")
        return value

    @model_validator(mode="after")
    def _read_key(self, info: ValidationInfo) -> "ModelSpec":
        if self.api_key_env:
            env = (info.context or {}).get("env")
            self._api_key = (os.environ if env is None else env).get(self.api_key_env) or None
            secrets.remember(self._api_key)  # whatever the variable's name, its value is a secret
        return self

    def contain_replay(self, root: Path, tree: Path, origin: Origin) -> None:
        """Check the file of a `replay/<file.jsonl>` model (relative to the config root `root`)."""
        from gpo_action.llm.replay import PREFIX

        if self.model.startswith(PREFIX):
            contain(self.model[len(PREFIX):], root, tree, origin, subject=repr(self.model))

    @property
    def key_missing(self) -> bool:
        """True when `api_key_env` names a variable that was unset (or empty) at load."""
        return bool(self.api_key_env) and self._api_key is None

    def to_model_config(self) -> ModelConfig:
        params: dict[str, Any] = {}
        for name in _TYPED_PARAMS:
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        params.update(self.extra_params)
        if self._api_key is not None:
            params["api_key"] = self._api_key
        return ModelConfig(self.model, params)


class Models(BaseModel):
    model_config = _STRICT

    task: ModelSpec | None = Field(default=None, description="the model the prompts run on (default decided by the CLI)")
    optimizer: ModelSpec | None = Field(default=None, description="the model that proposes prompt edits")
    judge: ModelSpec | None = Field(default=None, description="the grader of llm-rubric assertions")
    embedding: ModelSpec | None = Field(default=None, description="embeddings for similarity; null = local lexical similarity")


class SuiteEntry(BaseModel):
    """One `suites:` entry; a plain string is shorthand for `{eval: ...}`."""

    model_config = _STRICT

    eval: str = Field(min_length=1, description="suite file, directory or glob, relative to the directory of gpo.yaml")
    model: ModelSpec | None = Field(default=None, description="task model for these suites (overrides the suite's)")
    min_score: float | None = Field(default=None, ge=0, le=1, description="absolute floor of the suite score (overrides the suite's)")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"eval": data} if isinstance(data, str) else data


class Gate(BaseModel):
    model_config = _STRICT

    max_drop: float = Field(default=0.02, ge=0, le=1, description="allowed fall of a suite score versus the base")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="significance level of the paired test")
    min_score: float | None = Field(default=None, ge=0, le=1, description="optional absolute floor for every suite")
    allow_removed: bool = Field(default=False, description="a suite on the base and not on the head passes the check "
                                                          "(else its verdict `removed` fails it)")
    allow_skipped: bool = Field(default=False, description="a suite whose cases could not be evaluated (no key or "
                                                          "model here) passes neutrally (else the run exits 2; a "
                                                          "fork's pull request in the Action always passes neutrally)")


class Budget(BaseModel):
    model_config = _STRICT

    # One budget per run: `gpo-action optimize SUITE`, or all the fixes of a pull request together
    # (split across the suites to fix, see `fixes.share_of`).
    max_calls: int = Field(default=400, gt=0, description="model calls per run (all fixes of a pull request together)")
    max_usd: float = Field(default=2.0, ge=0, description="spend per run, in US dollars")
    max_seconds: float = Field(default=900.0, gt=0, description="wall-clock seconds per run")
    max_tokens: int | None = Field(default=None, gt=0, description="tokens per run; null = no limit")


class Optimize(BaseModel):
    model_config = _STRICT

    when: Literal["never", "regression", "below-min", "always"] = Field(
        default="regression", description="when a run tries to repair a prompt")
    preset: str = Field(default="gpo", min_length=1, description="optimizer preset name (gpo, opro, ape, apo, pe2)")
    steps: int = Field(default=6, ge=1, description="optimisation steps")
    candidates: int = Field(default=4, ge=1, description="candidate prompts per step")
    budget: Budget = Field(default_factory=Budget, description="stop conditions; the first reached ends the run")
    localize: bool = Field(default=True, description="for a regressed suite, first find the edits of the change that "
                                                     "cause the drop and propose reverting only those")
    deliver: list[Literal["suggestion", "commit", "comment"]] = Field(
        default_factory=lambda: ["suggestion", "comment"], description="how an improved prompt reaches the author")


class Retries(BaseModel):
    model_config = _STRICT

    max: int = Field(default=4, ge=0, le=20, description="retries of a failed model call")
    base: float = Field(default=0.5, ge=0, description="first backoff wait, seconds (doubles, with jitter)")
    max_wait: float = Field(default=30.0, ge=0, description="longest single wait, seconds")


class CacheSettings(BaseModel):
    model_config = _STRICT

    path: str = Field(default=".gpo/cache.sqlite", min_length=1, description="response cache file, relative to gpo.yaml")
    enabled: bool = Field(default=True, description="read and write the response cache")
    lock_timeout: float = Field(default=30.0, ge=0, le=3600,
                                description="seconds to wait for another process's lock on the cache before "
                                            "going on without it")


class Config(BaseModel):
    """The whole of gpo.yaml. `root` and `path` are set by `load_config`."""

    model_config = _STRICT

    models: Models = Field(default_factory=Models, description="models by role")
    suites: list[SuiteEntry] = Field(default_factory=lambda: [SuiteEntry(eval=DEFAULT_SUITES)], min_length=1,
                                     description="eval suites to run (paths or globs)")
    gate: Gate = Field(default_factory=Gate, description="when a change fails the check")
    optimize: Optimize = Field(default_factory=Optimize, description="automatic prompt repair")
    concurrency: int = Field(default=16, ge=1, le=1024, description="model calls in flight, per model")
    timeout: float = Field(default=60.0, gt=0, description="seconds one model call may take")
    retries: Retries = Field(default_factory=Retries, description="backoff on 429/5xx/timeouts")
    max_error_rate: float = Field(default=0.05, ge=0, le=1,
                                  description="fraction of a suite's cases that may end in provider errors before exit 3")
    cache: CacheSettings = Field(default_factory=CacheSettings, description="the response cache")

    _root: Path | None = PrivateAttr(default=None)
    _path: Path | None = PrivateAttr(default=None)
    _doc: YamlDoc | None = PrivateAttr(default=None)
    _env: Mapping[str, str] | None = PrivateAttr(default=None)
    _tree: Path | None = PrivateAttr(default=None)
    _rate_limits: dict[str, RateLimit] | None = PrivateAttr(default=None)  # set by a base's policy

    @model_validator(mode="before")
    @classmethod
    def _drop_empty_sections(cls, data: Any) -> Any:
        # `gate:` with nothing under it (or everything commented out) means the defaults.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @property
    def root(self) -> Path:
        """The directory holding gpo.yaml (the current directory for a Config built in code)."""
        return self._root if self._root is not None else Path.cwd()

    @property
    def path(self) -> Path | None:
        """The gpo.yaml this was loaded from; None for a Config built in code."""
        return self._path

    @property
    def display_path(self) -> str:
        """The config file as named in messages."""
        return self._doc.path if self._doc is not None else CONFIG_FILE

    @property
    def environ(self) -> Mapping[str, str]:
        """Where `api_key_env` names are looked up: the `env` given to load_config, else os.environ."""
        return os.environ if self._env is None else self._env

    @property
    def tree(self) -> Path:
        """The directory every path of the project stays inside: the repository's working tree
        (or the config root outside a repository); see `containment`."""
        return self._tree if self._tree is not None else tree_root(self.root)

    @property
    def cache_path(self) -> Path:
        """The cache file (relative paths from the config root), checked by `contain_cache`."""
        self.contain_cache()
        return self.root / self.cache.path

    def contain_cache(self) -> None:
        """Raise ConfigError when `cache.path`, or a sqlite file beside it, leaves the tree."""
        origin = Origin(self.display_path, self.line_of(("cache", "path")), "cache.path", ConfigError)
        real = contain(self.cache.path, self.root, self.tree, origin)
        for suffix in CACHE_FILE_SUFFIXES[1:]:
            contain(f"{real}{suffix}", self.root, self.tree, origin, subject=repr(f"{self.cache.path}{suffix}"))

    def check_paths(self) -> None:
        """Raise ConfigError for a path of gpo.yaml that leaves the tree (see `containment`)."""
        self.contain_cache()
        roles: list[tuple[Loc, ModelSpec | None]] = [(("models", role), getattr(self.models, role)) for role in ROLES]
        roles += [(("suites", i, "model"), entry.model) for i, entry in enumerate(self.suites)]
        for loc, spec in roles:
            if spec is not None:
                key = ".".join(map(str, loc))
                spec.contain_replay(self.root, self.tree, Origin(self.display_path, self.line_of(loc), key, ConfigError))

    def model(self, role: str) -> ModelConfig | None:
        """The configured model for `role` (task, optimizer, judge, embedding), or None."""
        if role not in ROLES:
            raise ValueError(f"unknown model role {role!r} (known: {', '.join(ROLES)})")
        spec: ModelSpec | None = getattr(self.models, role)
        return spec.to_model_config() if spec is not None else None

    def rate_limits(self) -> dict[str, RateLimit]:
        """Each model's `rate_limit`, by model name; a model given two, the lower of each. Under a
        base's policy (`policy.resolve_policy`), the base's."""
        if self._rate_limits is not None:
            return dict(self._rate_limits)
        specs = [getattr(self.models, role) for role in ROLES] + [entry.model for entry in self.suites]
        limits: dict[str, RateLimit] = {}
        for spec in specs:
            if spec is None or spec.rate_limit is None:
                continue
            given, known = spec.rate_limit, limits.get(spec.model, RateLimit())
            limits[spec.model] = RateLimit(rpm=_lower(known.rpm, given.rpm), tpm=_lower(known.tpm, given.tpm))
        return limits

    def line_of(self, loc: Loc) -> int | None:
        """Line in gpo.yaml of the setting at `loc`, e.g. ("suites", 0); None when not from a file."""
        return self._doc.line_of(loc) if self._doc is not None else None


def _lower(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None,
                tree: str | Path | None = None, contain_paths: bool = True) -> Config:
    """Read and validate gpo.yaml (default: ./gpo.yaml). An empty file means all defaults.

    `env` replaces `os.environ` for `api_key_env` lookups; `tree` is the directory its paths must
    stay inside (default: the repository holding it, see `containment`). `contain_paths=False`
    skips that check at load, for a file read elsewhere whose values only are used (the base's
    policy); `cache_path` still checks where it is used. Raises `ConfigError` with the file, the
    line and the key of every problem.
    """
    file = Path(path) if path is not None else Path(CONFIG_FILE)
    display = str(path) if path is not None else CONFIG_FILE
    if file.is_dir():
        raise ConfigError("expected the configuration file, found a directory", display,
                          hint=f"pass the path of the file, e.g. {file / CONFIG_FILE}")
    if not file.exists():
        raise ConfigError("configuration file not found", display, hint="run `gpo-action init` to create one")
    top = Path(os.path.realpath(tree)) if tree is not None else tree_root(file.absolute().parent)
    contain(file.absolute(), top, top, Origin(display, None, "", ConfigError), subject="the configuration file")
    doc = load_yaml(file, error=ConfigError, display=display)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping of settings, found {type(data).__name__}", display, doc.line_of(()))
    try:
        config = Config.model_validate(data, context={"env": env})
    except ValidationError as exc:
        raise validation_error(exc, path=display, error=ConfigError, model=Config,
                               line_of=doc.line_of, hints=SECRET_HINTS) from None
    config._root = file.absolute().parent
    config._path = file.absolute()
    config._doc = doc
    config._env = env
    config._tree = top
    if contain_paths:
        config.check_paths()
    return config
