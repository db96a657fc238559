"""promptfoo provider ids -> litellm model strings (gpo-action's `ModelSpec` mappings).

`openai:[chat:|completion:]M` -> openai/M (with `config.apiBaseUrl`/`apiHost`: any OpenAI-compatible
server, as `api_base`); `anthropic:[messages:]M`; `azure:chat:D` (apiHost -> api_base);
`bedrock:[converse:|completion:]M`; `vertex:[chat:]M` -> vertex_ai/M; `ollama:[chat:]M`;
`openrouter:M`; `groq:M`; `mistral:[chat:]M`; `google:M`/`gemini:M` -> gemini/M. Keys are never
copied: `apiKeyEnvar` becomes `api_key_env`; a literal `apiKey` is dropped and noted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpo_action.importers.promptfoo.reading import Project

_PREFIXES = {
    "openai": "openai", "anthropic": "anthropic", "azure": "azure", "azureopenai": "azure", "bedrock": "bedrock",
    "vertex": "vertex_ai", "ollama": "ollama", "openrouter": "openrouter", "groq": "groq", "mistral": "mistral",
    "google": "gemini", "gemini": "gemini",
}
_MODES = ("chat", "completion", "messages", "converse")
_PARAMS = {"temperature": "temperature", "max_tokens": "max_tokens", "maxTokens": "max_tokens", "top_p": "top_p",
           "topP": "top_p", "seed": "seed", "stop": "stop", "presence_penalty": "presence_penalty",
           "frequency_penalty": "frequency_penalty", "response_format": "response_format",
           "apiVersion": "api_version", "api_version": "api_version"}


@dataclass(frozen=True)
class Model:
    label: str
    spec: dict[str, Any]     # a gpo.yaml model mapping


def to_model(project: Project, value: Any, shown: str, line: int | None) -> Model | None:
    """One `providers:` entry as a model, or None (noted)."""
    config: dict[str, Any] = {}
    label = None
    if isinstance(value, dict) and "id" not in value and len(value) == 1:  # {openai:gpt-4: {config: ...}}
        (pid, body), = value.items()
        value = {"id": pid, **(body if isinstance(body, dict) else {})}
    if isinstance(value, dict):
        pid, label, config = value.get("id"), value.get("label"), value.get("config") or {}
    else:
        pid = value
    if not isinstance(pid, str) or not isinstance(config, dict):
        project.note(shown, line, "a provider that is not an id string (a script or a function): not converted")
        return None
    prefix, _, rest = pid.partition(":")
    target = _PREFIXES.get(prefix)
    if target is None or not rest:
        project.note(shown, line, f"provider {pid!r}: no litellm equivalent known (http, exec, scripts, ...): not converted")
        return None
    mode, _, name = rest.partition(":")
    if mode in _MODES and name:
        rest = name
        if prefix == "ollama" and mode == "chat":
            target = "ollama_chat"
    spec: dict[str, Any] = {"model": f"{target}/{rest}"}
    base = config.get("apiBaseUrl") or config.get("apiHost")
    if isinstance(base, str) and base:
        spec["api_base"] = base if "://" in base else f"https://{base}"
    if isinstance(config.get("apiKeyEnvar"), str):
        spec["api_key_env"] = config["apiKeyEnvar"]
    for key, item in config.items():
        if key in _PARAMS:
            spec[_PARAMS[key]] = item
        elif key == "apiKey":
            project.note(shown, line, f"provider {pid!r}: a literal apiKey is never copied; set the provider's key "
                         "variable (or name one with api_key_env)")
        elif key not in ("apiBaseUrl", "apiHost", "apiKeyEnvar"):
            project.note(shown, line, f"provider {pid!r}: config.{key} not converted")
    return Model(str(label or pid), spec)
