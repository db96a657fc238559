"""The Jinja2 sandbox templates render in: immutable, and bounded in work and in size.

A template (and a case's vars) may come from a pull request, so rendering must end, quickly and
in little memory, whatever the template says. Jinja's `ImmutableSandboxedEnvironment` already
keeps templates away from Python internals and caps `range()` at 100,000 items; on top of it:

- loops: every `{% for %}` spends one unit of a per-render budget of MAX_LOOP_ITERATIONS per
  iteration (nested loops multiply, so they run out), plus the literal text its body writes;
- output: every `{{ ... }}` (also inside `{% set %}` blocks, macros and `{% filter %}` blocks,
  which buffer instead of writing) spends its size from a budget of MAX_RENDER_WORK characters;
- values: a `{% set %}` value or a `~` concatenation longer than MAX_RENDER_CHARS is refused;
- amplifiers are checked before they allocate: `*`, `+` and `%` on strings (bytes too: `encode()`
  and a YAML `!!binary` var make them) and lists, `*` and
  `**` on integers (a result of more than MAX_INT_BITS bits, from both operands' sizes),
  the str and bytes methods center/ljust/rjust/zfill/expandtabs/replace/join/format, the filters
  center/indent/replace/format/wordwrap/join/slice/batch/string/pprint/tojson and `lipsum()`;
- CPU time: a render may use MAX_RENDER_SECONDS of its thread's CPU. Every loop iteration, call
  (methods, macros, `caller()`), filter or test applied by name (`map`, `select`, ...) and
  intercepted operator is a step; steps look at a cheap wall clock and, at most every
  CPU_CHECK_EVERY seconds of it, at the thread's CPU clock (a thread-CPU read costs a system
  call, so not every step pays for one). No signal and no other thread is involved.

Everything refused raises `RenderLimitError`, a jinja2 `SecurityError`; `templates` reports it
as a `TemplateLimitError` naming the limit, which evaluation records as that case's error.
The budget is per render and per thread: `with render_budget(): ...` around the render.
"""

from __future__ import annotations

import functools
import math
import re
import string
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

MAX_RENDER_CHARS = 1_000_000  # a rendered template (or message, or value) longer than this is an error
MAX_RENDER_WORK = 4 * MAX_RENDER_CHARS  # characters one render may produce, buffered output included
MAX_LOOP_ITERATIONS = 100_000  # loop iterations one render may run, all loops together
MAX_LIPSUM_WORDS = 10_000
MAX_INT_BITS = 1 << 16  # an integer `*` or `**` may make (a 20,000-digit number; Python prints 4300)
MAX_RENDER_SECONDS = 1.0  # CPU seconds one render may use, on its thread
CPU_CHECK_EVERY = 0.01  # wall seconds between reads of the thread's CPU clock during a render

_state = threading.local()
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
_DIGITS = re.compile(r"\d+")
TEXT = (str, bytes, bytearray)  # what repeats, pads and replaces by its length; bounded alike
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class RenderLimitError(SecurityError):
    """A render went past one of this module's bounds."""


class RenderBudget:
    """What one render may still spend: loop iterations, produced characters and CPU time."""

    def __init__(self, iterations: int = MAX_LOOP_ITERATIONS, chars: int = MAX_RENDER_WORK,
                 seconds: float = MAX_RENDER_SECONDS):
        self.iterations = iterations
        self.chars = chars
        self.seconds = seconds
        self._cpu_deadline: float | None = None  # read lazily: most renders end before the first look
        self._next_look = time.perf_counter() + CPU_CHECK_EVERY

    def spend(self, iterations: int = 0, chars: int = 0) -> None:
        self.iterations -= iterations
        self.chars -= chars
        if self.iterations < 0:
            raise RenderLimitError(f"loops ran more than {MAX_LOOP_ITERATIONS} iterations")
        if self.chars < 0:
            raise RenderLimitError(f"the template produced more than {MAX_RENDER_WORK} characters "
                                "(a loop, macro or filter produces runaway output)")

    def step(self) -> None:
        """One unit of template work; refuses once the render has used its CPU time."""
        now = time.perf_counter()
        if now < self._next_look:
            return
        self._next_look = now + CPU_CHECK_EVERY
        cpu = time.thread_time()
        if self._cpu_deadline is None:
            # The CPU used before this first look (at most CPU_CHECK_EVERY) is not counted: the
            # render is refused a little late, never early.
            self._cpu_deadline = cpu + self.seconds
        elif cpu > self._cpu_deadline:
            raise RenderLimitError(f"the render used more than {self.seconds:g} s of CPU "
                                   "(a loop, macro or filter does too much work)")


