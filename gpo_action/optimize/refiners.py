"""Refiners: how the optimizer is asked for the next prompt (the "update method").

Registered (`REFINERS`, read through `get_refiner(name)`):

- `generation`: "write a new improved prompt", the trajectory serving as demonstrations
  (meta-prompt `generation.j2`; GPO, APE, OPRO, PE2).
- `editing`: "modify the current prompt" (meta-prompt `editing.j2`; APO).

A refiner names its meta-prompt file; the spec's `metaprompts` directory may replace the file.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from gpo_action.optimize.metaprompts import render_metaprompt
from gpo_action.registry import Registry


class Refiner(Protocol):
    name: str
    metaprompt: str

    def build(self, sources: Mapping[str, str], context: Mapping[str, Any]) -> str:
        """The meta-prompt text for one step."""
        ...


REFINERS: Registry[Callable[[], Refiner]] = Registry("refiner")
register_refiner = REFINERS.decorator


def get_refiner(name: str) -> Callable[[], Refiner]:
    return REFINERS.lookup(name)


class _MetaPromptRefiner:
    name = ""
    metaprompt = ""

    def build(self, sources, context):
        return render_metaprompt(sources, self.metaprompt, context)


@register_refiner("generation")
class Generation(_MetaPromptRefiner):
    name = "generation"
    metaprompt = "generation.j2"


@register_refiner("editing")
class Editing(_MetaPromptRefiner):
    name = "editing"
    metaprompt = "editing.j2"
