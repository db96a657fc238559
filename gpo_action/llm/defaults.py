"""Which model to use when gpo.yaml names none.

A configured model always wins. Without one, a provider key in the environment picks that
provider's small default model; with no key at all, the bundled offline model runs, so the tool
works on a fresh machine with no network.
"""

from __future__ import annotations

from typing import Mapping

from gpo_action.llm.types import ModelConfig

LOCAL_MODEL = "local/smollm2"

# Checked in order; the first variable that is set decides.
PROVIDER_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "openai/gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-3-5-haiku-latest"),
    ("GEMINI_API_KEY", "gemini/gemini-2.0-flash"),
)


def default_model(env: Mapping[str, str]) -> tuple[ModelConfig, str]:
    """The model to use when none is configured, and a one-line note saying why."""
    for variable, model in PROVIDER_DEFAULTS:
        if env.get(variable):
            return ModelConfig(model), f"no model configured; {variable} is set, so using {model} (set models.task to choose)"
    return (
        ModelConfig(LOCAL_MODEL),
        f"no model configured and no provider key set: using the bundled offline model {LOCAL_MODEL} "
        "(weak but real; set models.task and a provider key for real scores)",
    )