@contextmanager
def render_budget() -> Iterator[RenderBudget]:
    """A fresh budget for the renders in this block, on this thread."""
    previous = getattr(_state, "budget", None)
    _state.budget = budget = RenderBudget()
    try:
        yield budget
    finally:
        _state.budget = previous


def _budget() -> RenderBudget | None:
    return getattr(_state, "budget", None)


def _step() -> None:
    budget = getattr(_state, "budget", None)
    if budget is not None:
        budget.step()


# ---- sizes ----------------------------------------------------------------------------------------


def estimate_size(value: Any, limit: int = MAX_RENDER_CHARS) -> int:
    """Roughly how long `str(value)` would be, without building it; stops counting past `limit`
    (containers that share parts, e.g. x + [x] repeated, would print exponentially long)."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, TEXT):
            total += len(item) + 2
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + 2 * len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1
        else:
            total += 8
    return total


def _refuse_longer(size: int, what: str) -> None:
    if size > MAX_RENDER_CHARS:
        raise RenderLimitError(f"{what} would be longer than {MAX_RENDER_CHARS} characters")


def _int_over(value: Any, bound: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > bound


def _check_width(width: Any, what: str) -> None:
    if _int_over(width, MAX_RENDER_CHARS):
        raise RenderLimitError(f"{what} width {width} is too large")


def _check_args(args: Iterable[Any], what: str) -> None:
    for arg in args:
        _refuse_longer(estimate_size(arg), f"an argument of {what}")


def _check_printf(fmt: str | bytes | bytearray, args: Any) -> None:
    """`fmt % args`: no width or precision past the bound, literal or given by `*`."""
    if not isinstance(fmt, str):
        fmt = bytes(fmt).decode("latin-1")   # the same directives, one character per byte
    values = args if isinstance(args, tuple) else (args,)
    for match in _PRINTF.finditer(fmt):
        for group in match.groups():
            if group == "*":
                if any(_int_over(v, MAX_RENDER_CHARS) for v in values):
                    raise RenderLimitError("a '*' width in a % format is too large")
            elif group is not None and int(group) > MAX_RENDER_CHARS:
                raise RenderLimitError(f"a width of {group} in a % format is too large")
    _check_args(values if not isinstance(args, dict) else args.values(), "a % format")


def _check_format(fmt: str, args: tuple, kwargs: dict) -> None:
    """`fmt.format(*args, **kwargs)`: no width past the bound, literal or nested."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error itself
    for _literal, _field, spec, _conversion in fields:
        if not spec:
            continue
        if any(int(d) > MAX_RENDER_CHARS for d in _DIGITS.findall(spec)):
            raise RenderLimitError(f"a width in format spec {spec!r} is too large")
        if "{" in spec and any(_int_over(v, MAX_RENDER_CHARS) for v in (*args, *kwargs.values())):
            raise RenderLimitError("a nested width in a format spec is too large")
    _check_args((*args, *kwargs.values()), "format()")


def _replace_size(text: str | bytes, old: str | bytes, new: str | bytes, count: Any = -1) -> int:
    occurrences = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def _join_size(separator: str, items: list) -> int:
    return len(separator) * max(0, len(items) - 1) + estimate_size(items, MAX_RENDER_CHARS + 1)


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _check_str_method(text: str | bytes | bytearray, name: str, args: tuple, kwargs: dict) -> tuple:
    """Refuse a str (or bytes) method call that would allocate past the bound; returns the (possibly
    materialized) args to call it with. (`format` is bounded in `wrap_str_format`.)"""
    if name in _WIDTH_METHODS:
        _check_width(_arg(args, kwargs, 0, "width"), f"str.{name}")
    elif name == "expandtabs":
        tabsize = _arg(args, kwargs, 0, "tabsize", 8)
        if isinstance(tabsize, int):
            _refuse_longer(len(text) + text.count("\t" if isinstance(text, str) else b"\t") * max(0, tabsize),
                           "str.expandtabs")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], TEXT) and isinstance(args[1], TEXT):
        _refuse_longer(_replace_size(text, args[0], args[1], _arg(args, kwargs, 2, "count", -1)), "str.replace")
    elif name == "join" and args:
        items = list(args[0])
        _refuse_longer(_join_size(text, items), "str.join")
        return (items, *args[1:])
    return args


def _int_text(value: int) -> str:
    return str(value) if value.bit_length() <= 64 else f"<a {value.bit_length()}-bit integer>"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    """`base ** exponent` on integers: the result's bits, from both operands, before computing it."""
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
        if math.log2(abs(base)) * exponent > MAX_INT_BITS:
            raise RenderLimitError(f"{_int_text(base)} ** {_int_text(exponent)} is too large "
                                   f"(more than {MAX_INT_BITS} bits)")


