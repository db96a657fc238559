"""What the secret scrubber (`gpo_action.secrets`) costs on the hot paths: a cached response, a
line the CLI prints, a report chunk; and a response-cache write with and without it.

The secret set is what a runner typically holds: 6 credential-looking variables (an API key, the
token input and GITHUB_TOKEN, AWS keys, a deploy secret), about 20 forms with their encodings.
Each figure is the median of 7 repeats of a timed loop, in microseconds per call. For comparison,
the same forms as one compiled regex alternation (the design not taken).

    python bench/scrubber.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gpo_action import secrets  # noqa: E402
from gpo_action.github.commands import neutralize  # noqa: E402
from gpo_action.llm.cache import ResponseCache  # noqa: E402
from gpo_action.llm.types import LLMResponse  # noqa: E402
from gpo_action.streams import GuardedStream  # noqa: E402

ENV = {
    "OPENAI_API_KEY": "sk-proj-" + "a1B2c3D4" * 6,
    "INPUT_GITHUB-TOKEN": "ghs_" + "Zy9X8w7V" * 4 + "uT",
    "GITHUB_TOKEN": "ghs_" + "Zy9X8w7V" * 4 + "uT",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "IQoJb3JpZ2luX2VjE" + "Hx/+9" * 40,
    "DEPLOY_SECRET": "deploy-" + "0123456789abcdef" * 2,
    "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/runner",
}
WORDS = "the ticket says the customer was charged twice for one order and asks for a refund soon ".split()


def text_of(chars: int) -> str:
    out, i = [], 0
    while sum(map(len, out)) + len(out) < chars:
        out.append(WORDS[i % len(WORDS)])
        i += 1
    return " ".join(out)[:chars]


def per_call_us(function, argument, loops: int) -> float:
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(loops):
            function(argument)
        samples.append((time.perf_counter() - started) / loops * 1e6)
    return statistics.median(samples)


class Null:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def main() -> None:
    scrubber = secrets.reset(ENV)  # the process's scrubber: the stream and the cache use it too
    print(f"secrets: {len(scrubber.values)} values, {len(scrubber.forms)} forms")
    alternation = re.compile("|".join(map(re.escape, scrubber.forms)))  # the design not taken
    figures = {}
    for label, chars, loops in (("response 40 chars", 40, 50_000), ("line 120 chars", 120, 50_000),
                                ("response 1 KB", 1024, 20_000), ("report chunk 100 KB", 100 * 1024, 200)):
        clean = text_of(chars)
        leaked = clean[: chars // 2] + ENV["OPENAI_API_KEY"] + clean[chars // 2:]
        miss = per_call_us(scrubber.scrub, clean, loops)
        hit = per_call_us(scrubber.scrub, leaked, loops)
        regex = per_call_us(lambda t: alternation.sub("***", t), clean, loops)
        figures[label] = miss
        print(f"scrub {label}: {miss:.2f} us clean, {hit:.2f} us with a secret "
              f"(one regex alternation instead, clean: {regex:.2f} us)")

    line = text_of(120) + "\n"
    plain = GuardedStream(Null(), actions=False)
    guarded = GuardedStream(Null(), actions=True)
    raw = per_call_us(Null().write, line, 50_000)
    print(f"stdout write of a 120-char line: {raw:.2f} us raw, {per_call_us(plain.write, line, 50_000):.2f} us "
          f"scrubbed, {per_call_us(guarded.write, line, 50_000):.2f} us scrubbed and guarded (Actions)")
    print(f"neutralize a 120-char line: {per_call_us(neutralize, line, 50_000):.2f} us")

    with tempfile.TemporaryDirectory() as tmp:
        cache = ResponseCache(Path(tmp) / "cache.sqlite")
        response = LLMResponse(text=text_of(200), prompt_tokens=50, completion_tokens=20, cost=0.0)
        keys = iter(range(10**9))
        put = per_call_us(lambda r: cache.put(f"k{next(keys)}", r), response, 2_000)
        scrub_200 = per_call_us(scrubber.scrub, response.text, 50_000)
        cache.close()
    print(f"cache put of a 200-char response: {put:.1f} us, of which the scrub {scrub_200:.2f} us "
          f"({100 * scrub_200 / put:.2f}%)")
    print(f"summary: scrub costs {figures['response 1 KB']:.2f} us per clean 1 KB text, "
          f"{scrub_200:.2f} us of a {put:.0f} us cache write")


if __name__ == "__main__":
    main()
