"""List prices per token, for projections made before any call (`gpo-action optimize --dry-run`).

    price_per_token("openai/gpt-4o-mini")  # (1.5e-07, 6e-07): USD per input token, per output token
    price_per_token("local/smollm2")       # (0.0, 0.0): bundled and replayed models are free
    price_per_token("openai/unknown")      # None: no price known

Prices come from litellm's local price map (`import_litellm` sets LITELLM_LOCAL_MODEL_COST_MAP,
so no price list is fetched); litellm is imported on the first priced lookup, never at import.
This module is the one place outside `providers` that asks litellm about prices.
"""

from __future__ import annotations

from functools import lru_cache

FREE_PREFIXES = ("replay/", "local/")


@lru_cache(maxsize=256)
def price_per_token(model: str) -> tuple[float, float] | None:
    """(USD per input token, USD per output token) of `model`; (0, 0) for replay/ and local/
    models; None when litellm has no price for it."""
    if model.startswith(FREE_PREFIXES):
        return 0.0, 0.0
    from gpo_action.llm.providers import import_litellm

    try:
        prompt_cost, completion_cost = import_litellm().cost_per_token(model=model, prompt_tokens=1,
                                                                       completion_tokens=1)
    except Exception:  # noqa: BLE001  (an unpriced or unknown model: litellm raises several types)
        return None
    return float(prompt_cost), float(completion_cost)
