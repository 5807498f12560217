"""The CLI: every command has --help, unbuilt commands say so with exit 2, errors never trace back."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import invoke_shoptune, run_shoptune

from shoptune.main import cli


def _all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found.extend(_all_commands(command, path))
    return found


COMMANDS = _all_commands(cli)


def test_root_help_lists_the_stage_groups() -> None:
    done = run_shoptune("--help")
    assert done.returncode == 0
    for group in ("models", "data", "train", "merge", "eval", "serve", "demo"):
        assert f"  {group} " in done.stdout
    assert "Exit codes:" in done.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: cli {' '.join(command)}" in result.output
    assert len(result.output.splitlines()) >= 3


def test_train_reports_every_config_problem_before_anything_else() -> None:
    done = invoke_shoptune(
        "train", "configs/tiny-qwen.yaml", "--set", "no_such_key=1", "--set", "train.learning_rate=abc"
    )
    assert done.returncode == 2
    assert "2 problems" in done.stderr
    assert "no_such_key: unknown key" in done.stderr
    assert "train.learning_rate: expected a number, got 'abc'" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_show_prints_resolved_yaml(tmp_path: Path) -> None:
    done = invoke_shoptune("config", "show", "configs/qwen2.5-7b-qlora.yaml", "--set", "train.lora_r=8")
    assert done.returncode == 0, done.stderr
    assert "adapter: qlora" in done.stdout and "lora_r: 8" in done.stdout


def test_chat_answers_with_the_model(tiny_qwen_dir: Path) -> None:
    done = invoke_shoptune("chat", "--config", "configs/tiny-qwen.yaml", "--max-new-tokens", "3", "你好")
    assert done.returncode == 0, done.stderr
    assert "tiny-qwen2.5: 3 tokens" in done.stderr


def test_unknown_model_is_a_clear_error() -> None:
    done = invoke_shoptune("chat", "--model", "gpt-17", "hi")
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown model 'gpt-17'")


def test_version() -> None:
    done = invoke_shoptune("--version")
    assert done.returncode == 0 and done.stdout.startswith("shoptune, version ")