def _check_product(left: Any, right: Any) -> None:
    """`left * right`: integers by their bits; a repeated string or list by its printed size (a list
    of lists counts what it holds: repeating it again and again nests copies exponentially)."""
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise RenderLimitError(f"a product of a {left.bit_length()}-bit and a {right.bit_length()}-bit "
                                   f"integer is too large (more than {MAX_INT_BITS} bits)")
        return
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, (*TEXT, list, tuple)) and isinstance(n, int) and n > 0:
            size = len(seq) if isinstance(seq, TEXT) else estimate_size(seq, MAX_RENDER_CHARS // n + 1)
            if size * n > MAX_RENDER_CHARS:
                raise RenderLimitError(f"repetition of {len(seq)} items {_int_text(n)} times is too large")


# ---- filters and globals --------------------------------------------------------------------------


def _bounded_filter(original: Callable, check: Callable[[Any, tuple, dict], Any]) -> Callable:
    """`original` with `check(value, args, kwargs)` first; keeps Jinja's pass_* marker, so the
    value is after the context/environment argument when the original takes one."""
    offset = 1 if hasattr(original, "jinja_pass_arg") else 0

    @functools.wraps(original)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        head, value, rest = args[:offset], args[offset], args[offset + 1:]
        replaced = check(value, rest, kwargs)
        if replaced is not None:
            value = replaced
        return original(*head, value, *rest, **kwargs)

    return bounded


def _center_check(value: Any, args: tuple, kwargs: dict) -> None:
    _check_width(_arg(args, kwargs, 0, "width", 80), "center")


def _indent_check(value: Any, args: tuple, kwargs: dict) -> None:
    width = _arg(args, kwargs, 0, "width", 4)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _check_width(per_line, "indent")
    _refuse_longer(len(str(value)) + (str(value).count("\n") + 1) * max(0, per_line), "indent")


def _replace_check(value: Any, args: tuple, kwargs: dict) -> None:
    old, new = _arg(args, kwargs, 0, "old"), _arg(args, kwargs, 1, "new")
    if isinstance(old, str) and isinstance(new, str):
        count = _arg(args, kwargs, 2, "count")
        _refuse_longer(_replace_size(str(value), old, new, -1 if count is None else count), "replace")


def _format_check(value: Any, args: tuple, kwargs: dict) -> None:
    if isinstance(value, str):
        _check_printf(value, args if not kwargs else kwargs)


def _wordwrap_check(value: Any, args: tuple, kwargs: dict) -> None:
    text = str(value)
    width = _arg(args, kwargs, 0, "width", 79)
    wrapstring = _arg(args, kwargs, 2, "wrapstring") or "\n"
    if isinstance(width, int) and width > 0 and isinstance(wrapstring, str):
        breaks = len(text) // width + text.count("\n") + 1
        _refuse_longer(len(text) + breaks * len(wrapstring), "wordwrap")


def _join_check(value: Any, args: tuple, kwargs: dict) -> list:
    items = list(value)
    separator = _arg(args, kwargs, 0, "d", "")
    _refuse_longer(_join_size(separator if isinstance(separator, str) else "", items), "join")
    return items


def _count_check(name: str, position: int, keyword: str) -> Callable[[Any, tuple, dict], None]:
    def check(value: Any, args: tuple, kwargs: dict) -> None:
        if _int_over(_arg(args, kwargs, position, keyword), MAX_RANGE):
            raise RenderLimitError(f"{name} count is too large (at most {MAX_RANGE})")
    return check


def _size_check(name: str) -> Callable[[Any, tuple, dict], None]:
    def check(value: Any, args: tuple, kwargs: dict) -> None:
        _refuse_longer(estimate_size(value), name)
    return check


_FILTER_CHECKS: dict[str, Callable[[Any, tuple, dict], Any]] = {
    "center": _center_check,
    "indent": _indent_check,
    "replace": _replace_check,
    "format": _format_check,
    "wordwrap": _wordwrap_check,
    "join": _join_check,
    "slice": _count_check("slice", 0, "slices"),
    "batch": _count_check("batch", 0, "linecount"),
    "string": _size_check("string"),
    "pprint": _size_check("pprint"),
    "tojson": _size_check("tojson"),
}


def _bounded_lipsum(original: Callable) -> Callable:
    @functools.wraps(original)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # noqa: A002
        if isinstance(n, int) and isinstance(max, int) and n * max > MAX_LIPSUM_WORDS:
            raise RenderLimitError(f"lipsum of {n} x {max} words is too large (at most {MAX_LIPSUM_WORDS})")
        return original(n, html, min, max)
    return lipsum


# ---- the environment --------------------------------------------------------------------------------


def _count_output(value: Any) -> Any:
    """`finalize`: every `{{ }}` output spends its size (constants too, at compile time: no budget)."""
    budget = _budget()
    if budget is not None:
        size = len(value) if isinstance(value, str) else estimate_size(value, min(budget.chars, MAX_RENDER_CHARS) + 1)
        _refuse_longer(size, "an output expression")
        budget.spend(chars=size)
    return value


def _literal_chars(body: list[nodes.Node]) -> int:
    """The literal text a loop body writes per iteration (nested loops count their own)."""
    total, stack = 0, list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, nodes.For):
            stack.extend(node.iter_child_nodes())
    return total


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with the bounds of this module's docstring."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any):
        super().__init__(finalize=_count_output, **options)
        for name, check in _FILTER_CHECKS.items():
            if name in self.filters:
                self.filters[name] = _bounded_filter(self.filters[name], check)
        if "lipsum" in self.globals:
            self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])

    # -- compile time: loops, assignments and concatenations get their guards
    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _add_guards(super()._parse(source, name, filename))

    # -- run time
    def guard_loop(self, iterable: Any, literal: int) -> Iterator[Any]:
        budget = _budget()
        for item in iterable:
            if budget is not None:
                budget.spend(iterations=1, chars=literal)
                budget.step()
            yield item

    def guard_value(self, value: Any) -> Any:
        size = len(value) if isinstance(value, str) else estimate_size(value, MAX_RENDER_CHARS + 1)
        _refuse_longer(size, "a value")
        return value

    def guard_concat(self, values: list) -> str:
        _refuse_longer(sum(len(v) if isinstance(v, str) else estimate_size(v, MAX_RENDER_CHARS + 1) for v in values),
                       "a ~ concatenation")
        return "".join([str(v) for v in values])

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        _step()
        if op == "**":
            _check_power(left, right)
        if op == "*":
            _check_product(left, right)
        if op == "+" and isinstance(left, (*TEXT, list, tuple)) and isinstance(right, (*TEXT, list, tuple)):
            _refuse_longer(len(left) + len(right), "a + concatenation")
        if op == "%" and isinstance(left, TEXT):
            _check_printf(left, right)
        return super().call_binop(context, op, left, right)

    def call_filter(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        _step()  # filters applied by name, once per item: map('upper'), select('odd'), ...
        return super().call_filter(name, value, *args, **kwargs)

    def call_test(self, name: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        _step()
        return super().call_test(name, value, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja wraps `str.format`/`format_map` when they are looked up; bound them there too."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map:
                _check_format(text, (), args[0] if args and isinstance(args[0], dict) else {})
            else:
                _check_format(text, args, kwargs)
            return wrapped(*args, **kwargs)

        return bounded

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        _step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, TEXT) and type(__obj).__name__ == "builtin_function_or_method":
            args = _check_str_method(owner, __obj.__name__, args, kwargs)
        elif isinstance(__obj, (Macro, LoopContext)):
            # what a macro or a recursive loop is given is a value bound to a name, as `{% set %}`
            # is: nested copies of one value passed down a recursion would compare for ever
            for arg in (*args, *kwargs.values()):
                __self.guard_value(arg)
        return super().call(__context, __obj, *args, **kwargs)


def _guard(name: str, node: nodes.Node, *args: nodes.Expr) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), [node, *args], [], None, None)
    call.set_lineno(node.lineno or 1)
    return call


