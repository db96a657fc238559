"""Can a model run here? Decided before any call, so a run without keys (a pull request from a
fork, where GitHub withholds secrets) evaluates what the cache covers and says what it skipped.

    status = model_status(ModelConfig("openai/gpt-4o-mini"), os.environ)
    status.available, status.reason      # False, "OPENAI_API_KEY is not set"

The rules, in order:
- `replay/` models always run (they need no key), `local/` ones wherever llama-cpp-python is
  installed (the Action's image leaves it out);
- a model whose params carry `api_key` (read from its `api_key_env` at load) runs; one whose
  `api_key_env` names an unset variable (`key_envs_missing`) does not;
- a model with a well-known provider prefix (`PROVIDER_KEYS`) runs iff one of its variables is set;
- any other model asks litellm (`validate_environment`, imported here only); a missing variable
  that is not a secret (a base URL, an API version, a project) or a litellm failure means
  "unknown: try it", and the model counts as available.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from gpo_action.llm.types import ModelConfig

ALWAYS = ("replay/",)
LOCAL = "local/"
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai/": ("OPENAI_API_KEY",),
    "anthropic/": ("ANTHROPIC_API_KEY",),
    "gemini/": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "azure/": ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
    "mistral/": ("MISTRAL_API_KEY",),
    "groq/": ("GROQ_API_KEY",),
    "deepseek/": ("DEEPSEEK_API_KEY",),
    "openrouter/": ("OPENROUTER_API_KEY",),
    "together_ai/": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "cohere/": ("COHERE_API_KEY",),
    "xai/": ("XAI_API_KEY",),
}
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


@dataclass(frozen=True)
class ModelStatus:
    model: str
    available: bool
    reason: str = ""                 # why not (or "unknown: try it" when litellm could not tell)


def model_status(model: ModelConfig, env: Mapping[str, str], key_envs_missing: Mapping[str, str] | None = None
                 ) -> ModelStatus:
    """Whether `model` can run with `env`; `key_envs_missing` maps model names to the unset
    `api_key_env` variable their configuration names (see `missing_key_envs`)."""
    name = model.name
    if name.startswith(ALWAYS):
        return ModelStatus(name, True)
    if name.startswith(LOCAL):
        import importlib.util

        if importlib.util.find_spec("llama_cpp") is None:
            return ModelStatus(name, False, "llama-cpp-python is not installed here (pip install 'gpo-action[local]')")
        return ModelStatus(name, True)
    if model.params.get("api_key"):
        return ModelStatus(name, True)
    variable = (key_envs_missing or {}).get(name)
    if variable:
        return ModelStatus(name, False, f"{variable} is not set")
    for prefix, variables in PROVIDER_KEYS.items():
        if name.startswith(prefix):
            if any(env.get(v) for v in variables):
                return ModelStatus(name, True)
            return ModelStatus(name, False, f"{' or '.join(variables)} is not set")
    return _ask_litellm(model)


def _ask_litellm(model: ModelConfig) -> ModelStatus:
    try:
        from gpo_action.llm.providers import import_litellm

        found = import_litellm().validate_environment(
            model=model.name, api_base=model.params.get("api_base"), api_version=model.params.get("api_version"))
    except Exception as exc:  # noqa: BLE001  (litellm cannot tell: let the call decide)
        return ModelStatus(model.name, True, f"unknown: try it ({type(exc).__name__})")
    missing = [v for v in found.get("missing_keys") or [] if any(w in v.upper() for w in _SECRET_WORDS)]
    if missing:
        return ModelStatus(model.name, False, f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
    return ModelStatus(model.name, True, "" if found.get("keys_in_environment") else "unknown: try it")


def missing_key_envs(config) -> dict[str, str]:
    """Model name -> the unset variable its `api_key_env` names, over gpo.yaml's models and suite entries."""
    specs = [getattr(config.models, role) for role in ("task", "optimizer", "judge", "embedding")]
    specs += [entry.model for entry in config.suites]
    return {spec.model: spec.api_key_env for spec in specs if spec is not None and spec.key_missing}


def unavailable_models(models: Iterable[ModelConfig], env: Mapping[str, str],
                       key_envs_missing: Mapping[str, str] | None = None) -> dict[str, str]:
    """Model name -> why it cannot run, for each model of `models` that cannot (each checked once)."""
    out: dict[str, str] = {}
    seen: set[str] = set()
    for model in models:
        if model is None or model.name in seen:
            continue
        seen.add(model.name)
        status = model_status(model, env, key_envs_missing)
        if not status.available:
            out[model.name] = status.reason
    return out


def fix_hint(reason: str) -> str:
    """What makes a model run that `model_status` says cannot (from its `reason`)."""
    for tail in (" is not set", " are not set"):
        if reason.endswith(tail):
            return f"set {reason[:-len(tail)]} (in GitHub Actions: from a secret, in the step's env:)"
    if "llama-cpp-python" in reason:
        return "pip install 'gpo-action[local]'"
    return "make the model reachable from here"


def fix_text(skipped_models: Mapping[str, str]) -> str:
    """The fix for a run that could not evaluate, as one sentence: what each model lacks, or another
    model to name (never the one that failed)."""
    hints = list(dict.fromkeys(fix_hint(reason) for reason in skipped_models.values()))
    others = ["a provider's model with its key set (e.g. openai/gpt-4o-mini and OPENAI_API_KEY)"]
    if not any(name.startswith(LOCAL) for name in skipped_models):
        others.append("local/smollm2 (the bundled offline model, with gpo-action[local])")
    others.append("replay/<file.jsonl> (recorded answers)")
    return ("Fix: " + "; or ".join(hints + [f"name a model that can run here as models.task in gpo.yaml (or the "
                                            f"suite's model): {', '.join(others[:-1])} or {others[-1]}"]))
