"""The wall-clock figures the tests leave out (they assert the behaviour; the seconds are here).

    python bench/timings.py            # about 30 s on 2 cores (the model's load included)
    python bench/timings.py --repeats 9

Figures, one per line (median and max over the repeats, with the target), then `summary:`:
1. render: 10,000 renders of tests/test_templates.py's ~1,000-character triage template, compiled
   once; microseconds a render (target 500 us: a recompilation per render costs far more).
2. runaway <id>: each runaway template of tests/test_templates.py, milliseconds until its render
   limit refuses it (target 5 s).
3. provider_timeout: a request the scripted server (tests/support/openai_server.py, in this
   process, on 127.0.0.1) hangs on, client timeout 0.5 s, no retries: seconds until the
   ProviderTimeout answer, and that over the timeout (target 5 s). litellm's import and a first
   answered call are timed apart, before.
4. local_timeout: the bundled model (`local/smollm2`) asked for 150 tokens, which take 2 s or more,
   with timeout 0.3 s: the answer's `seconds` (target 1 s: the generation runs off the event loop,
   so the timeout fires on time). `skip:` without the [local] extra. The model's load is timed apart.
A missed target is printed as `MISSED by N%`; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

from harness import ROOT, machine_line, run_guarded, show, verdict

sys.path.insert(0, str(ROOT))

RENDERS = 10_000
TARGET_RENDER_US = 500.0
TARGET_RUNAWAY_S = 5.0
PROVIDER_TIMEOUT_S, TARGET_PROVIDER_S = 0.5, 5.0
LOCAL_TIMEOUT_S, TARGET_LOCAL_S = 0.3, 1.0


def spread(values: list[float], target: float, unit: str = "s", scale: float = 1.0) -> tuple[float, str, bool]:
    """(median, the line's text, whether the max is within `target`) of `values` times `scale`."""
    median, worst = statistics.median(values) * scale, max(values) * scale
    text = f"median={median:.3f}{unit} max={worst:.3f}{unit} target<{target:g}{unit} {verdict(worst, target)}"
    return median, text, worst <= target


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def render_cost(repeats: int) -> bool:
    from gpo_action.templates import parse_template
    from tests.test_templates import TRIAGE, TRIAGE_VARS

    template = parse_template(TRIAGE, "triage.j2")
    template.render(TRIAGE_VARS)  # the compilation, not timed

    def renders() -> None:
        for _ in range(RENDERS):
            template.render(TRIAGE_VARS)

    _, text, ok = spread([timed(renders) / RENDERS for _ in range(repeats)], TARGET_RENDER_US, "us", 1e6)
    show("render", f"{len(TRIAGE)}-char template, {RENDERS} renders: {text}")
    return ok


def refused(source: str, message: str) -> Callable[[], None]:
    from gpo_action.errors import TemplateError
    from gpo_action.templates import render_text

    def call() -> None:
        try:
            render_text(source, {})
        except TemplateError as error:
            if message not in str(error):
                raise RuntimeError(f"refused for another reason: {error}") from None
            return
        raise RuntimeError(f"not refused: {source}")

    return call


def runaway_cost(repeats: int) -> list[bool]:
    from tests.test_templates import RUNAWAY

    verdicts = []
    for name, source, message in RUNAWAY:
        _, text, ok = spread([timed(refused(source, message)) for _ in range(repeats)], TARGET_RUNAWAY_S * 1e3, "ms", 1e3)
        show(f"runaway {name}", text)
        verdicts.append(ok)
    return verdicts


def provider_timeout(repeats: int) -> bool:
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.llm.types import LLMRequest, ModelConfig
    from tests.support.openai_server import ScriptedOpenAIServer

    seconds = []
    with ScriptedOpenAIServer() as server:
        model = ModelConfig("openai/scripted", {"api_base": server.url + "/v1", "api_key": "bench-key"})
        with LLMClient(ClientSettings(max_retries=0)) as client:  # litellm's import and first call, timed apart
            first = timed(lambda: client.complete([LLMRequest(model, ({"role": "user", "content": "warm up"},))]))
        show("provider_first_call", f"{first:.2f}s (litellm's import included)")
        for i in range(repeats):
            server.enqueue_faults("hang")
            request = LLMRequest(model, ({"role": "user", "content": f"hello {i}"},))
            with LLMClient(ClientSettings(timeout=PROVIDER_TIMEOUT_S, max_retries=0)) as client:
                started = time.perf_counter()
                [response] = client.complete([request])
                seconds.append(time.perf_counter() - started)
            if response.error_type != "ProviderTimeout":
                raise RuntimeError(f"expected a ProviderTimeout, got {response.error_type}: {response.error}")
    median, text, ok = spread(seconds, TARGET_PROVIDER_S)
    show("provider_timeout", f"timeout {PROVIDER_TIMEOUT_S}s: {text} ({median / PROVIDER_TIMEOUT_S:.1f}x the timeout)")
    return ok


def local_timeout(repeats: int) -> bool | None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        show("local_timeout", "skip: llama-cpp-python is not installed (the [local] extra)")
        return None
    from gpo_action.llm.client import ClientSettings, LLMClient
    from gpo_action.llm.local import load_model
    from gpo_action.llm.types import LLMRequest, ModelConfig

    show("local_load", f"{timed(lambda: load_model('smollm2')):.2f}s")
    request = LLMRequest(ModelConfig("local/smollm2"), ({"role": "user", "content": "Write a long story about a dragon."},),
                         {"temperature": 0.8, "max_tokens": 150})
    seconds = []
    for _ in range(repeats):
        with LLMClient(ClientSettings(timeout=LOCAL_TIMEOUT_S, max_retries=0)) as client:
            [slow] = client.complete([request])
        if slow.error_type != "ProviderTimeout":
            raise RuntimeError(f"expected a ProviderTimeout, got {slow.error_type}: {slow.error}")
        seconds.append(slow.seconds)
    median, text, ok = spread(seconds, TARGET_LOCAL_S)
    show("local_timeout", f"timeout {LOCAL_TIMEOUT_S}s: {text} ({median / LOCAL_TIMEOUT_S:.1f}x the timeout)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(machine_line(), flush=True)
    verdicts = [render_cost(args.repeats), *runaway_cost(args.repeats), provider_timeout(args.repeats),
                local_timeout(args.repeats)]
    show("summary", f"{verdicts.count(True)} ok, {verdicts.count(False)} missed, {verdicts.count(None)} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(lambda: main()))
