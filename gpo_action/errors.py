"""The one error tree of gpo-action.

    GpoError
    ├── InputError(message, path, line, hint)     exit 2: the user's files or flags are wrong
    │   ├── ConfigError                           gpo.yaml
    │   ├── TemplateError                         a prompt template
    │   │   └── TemplateLimitError                a render went past a sandbox bound (a case's error)
    │   ├── SuiteError                            an eval suite or its case files
    │   └── ReplayFileError                       a replay/ file is missing or has a malformed line
    ├── ProviderError(message, status, retryable)  a model call failed (exit 3 beyond tolerance)
    │   ├── RateLimited(retry_after)               429
    │   ├── ProviderTimeout                        no answer within the request timeout
    │   ├── ServerError                            5xx
    │   ├── BadResponse                            unparseable or empty reply
    │   ├── AuthError                              401/403, never retried
    │   └── ReplayMiss                             replay/ has no recording for the prompt
    ├── GitError                                   git state the run cannot use (exit 2)
    └── GitHubError                                the GitHub API refused or failed

A failed case is data (`CaseResult.error`), not an exception: provider errors are raised inside
the LLM client only, and come out of it as per-request results.

Anything else that escapes a command is an internal failure, gpo-action's and not the user's (a
bug, a report that cannot be written): the CLI prints it with its traceback and exits 4, which
never reads as a verdict. There is no class for it: it is whatever was not raised on purpose.
"""

from __future__ import annotations


class GpoError(Exception):
    """Root of every error gpo-action raises on purpose."""

    exit_code = 2


class InputError(GpoError):
    """Something in the user's input is wrong; the message names where and how to fix it."""

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, line: int | None = None, hint: str | None = None):
        self.message = message
        self.path = path
        self.line = line
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        text = f"{where}{self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(InputError):
    """gpo.yaml is malformed or invalid."""


class TemplateError(InputError):
    """A prompt template is missing, malformed or renders with an error."""


class TemplateLimitError(TemplateError):
    """A render went past a bound of the sandbox (size, loop iterations, CPU time). Evaluation
    records it as that case's error and goes on with the other cases."""


class SuiteError(InputError):
    """An eval suite or one of its case files is malformed."""


class ReplayFileError(InputError):
    """A replay file (the model `replay/<file.jsonl>`) is missing or has a malformed line."""


class ProviderError(GpoError):
    """A model call failed. `retryable` says whether the client may try again."""

    exit_code = 3
    retryable = False

    def __init__(self, message: str, status: int | None = None):
        self.message = message
        self.status = status
        super().__init__(message)


class RateLimited(ProviderError):
    retryable = True

    def __init__(self, message: str, status: int | None = 429, retry_after: float | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after
        self.headers = dict(headers or {})  # the answer's rate-limit headers (`llm.ratelimits.rate_headers`)


class ProviderTimeout(ProviderError):
    retryable = True


class ServerError(ProviderError):
    retryable = True


class BadResponse(ProviderError):
    retryable = True


class AuthError(ProviderError):
    retryable = False


class ReplayMiss(ProviderError):
    retryable = False


class GitError(GpoError):
    exit_code = 2


class GitHubError(GpoError):
    """The GitHub API refused or failed; `status` is the HTTP status when there was a response."""

    exit_code = 3

    def __init__(self, message: str, status: int | None = None):
        self.message = message
        self.status = status
        super().__init__(message)
