"""Configs: every shipped YAML validates; bad configs report every problem with file and key."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from pydantic import ValidationError

from shoptune.config import ConfigError, ShoptuneConfig, TrainConfig, load_config, write_resolved_config
from shoptune.config.schema import DEFAULT_REWARD_WEIGHTS, REWARDS
from shoptune.core.paths import CONFIGS_DIR
from shoptune.main import cli

SHIPPED = sorted(CONFIGS_DIR.glob("*.yaml"))


def test_the_required_configs_ship() -> None:
    names = {path.name for path in SHIPPED}
    assert {"cpu-smollm2.yaml", "tiny-qwen.yaml", "qwen2.5-7b-lora.yaml", "qwen2.5-7b-qlora.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_loads_and_validates(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, ShoptuneConfig)
    assert config.name == path.stem


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_opens_with_the_command_that_runs_it(path: Path) -> None:
    header = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert header, f"{path.name} must open with a comment"
    assert any(f"shoptune train configs/{path.name}" in line or "shoptune demo" in line for line in header)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_resolved_config_round_trips(path: Path, tmp_path: Path) -> None:
    config = load_config(path, ["train.learning_rate=3e-4"])
    written = write_resolved_config(config, tmp_path)
    assert written == tmp_path / "config.yaml"
    assert load_config(written) == config
    assert not [p for p in tmp_path.iterdir() if p.name != "config.yaml"], "no temp files left behind"


def test_gpu_configs_are_bf16_lora_and_qlora_on_qwen_7b() -> None:
    lora = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml")
    qlora = load_config(CONFIGS_DIR / "qwen2.5-7b-qlora.yaml")
    assert (lora.model.name, lora.train.adapter, lora.train.precision) == ("qwen2.5-7b-instruct", "lora", "bf16")
    assert (qlora.train.adapter, qlora.train.precision) == ("qlora", "bf16")
    # qlora extends lora: everything it does not override is inherited.
    assert qlora.train.target_modules == lora.train.target_modules
    assert qlora.serve == lora.serve


def test_overrides_win_and_are_typed() -> None:
    config = load_config(
        CONFIGS_DIR / "tiny-qwen.yaml",
        [
            "train.learning_rate=1e-4",  # YAML 1.1 reads this as a string; a float field accepts it
            "train.max_steps=3",
            "train.target_modules=[q_proj, v_proj]",
            "data.system_prompt=Hi: you are a shop bot",  # string fields take the text verbatim
            "eval.gates={json_valid_rate: 0.5}",
            "model.path=null",
        ],
    )
    assert config.train.learning_rate == pytest.approx(1e-4)
    assert config.train.max_steps == 3
    assert config.train.target_modules == ("q_proj", "v_proj")
    assert config.data.system_prompt == "Hi: you are a shop bot"
    assert config.eval.gates == {"json_valid_rate": 0.5}
    assert config.model.path is None


def _problems(path: Path | None, overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(path, overrides)
    message = str(raised.value)
    assert message.count("\n  - ") == len(raised.value.problems)
    return [str(problem) for problem in raised.value.problems]


def test_an_unknown_key_and_a_bad_value_are_both_named() -> None:
    problems = _problems(CONFIGS_DIR / "tiny-qwen.yaml", ["no_such_key=1", "train.learning_rate=abc"])
    assert len(problems) == 2
    assert any("no_such_key: unknown key" in p and "--set no_such_key=1" in p for p in problems)
    assert any("train.learning_rate: expected a number, got 'abc'" in p for p in problems)


def test_every_problem_in_a_file_is_reported_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"  # 1
        "model:\n"  # 2
        "  name: tiny-qwen2.5\n"  # 3
        "  colour: red\n"  # 4  unknown key
        "train:\n"  # 5
        "  lora_r: 0\n"  # 6  impossible value
        "  learning_rate: -0.1\n"  # 7  impossible value
        "  precision: fp8\n"  # 8  not a choice
        "  gradient_checkpointing: maybe\n"  # 9  wrong type
        "  max_steps: 2.5\n"  # 10 wrong type
        "  epochs: 1\n"  # 11 fine (int for a float field)
        "  epochs: 2\n"  # 12 duplicate
        "serve:\n"  # 13
        "  vllm_port: 0\n",  # 14 impossible value
        encoding="utf-8",
    )
    problems = _problems(bad, [])
    expected = {
        f"{bad}:4: model.colour: unknown key",
        f"{bad}:6: train.lora_r: must be at least 1",
        f"{bad}:7: train.learning_rate: must be a positive number",
        f"{bad}:8: train.precision: must be one of",
        f"{bad}:9: train.gradient_checkpointing: expected true or false",
        f"{bad}:10: train.max_steps: expected an integer",
        f"{bad}:12: train.epochs: duplicate key",
        f"{bad}:14: serve.vllm_port: must be a TCP port",
    }
    for fragment in expected:
        assert any(p.startswith(fragment) for p in problems), f"missing {fragment!r} in {problems}"
    assert len(problems) == len(expected)


def test_suggests_the_key_you_meant() -> None:
    (problem,) = _problems(None, ["train.lerning_rate=1e-4"])
    assert "did you mean 'learning_rate'" in problem


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("train: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("train: 3\n", "train: expected a mapping"),
        (b"name: caf\xe9\n", "not valid UTF-8"),
        ("extends: missing.yaml\n", "missing.yaml: file not found"),
        ("extends: self.yaml\n", "`extends` cycle"),
    ],
)
def test_broken_files_are_reported_not_raised(tmp_path: Path, content: str | bytes, fragment: str) -> None:
    path = tmp_path / "self.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    problems = _problems(path, [])
    assert any(fragment in p for p in problems), problems


def test_missing_and_directory_config(tmp_path: Path) -> None:
    assert "file not found" in _problems(tmp_path / "nope.yaml", [])[0]
    assert "is a directory" in _problems(tmp_path, [])[0]


def test_bad_overrides_are_collected() -> None:
    problems = _problems(None, ["novalue", "train.lora_r.x=1", "train.lora_r=[1"])
    assert any("--set novalue: expected key=value" in p for p in problems)
    assert any("is not a section" in p for p in problems)
    assert any("cannot parse value" in p for p in problems)


def test_cross_section_check() -> None:
    problems = _problems(None, ["train.max_length=4096", "serve.max_model_len=2048"])
    assert any("serve.max_model_len" in p and "train.max_length" in p for p in problems)


def test_sections_validate_when_built_in_python() -> None:
    with pytest.raises(ValidationError) as raised:
        TrainConfig(lora_r=0, learning_rate=-1.0)
    assert {error["loc"] for error in raised.value.errors()} == {("lora_r",), ("learning_rate",)}
    assert "greater than or equal to 1" in str(raised.value) and "must be a positive number" in str(raised.value)


def _printed_schema() -> dict:
    result = CliRunner().invoke(cli, ["config", "schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_printed_json_schema_accepts_every_shipped_config(path: Path) -> None:
    validator = jsonschema.Draft202012Validator(_printed_schema())
    assert not list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8"))))


def test_printed_json_schema_rejects_what_the_loader_rejects() -> None:
    validator = jsonschema.Draft202012Validator(_printed_schema())
    bad = {"train": {"lora_r": 0, "lerning_rate": 1e-4, "precision": "fp8"}, "serve": {"dtype": 16}}
    failing = {tuple(error.absolute_path) for error in validator.iter_errors(bad)}
    assert {("train", "lora_r"), ("train",), ("train", "precision"), ("serve", "dtype")} <= failing


def test_method_was_the_adapter_in_older_configs(tmp_path: Path) -> None:
    """Configs and run folders from before `train.adapter` said `method: lora|qlora`: they still load."""
    path = tmp_path / "old.yaml"
    text = (CONFIGS_DIR / "tiny-qwen.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("  adapter: lora\n", "  method: lora\n"), encoding="utf-8")
    old = load_config(path)
    assert (old.train.method, old.train.adapter) == ("sft", "lora")
    problems = _problems(CONFIGS_DIR / "tiny-qwen.yaml", ["train.method=qlora"])
    assert any("train.method" in p and "is a train.adapter" in p for p in problems)


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        (["train.method=orpo", "train.batching=packed"], "train.batching", "padded batches"),
        (["train.method=kto", "train.batching=padding_free"], "train.batching", "padding_free: dpo only"),
        (["train.method=dpo", "train.group_by_length=true"], "train.group_by_length", "set it false"),
        (["train.method=kto", "train.per_device_batch_size=1"], "train.per_device_batch_size", "at least 2"),
        (["train.method=grpo", "train.batching=packed"], "train.batching", "padded batches"),
        (["train.method=grpo", "train.max_length=256"], "train.max_length", "leaves no room"),
        (["train.grpo.num_generations=1"], "train.grpo.num_generations", "must be at least 2"),
        (["train.method=rloo"], "train.method", "grpo"),
        (["train.preference.kinds=[wrong_field, made_up]"], "train.preference.kinds", "made_up"),
    ],
)
def test_preference_settings_that_cannot_train_are_named(overrides: list[str], field: str, fragment: str) -> None:
    problems = _problems(CONFIGS_DIR / "tiny-qwen.yaml", overrides)
    assert any(field in p and fragment in p for p in problems), problems


def test_preference_beta_defaults_to_each_methods_own() -> None:
    config = load_config(CONFIGS_DIR / "tiny-qwen.yaml", ["train.method=simpo"])
    assert config.train.preference.beta_for("simpo") == 2.0 and config.train.preference.beta_for("dpo") == 0.1
    set_beta = load_config(CONFIGS_DIR / "tiny-qwen.yaml", ["train.preference.beta=0.3"])
    assert set_beta.train.preference.beta_for("simpo") == 0.3


def test_grpo_rewards_are_named_from_the_registry_with_weights() -> None:
    config = load_config(CONFIGS_DIR / "tiny-qwen.yaml", ["train.method=grpo"])
    assert config.train.grpo.rewards == DEFAULT_REWARD_WEIGHTS and tuple(config.train.grpo.rewards) == REWARDS
    path = CONFIGS_DIR / "tiny-qwen.yaml"
    problems = _problems(path, ["train.grpo.rewards={exact_match: 1.0, politeness: 2.0}"])
    assert any("train.grpo.rewards" in p and "politeness" in p for p in problems), problems
    problems = _problems(path, ["train.grpo.rewards={exact_match: -1.0}"])
    assert any("train.grpo.rewards.exact_match" in p for p in problems), problems


def test_the_7b_grpo_recipe_goes_on_from_the_7b_sft_run_sampling_with_vllm() -> None:
    lora = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml")
    grpo = load_config(CONFIGS_DIR / "qwen2.5-7b-grpo.yaml")
    assert (grpo.train.method, grpo.train.adapter, grpo.train.precision) == ("grpo", "lora", "bf16")
    assert Path(grpo.train.init_adapter) == Path(lora.train.output_root) / lora.name
    assert grpo.train.learning_rate < lora.train.learning_rate and grpo.data == lora.data
    assert grpo.train.grpo.generation == "vllm_colocate" and grpo.train.grpo.num_generations == 8


def test_the_7b_dpo_recipe_goes_on_from_the_7b_sft_run() -> None:
    lora = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml")
    dpo = load_config(CONFIGS_DIR / "qwen2.5-7b-dpo.yaml")
    assert (dpo.train.method, dpo.train.adapter, dpo.train.precision) == ("dpo", "lora", "bf16")
    assert Path(dpo.train.init_adapter) == Path(lora.train.output_root) / lora.name
    assert dpo.train.learning_rate < lora.train.learning_rate and dpo.data == lora.data
