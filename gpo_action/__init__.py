"""gpo-action: keep the prompts of an LLM product from regressing.

The public surface is re-exported lazily so that `import gpo_action` stays cheap:
nothing here imports litellm, GitPython or llama-cpp.
"""

from __future__ import annotations

__version__ = "0.1.0"

from gpo_action.errors import (  # noqa: E402  (cheap, stdlib-only)
    ConfigError,
    GitError,
    GitHubError,
    GpoError,
    InputError,
    ProviderError,
    SuiteError,
    TemplateError,
)

__all__ = [
    "__version__",
    "GpoError",
    "InputError",
    "ConfigError",
    "TemplateError",
    "SuiteError",
    "ProviderError",
    "GitError",
    "GitHubError",
]
