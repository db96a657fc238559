"""What the render and YAML bounds cost ordinary input: renders per case, loops, suite loading.

In-process, no server: the figures are the sandbox's and the YAML reader's own. Run it with the
tree to measure, e.g. `PYTHONPATH=<another checkout> python bench/render_speed.py` for a before.

    python bench/render_speed.py            # about 30 s on 2 cores
    python bench/render_speed.py --quick    # a smoke run

Figures, one per line (each the best of `--repeat` rounds, thread CPU time):
1. `example NAME`: every case of the example suite rendered through its chat template.
2. `ticket x1000`: a 1,000-case render loop of a ~700-character text template with a short loop.
3. `loop 10k`: one render of a template that loops 10,000 times over filters and a method call
   (the per-step hooks at their densest).
4. `suite 5k`: loading a 5,000-case suite that uses anchors and merge keys (the alias check).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from gpo_action.suites import load_suite
from gpo_action.templates import load_template, parse_template

EXAMPLE = Path(__file__).resolve().parent.parent / "gpo_action" / "example"
TICKET = (
    "You answer customer e-mails for a bicycle shop. Be brief and friendly, quote the order number,\n"
    "never promise a refund yourself, and end with the signature given below.\n" * 4
    + "Order: {{ order }} ({{ status | default('open') | title }})\n"
    "{% if items %}Items:\n{% for item in items %}{{ loop.index }}. {{ item|trim }}\n{% endfor %}{% endif %}"
    "Message:\n{{ message }}\nSignature: {{ agent ~ ', Velo Shop' }}\n"
)
LOOP = "{% for w in words %}{{ loop.index }}:{{ w|upper|replace('A', 'a') }} {{ w.startswith('x') }};{% endfor %}"


def best(rounds: int, body) -> float:
    """The least thread CPU seconds of `rounds` runs of `body()`."""
    times = []
    for _ in range(rounds):
        started = time.thread_time()
        body()
        times.append(time.thread_time() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per figure (default 7, quick 2)")
    args = parser.parse_args(argv)
    rounds = args.repeat or (2 if args.quick else 7)
    import gpo_action

    print(f"gpo_action: {Path(gpo_action.__file__).parent}")
    for suite_file in sorted((EXAMPLE / "evals").glob("*.yaml")):
        suite = load_suite(suite_file, EXAMPLE)
        template = load_template(EXAMPLE / suite.prompt)
        cases = suite.cases

        def render_all() -> None:
            for _ in range(20):
                for case in cases:
                    template.render(case.vars)

        seconds = best(rounds, render_all)
        print(f"example {suite.name}: {len(cases)} cases x20 renders {seconds * 1e3:.1f} ms "
              f"({seconds / (20 * len(cases)) * 1e6:.1f} us/render)")

    ticket = parse_template(TICKET, "ticket.j2")
    cases = [{"order": f"A-{i}", "message": f"Where is my order {i}?", "agent": "Sam",
              "items": [" wheel ", "bell "] * (i % 3)} for i in range(1000)]
    seconds = best(rounds, lambda: [ticket.render(v) for v in cases])
    print(f"ticket x1000: {seconds * 1e3:.1f} ms ({seconds * 1e3:.1f} us/render)")

    loop = parse_template(LOOP, "loop.j2")
    words = {"words": [f"word{i}" for i in range(10_000)]}
    seconds = best(rounds, lambda: loop.render(words))
    print(f"loop 10k: {seconds * 1e3:.1f} ms ({seconds / 10_000 * 1e9:.0f} ns/iteration)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "p.j2").write_text("Say {{ word }}\n")
        lines = ["prompt: p.j2", "cases:",
                 "  - {vars: &base {word: w0, tone: plain, lang: en}, expected: Say w0,"
                 " assert: &checks [{type: contains, value: Say}]}"]
        lines += [f"  - {{vars: {{<<: *base, word: w{i}}}, expected: Say w{i}, assert: *checks}}" for i in range(1, 5000)]
        suite_path = root / "s.yaml"
        suite_path.write_text("\n".join(lines) + "\n")
        seconds = best(max(1, rounds // 2), lambda: load_suite(suite_path, root))
        print(f"suite 5k: {len(suite_path.read_bytes()) // 1024} KB, 5000 cases loaded in {seconds * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
