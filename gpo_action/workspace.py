"""A loaded project: its config, its suites, the models they use and an LLM client built from it.

The library entry for every command: `Workspace.open(path, env=...)`, then `evaluate(...)`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from gpo_action.config import Config, load_config
from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob, ProgressFn, evaluate_from_cache, evaluate_jobs, render_limited
from gpo_action.llm.defaults import default_model
from gpo_action.llm.types import ModelConfig
from gpo_action.results import SuiteResult
from gpo_action.suites import Suite, resolve_suites
from gpo_action.templates import load_template

NoteFn = Callable[[str], None]


@dataclass
class Workspace:
    config: Config
    notes: NoteFn = field(default=lambda message: None)
    _client: object | None = None

    @classmethod
    def open(cls, config_path: str | os.PathLike | None = None, notes: NoteFn | None = None,
             tree: str | os.PathLike | None = None, *, env: Mapping[str, str] | None = None) -> "Workspace":
        """`tree`: the directory every path stays inside (default: the repository, see `containment`).
        `env`: where `api_key_env` names are looked up (`config.environ`; None: os.environ, which
        only the CLI should rely on: a library caller passes the env it was given)."""
        return cls(load_config(Path(config_path) if config_path else None, env=env, tree=tree),
                   notes or (lambda message: None))

    @property
    def root(self) -> Path:
        return self.config.root

    def close(self) -> None:
        """Close the client, if one was made: its worker processes, loop and cache."""
        if self._client is not None:
            self._client.close()
            cache = self._client.cache
            if cache is not None:
                cache.close()

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def suites(self, names: Sequence[str] = ()) -> list[Suite]:
        """Every configured suite, or those named (by suite name or file path)."""
        suites = resolve_suites(self.config)
        if not names:
            return suites
        chosen = []
        for name in names:
            hits = [s for s in suites if name in (s.name, s.path) or _same_file(self.root, name, s.path)]
            if not hits:
                known = ", ".join(s.name for s in suites) or "none"
                raise InputError(f"no suite named {name!r}", hint=f"known suites: {known}")
            chosen.extend(h for h in hits if h not in chosen)
        return chosen

    def task_model(self, suite: Suite | None = None) -> ModelConfig:
        if suite is not None and suite.model is not None:
            return suite.model
        model = self.config.model("task")
        if model is None:
            model, note = default_model(self.config.environ)
            self.notes(note)
        return model

    @property
    def client(self):
        if self._client is None:
            from gpo_action.llm.cache import ResponseCache
            from gpo_action.llm.client import ClientSettings, LLMClient
            from gpo_action.llm.worker_pool import default_size

            cfg = self.config
            cache = None
            if cfg.cache.enabled:
                cache = ResponseCache(cfg.cache_path, notes=self.notes, busy_timeout=cfg.cache.lock_timeout)
            settings = ClientSettings(
                concurrency=cfg.concurrency,
                timeout=cfg.timeout,
                max_retries=cfg.retries.max,
                retry_base=cfg.retries.base,
                retry_max=cfg.retries.max_wait,
                processes=default_size(cfg.environ),  # GPO_WORKERS from the env the config was loaded with
                rate_limits=cfg.rate_limits(),
            )
            # env: the providers' settings too (local/: GPO_LOCAL_THREADS, GPO_SMOLLM2_GGUF)
            self._client = LLMClient(settings, cache=cache, notes=self.notes, base_dir=self.root, env=cfg.environ)
        return self._client

    def skip_unavailable(self, env: Mapping[str, str] | None = None) -> None:
        """Serve every model that cannot run with `env` (None: the config's) from the cache only (no key,
        no llama-cpp: `llm.availability`): its other cases end as "Skipped" instead of being sent to fail."""
        from gpo_action.llm.availability import missing_key_envs, model_status

        env, missing = self.config.environ if env is None else env, missing_key_envs(self.config)

        def reason(model: ModelConfig) -> str | None:
            status = model_status(model, env, missing)
            return None if status.available else status.reason

        self.client.skip_uncached(reason)

    def jobs(self, suites: Sequence[Suite]) -> list[EvalJob]:
        return [EvalJob(s, load_template(self.root / s.prompt, tree=self.config.tree), self.task_model(s))
                for s in suites]

    def evaluate(self, suites: Sequence[Suite], on_progress: ProgressFn | None = None) -> list[SuiteResult]:
        return self.evaluate_jobs(self.jobs(suites), on_progress)

    def evaluate_jobs(self, jobs: Sequence[EvalJob], on_progress: ProgressFn | None = None) -> list[SuiteResult]:
        """`jobs` (e.g. a shard's cases of each suite) evaluated in one batch; each suite's notes to `notes`."""
        results = evaluate_jobs(jobs, self.client, judge=self.config.model("judge"),
                                on_progress=on_progress, embedding=self.config.model("embedding"), embedder=self.client)
        for result in results:
            for note in result.notes:
                self.notes(f"suite {result.name}: {note}")
        return results

    def evaluate_cached(self, suites: Sequence[Suite]) -> list[SuiteResult]:
        """What an interrupted `evaluate` obtained: cached answers scored, the rest NOT_EVALUATED."""
        return evaluate_from_cache(self.jobs(suites), self.client.cache, judge=self.config.model("judge"),
                                   embedding=self.config.model("embedding"))


def _same_file(root: Path, given: str, suite_path: str) -> bool:
    try:
        return Path(given).resolve() == (root / suite_path).resolve()
    except OSError:
        return False


def eval_exit_code(results: Sequence[SuiteResult], max_error_rate: float) -> int:
    """3 when a suite's provider errors exceed the tolerance, else 2 when a case went past a render
    limit (bad input, though every other case was evaluated) or was skipped (its model cannot run
    here and the cache lacked it: `skip_unavailable`; an eval that evaluated nothing does not pass),
    else 1 when a suite is below its floor, else 0."""
    from gpo_action.compare import skipped_count

    for r in results:
        provider_errors = r.errors - render_limited([r]) - skipped_count(r)
        if provider_errors and provider_errors / len(r.cases) > max_error_rate:
            return 3
    if render_limited(results) or any(skipped_count(r) for r in results):
        return 2
    if any(r.below_min for r in results):
        return 1
    return 0