def _add_guards(tree: nodes.Template) -> nodes.Template:
    """Wrap every loop's iterable, `{% set %}`/`{% with %}` value and `~` concatenation in a runtime guard."""

    def visit(node: nodes.Node) -> nodes.Node:
        for field in node.fields:
            value = getattr(node, field, None)
            if isinstance(value, nodes.Node):
                setattr(node, field, visit(value))
            elif isinstance(value, list):
                setattr(node, field, [visit(item) if isinstance(item, nodes.Node) else item for item in value])
        if isinstance(node, nodes.For):
            node.iter = _guard("guard_loop", node.iter, nodes.Const(_literal_chars(node.body)))
        elif isinstance(node, nodes.Assign):
            node.node = _guard("guard_value", node.node)
        elif isinstance(node, nodes.With):
            node.values = [_guard("guard_value", value) for value in node.values]
        elif isinstance(node, nodes.Concat):
            listed = nodes.List(list(node.nodes))
            listed.set_lineno(node.lineno or 1)
            return _guard("guard_concat", listed)
        return node

    visit(tree)
    return tree


__all__ = ["MAX_LOOP_ITERATIONS", "MAX_RENDER_CHARS", "MAX_RENDER_WORK", "BoundedSandbox", "RenderBudget", "RenderLimitError",
           "estimate_size", "render_budget"]
