"""gpo.yaml: schema, defaults, secrets, and errors that name the file, the line and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gpo_action.config import Config, load_config
from gpo_action.errors import ConfigError, InputError
from gpo_action.llm.types import ModelConfig
from gpo_action.yamlsource import load_yaml, parse_yaml


def write(tmp_path: Path, text: str, name: str = "gpo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(path: Path, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return info.value


# --- defaults and loading ------------------------------------------------------------------------


def test_empty_file_means_all_defaults(tmp_path):
    config = load_config(write(tmp_path, ""))
    assert config.root == tmp_path.absolute()
    assert config.path == (tmp_path / "gpo.yaml").absolute()
    assert config.model("task") is None and config.model("embedding") is None
    assert [s.eval for s in config.suites] == ["evals/*.yaml"]
    assert (config.gate.max_drop, config.gate.alpha, config.gate.min_score) == (0.02, 0.05, None)
    opt = config.optimize
    assert (opt.when, opt.preset, opt.steps, opt.candidates, opt.deliver) == ("regression", "gpo", 6, 4, ["suggestion", "comment"])
    assert (opt.budget.max_calls, opt.budget.max_usd, opt.budget.max_seconds, opt.budget.max_tokens) == (400, 2.0, 900.0, None)
    assert (config.concurrency, config.timeout, config.max_error_rate) == (16, 60.0, 0.05)
    assert (config.retries.max, config.retries.base, config.retries.max_wait) == (4, 0.5, 30.0)
    assert (config.cache.path, config.cache.enabled) == (".gpo/cache.sqlite", True)
    assert config.cache_path == tmp_path.absolute() / ".gpo/cache.sqlite"


def test_empty_sections_mean_their_defaults(tmp_path):
    config = load_config(write(tmp_path, "models:\ngate:\noptimize:\n"))
    assert config.gate.max_drop == 0.02 and config.optimize.steps == 6


def test_default_path_is_gpo_yaml_in_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path, "concurrency: 3\n")
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.concurrency == 3 and config.root == tmp_path.absolute()


def test_missing_file_hints_at_init(tmp_path):
    err = config_error(tmp_path / "gpo.yaml")
    assert "not found" in str(err) and "gpo-action init" in str(err)
    assert isinstance(err, InputError) and err.exit_code == 2


def test_a_full_config(tmp_path):
    path = write(tmp_path, """\
        models:
          task: openai/gpt-4o-mini
          optimizer: {model: openai/gpt-4o, temperature: 1, max_tokens: 800}
          judge:
            model: anthropic/claude-3-5-haiku
            api_base: http://127.0.0.1:9/v1
            custom_llm_provider: openai
          embedding: null
        suites:
          - evals/a.yaml
          - {eval: "evals/b*.yaml", model: openai/gpt-4.1, min_score: 0.8}
        gate: {max_drop: 0.05, alpha: 0.1, min_score: 0.5}
        optimize:
          when: always
          preset: opro
          steps: 3
          candidates: 2
          budget: {max_calls: 50, max_usd: 0, max_seconds: 60, max_tokens: 10000}
          deliver: [commit]
        concurrency: 4
        timeout: 5
        retries: {max: 0, base: 0.01, max_wait: 0.05}
        max_error_rate: 0.2
        cache: {path: .cache/x.sqlite, enabled: false}
        """)
    config = load_config(path)
    assert config.model("task") == ModelConfig("openai/gpt-4o-mini", {})
    assert config.model("optimizer") == ModelConfig("openai/gpt-4o", {"temperature": 1.0, "max_tokens": 800})
    assert config.model("judge") == ModelConfig(
        "anthropic/claude-3-5-haiku", {"api_base": "http://127.0.0.1:9/v1", "custom_llm_provider": "openai"})
    assert config.model("embedding") is None
    assert [(s.eval, s.min_score) for s in config.suites] == [("evals/a.yaml", None), ("evals/b*.yaml", 0.8)]
    assert config.suites[1].model.to_model_config() == ModelConfig("openai/gpt-4.1", {})
    assert config.optimize.budget.max_tokens == 10000 and config.optimize.deliver == ["commit"]
    assert config.retries.max == 0 and config.cache.enabled is False and config.timeout == 5.0
    with pytest.raises(ValueError, match="known: task, optimizer, judge, embedding"):
        config.model("writer")


def test_a_config_built_in_code_has_defaults_and_the_cwd_as_root():
    config = Config()
    assert config.path is None and config.root == Path.cwd() and config.line_of(("models",)) is None


# --- secrets ---------------------------------------------------------------------------------


def test_api_key_env_is_resolved_but_never_printable(tmp_path):
    path = write(tmp_path, """\
        models:
          task: {model: openai/gpt-4o-mini, api_key_env: MY_KEY, temperature: 0}
        """)
    config = load_config(path, env={"MY_KEY": "sk-very-secret"})
    task = config.model("task")
    assert task.params["api_key"] == "sk-very-secret"
    assert task.public_params() == {"temperature": 0.0}
    assert "sk-very-secret" not in repr(config) + str(config.model_dump()) + config.model_dump_json()
    assert config.models.task.key_missing is False


def test_an_unset_api_key_env_leaves_the_key_out(tmp_path):
    path = write(tmp_path, "models:\n  task: {model: openai/x, api_key_env: NOT_SET_ANYWHERE}\n")
    config = load_config(path, env={})
    assert "api_key" not in config.model("task").params
    assert config.models.task.key_missing is True


def test_an_inline_api_key_is_refused_at_its_line_without_echoing_it(tmp_path):
    path = write(tmp_path, """\
        models:
          task:
            model: openai/gpt-4o-mini
            api_key: sk-live-123456
        """)
    err = config_error(path)
    assert err.path == str(path) and err.line == 4
    assert "models.task.api_key" in str(err) and "api_key_env: NAME" in str(err)
    assert "sk-live-123456" not in str(err)


def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(tmp_path):
    err = config_error(write(tmp_path, "models:\n  judge: {model: x, api_key_env: sk-live-999}\n"))
    assert err.line == 2 and "models.judge.api_key_env" in str(err) and "NAME of an environment variable" in str(err)
    assert "sk-live-999" not in str(err)


# --- errors with file, line and key ------------------------------------------------------------


def test_unknown_nested_key_names_file_line_and_allowed_keys(tmp_path):
    path = write(tmp_path, """\
        # comment
        gate:
          max_drop: 0.1

        models:
          task: openai/gpt-4o-mini
          taks: openai/gpt-4o
        """)
    err = config_error(path)
    assert err.line == 7
    assert str(err).startswith(f"{path}:7: models.taks: unknown key (allowed: task, optimizer, judge, embedding)")
    assert "did you mean 'task'" in str(err)


def test_wrong_type_names_file_line_and_key(tmp_path):
    path = write(tmp_path, """\
        models:
          task: openai/gpt-4o-mini
        optimize:
          budget:
            max_calls: lots
        """)
    err = config_error(path)
    assert err.line == 5 and err.path == str(path)
    assert "optimize.budget.max_calls: Input should be a valid integer (got 'lots')" in str(err)


def test_every_problem_is_listed_sorted_by_line(tmp_path):
    path = write(tmp_path, """\
        concurrency: 0
        colour: blue
        optimize:
          when: sometimes
          deliver: [comment, email]
        gate: {alpha: 1}
        """)
    err = config_error(path)
    lines = str(err).splitlines()
    assert err.line == 1 and len(lines) == 5
    assert lines[0] == f"{path}:1: concurrency: Input should be greater than or equal to 1 (got 0)"
    assert lines[1].startswith(f"{path}:2: colour: unknown key (allowed: models, suites, gate, optimize,")
    assert lines[2].startswith(f"{path}:4: optimize.when: Input should be 'never', 'regression', 'below-min' or 'always'")
    assert lines[3].startswith(f"{path}:5: optimize.deliver.1: Input should be 'suggestion', 'commit' or 'comment'")
    assert lines[4] == f"{path}:6: gate.alpha: Input should be less than 1 (got 1)"
    assert [p[0] for p in err.problems] == [1, 2, 4, 5, 6]


@pytest.mark.parametrize("text, line, key", [
    ("max_error_rate: 1.5\n", 1, "max_error_rate"),
    ("timeout: 0\n", 1, "timeout"),
    ("concurrency: 2000\n", 1, "concurrency"),
    ("concurrency: 4.5\n", 1, "concurrency"),
    ("cache: {enabled: 'yes'}\n", 1, "cache.enabled"),
    ("retries:\n  max: 21\n", 2, "retries.max"),
    ("gate:\n  max_drop: -0.1\n", 2, "gate.max_drop"),
    ("optimize:\n  steps: 0\n", 2, "optimize.steps"),
    ("optimize:\n  budget:\n    max_usd: -1\n", 3, "optimize.budget.max_usd"),
    ("suites:\n  - {eval: a.yaml, min_score: 2}\n", 2, "suites.0.min_score"),
    ("suites:\n  - {path: a.yaml}\n", 2, "suites.0.path"),
    ("suites: []\n", 1, "suites"),
    ("models:\n  task: {temperature: 0}\n", 2, "models.task.model"),
    ("models:\n  task:\n    model: x\n    temperature: 5\n", 4, "models.task.temperature"),
    ("models:\n  task: 42\n", 2, "models.task"),
])
def test_invalid_values(tmp_path, text, line, key):
    err = config_error(write(tmp_path, text))
    assert err.line == line and f": {key}: " in str(err), str(err)


def test_a_misspelt_model_param_is_caught(tmp_path):
    err = config_error(write(tmp_path, "models:\n  task:\n    model: x\n    temprature: 0.2\n"))
    assert err.line == 2 and "did you mean 'temperature'" in str(err)


def test_a_top_level_list_is_refused(tmp_path):
    err = config_error(write(tmp_path, "- models\n- gate\n"))
    assert err.line == 1 and "expected a mapping" in str(err)


# --- malformed YAML ----------------------------------------------------------------------------


def test_tabs_give_the_line(tmp_path):
    path = tmp_path / "gpo.yaml"
    path.write_text("gate:\n  max_drop: 0.1\n\talpha: 0.1\n", encoding="utf-8")
    err = config_error(path)
    assert err.line == 3 and "invalid YAML" in str(err) and "spaces, not tabs" in str(err)


def test_bad_indentation_gives_the_line(tmp_path):
    path = write(tmp_path, "models:\n  task: a\n    judge: b\ngate: {}\n")
    err = config_error(path)
    assert err.line == 3 and str(err).startswith(f"{path}:3: invalid YAML")


def test_unclosed_flow_mapping_gives_a_line(tmp_path):
    err = config_error(write(tmp_path, "gate: {max_drop: 0.1\nconcurrency: 3\n"))
    assert err.line is not None and err.line >= 2 and "invalid YAML" in str(err)


def test_a_duplicate_key_is_an_error(tmp_path):
    err = config_error(write(tmp_path, "concurrency: 4\ngate: {}\nconcurrency: 8\n"))
    assert err.line == 3 and "duplicate key 'concurrency' (first written at line 1)" in str(err)


def test_python_tags_are_refused(tmp_path):
    err = config_error(write(tmp_path, "concurrency: !!python/object/apply:os.system ['true']\n"))
    assert err.line == 1 and "invalid YAML" in str(err)


def test_invalid_utf8_gives_the_line(tmp_path):
    path = tmp_path / "gpo.yaml"
    path.write_bytes(b"concurrency: 4\n# caf\xe9\n")
    err = config_error(path)
    assert err.line == 2 and "UTF-8" in str(err)


# --- yamlsource ----------------------------------------------------------------------------------


def test_line_of_walks_keys_and_indices_and_falls_back_to_the_parent(tmp_path):
    doc = parse_yaml(textwrap.dedent("""\
        a:
          b:
            - x
            - {c: 1,
               d: 2}
        e: 3
        """), "t.yaml")
    assert doc.data == {"a": {"b": ["x", {"c": 1, "d": 2}]}, "e": 3}
    assert doc.line_of(()) == 1
    assert doc.line_of(("a", "b")) == 2
    assert doc.line_of(("a", "b", 0)) == 3
    assert doc.line_of(("a", "b", 1, "d")) == 5
    assert doc.line_of(("a", "b", 1, "missing")) == 4
    assert doc.line_of(("a", "b", 7)) == 2
    assert doc.line_of(("e",)) == 6
    assert parse_yaml("", "empty.yaml").line_of(("a",)) is None


def test_load_yaml_raises_the_callers_error_class(tmp_path):
    class MyError(InputError):
        pass

    path = tmp_path / "x.yaml"
    path.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(MyError) as info:
        load_yaml(path, error=MyError, display="x.yaml")
    assert info.value.path == "x.yaml" and info.value.line == 2
    with pytest.raises(MyError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml", error=MyError)
