"""Bad input on purpose: malformed corpus files and broken configs, through the real CLI.

Each must give a message naming the file, line and field, a non-zero exit, no traceback, and
no partial output. The corpus lives in tests/bad_data/ (one defect per file); the 10 MB line
is written at run time so the repository stays small.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import invoke_shoptune

from shoptune.core.paths import CONFIGS_DIR

BAD = Path(__file__).parent / "bad_data"
TINY = CONFIGS_DIR / "tiny-qwen.yaml"

EXPECTED: dict[str, tuple[int | None, str]] = {
    # file: (line, what the message must say); None = a file-level problem
    "a_directory.jsonl": (None, "is a directory, expected a JSONL file"),
    "blank_lines_only.jsonl": (None, "file is empty"),
    "byte_order_mark.jsonl": (1, "byte-order mark"),
    "content_not_string.jsonl": (1, "messages[0].content: must be a string, got number"),
    "duplicate_ids.jsonl": (3, "id: duplicate id 'faq-1' (first on line 1)"),
    "duplicate_key_in_record.jsonl": (1, "duplicate key 'task'"),
    "empty_content.jsonl": (3, "messages[1].content: must not be empty"),
    "empty_file.jsonl": (None, "file is empty"),
    "ends_with_user.jsonl": (1, "messages[2].role: the last message must be the assistant's answer"),
    "extract_target_extra_field.jsonl": (1, "breaks schema product_query at (root): Additional properties"),
    "extract_target_is_a_list.jsonl": (1, "extraction target must be a JSON object, got array"),
    "extract_target_missing_field.jsonl": (1, "'color' is a required property"),
    "extract_target_not_json.jsonl": (1, "messages[1].content: extraction target is not JSON"),
    "extract_target_wrong_type.jsonl": (1, "breaks schema product_query at price_range"),
    "extract_without_schema.jsonl": (1, "schema: required when task is extract"),
    "gzip_bytes.jsonl": (None, "gzip-compressed"),
    "id_not_a_string.jsonl": (1, "id: must be a non-empty string, got 7"),
    "invalid_utf8.jsonl": (3, "not valid UTF-8: byte 0xff"),
    "line_is_an_array.jsonl": (2, "record: expected a JSON object, got array"),
    "messages_empty.jsonl": (1, "messages: must not be empty"),
    "messages_not_a_list.jsonl": (1, "messages: must be a list, got object"),
    "meta_not_an_object.jsonl": (1, "meta: must be a JSON object, got string"),
    "missing_id.jsonl": (1, "id: missing required key"),
    "nan_in_meta.jsonl": (1, "NaN is not valid JSON"),
    "no_user_message.jsonl": (1, "messages[1].role: expected user, got assistant"),
    "system_not_first.jsonl": (1, "system is only allowed as the first message"),
    "trailing_garbage.jsonl": (1, "invalid JSON: Extra data"),
    "truncated_json.jsonl": (2, "invalid JSON: Unterminated string"),
    "two_user_turns_in_a_row.jsonl": (1, "messages[1].role: expected assistant, got user"),
    "unknown_language.jsonl": (1, "lang: must be one of zh, en; got 'fr'"),
    "unknown_message_key.jsonl": (1, "messages[0].name: unknown key"),
    "unknown_record_key.jsonl": (1, "priority: unknown key"),
    "unknown_schema.jsonl": (1, "schema: unknown schema 'shoe_size'"),
    "unknown_task.jsonl": (1, "task: must be one of extract"),
    "utf16_file.jsonl": (None, "UTF-16"),
    "whitespace_content.jsonl": (1, "messages[0].content: must not be empty"),
    "wrong_role.jsonl": (2, "messages[1].role: must be one of system, user, assistant; got 'bot'"),
}

GOOD_FAQ = {
    "id": "ok-1",
    "task": "faq",
    "lang": "en",
    "messages": [
        {"role": "user", "content": "Is shipping free?"},
        {"role": "assistant", "content": "Orders of 99 yuan or more ship free."},
    ],
}


def _ten_megabyte_line(folder: Path) -> Path:
    path = folder / "ten_megabyte_line.jsonl"
    huge = dict(
        GOOD_FAQ, id="huge", messages=[GOOD_FAQ["messages"][0], {"role": "assistant", "content": "好" * 3_500_000}]
    )
    path.write_text(json.dumps(GOOD_FAQ) + "\n" + json.dumps(huge, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.stat().st_size > 10_000_000
    return path


def _assert_clean_failure(done, code: int = 2) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == code, output
    assert "Traceback" not in output
    return output


def test_the_bad_data_corpus_has_one_expectation_per_file() -> None:
    files = {path.name for path in BAD.iterdir()}
    assert len(files) >= 30
    assert files == set(EXPECTED)


def test_data_check_names_file_line_and_field_for_every_bad_file(tmp_path: Path, ledger) -> None:
    huge = _ten_megabyte_line(tmp_path)
    done = invoke_shoptune("data", "check", *(str(BAD / name) for name in sorted(EXPECTED)), str(huge))
    output = _assert_clean_failure(done, code=1)
    lines = output.splitlines()
    for name, (line, fragment) in EXPECTED.items():
        prefix = f"{BAD / name}:{line}: " if line else f"{BAD / name}: "
        assert any(text.startswith(prefix) and fragment in text for text in lines), (name, prefix, fragment)
    assert any(
        text.startswith(f"{huge}:2: line is 10,500,") and "over the 1,048,576-byte limit" in text for text in lines
    )
    assert not any(text.startswith(f"{huge}:1:") for text in lines)  # the good line next to it is fine
    ledger(
        "bad data",
        "`data check` on malformed JSONL files (tests/bad_data + a 10 MB line)",
        len(EXPECTED) + 1,
        "every file named with its line and field, exit 1, no traceback",
    )


def test_training_refuses_bad_files_listing_both_and_writes_nothing(
    tmp_path: Path, tiny_qwen_dir: Path, ledger
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(BAD / "truncated_json.jsonl", data / "train.jsonl")
    shutil.copy(BAD / "extract_target_wrong_type.jsonl", data / "val.jsonl")
    out = tmp_path / "run"
    done = invoke_shoptune("train", str(TINY), "--data", str(data), "--out", str(out))
    output = _assert_clean_failure(done)
    assert f"{data / 'train.jsonl'}:2: invalid JSON" in output
    assert f"{data / 'val.jsonl'}:1: messages[1].content: extraction target breaks schema" in output
    assert not out.exists()

    (data / "train.jsonl").unlink()
    (data / "train.jsonl").mkdir()  # a directory given where a file belongs
    shutil.copy(BAD.parent / "bad_data" / "wrong_role.jsonl", data / "val.jsonl")
    done = invoke_shoptune("train", str(TINY), "--data", str(data), "--out", str(out))
    output = _assert_clean_failure(done)
    assert f"{data / 'train.jsonl'}: is a directory" in output and f"{data / 'val.jsonl'}:2: messages[1].role" in output
    assert not out.exists() and sorted(p.name for p in data.iterdir()) == ["train.jsonl", "val.jsonl"]
    ledger("bad data", "`train` on bad train/val files (both reported at once)", 2, "exit 2, no run folder")


def test_evaluation_refuses_a_bad_file_and_writes_no_report(tmp_path: Path, tiny_qwen_dir: Path, ledger) -> None:
    out = tmp_path / "report"
    done = invoke_shoptune(
        "eval", "run", "--config", str(TINY), "--data", str(BAD / "invalid_utf8.jsonl"), "--model", "tiny-qwen2.5",
        "--out", str(out),
    )  # fmt: skip
    output = _assert_clean_failure(done)
    assert f"{BAD / 'invalid_utf8.jsonl'}:3: not valid UTF-8" in output
    assert not out.exists()
    ledger("bad data", "`eval run` on a file with invalid UTF-8", 1, "exit 2, no report folder")


def test_data_build_with_a_broken_config_lists_every_problem(tmp_path: Path, ledger) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "data:\n  train_records: many\n  seeed: 3\n  languages: [zh, fr]\n  heldout_sku_share: 1.5\n", encoding="utf-8"
    )
    out = tmp_path / "built"
    done = invoke_shoptune("data", "build", "--config", str(config), "--out", str(out))
    output = _assert_clean_failure(done)
    assert "(4 problems)" in output
    for line, key in (
        (2, "data.train_records"),
        (3, "data.seeed"),
        (4, "data.languages.1"),
        (5, "data.heldout_sku_share"),
    ):
        assert f"{config}:{line}: {key}:" in output, key
    assert "did you mean 'seed'" in output
    assert not out.exists()
    ledger(
        "bad configs",
        "`data build --config` with a wrong type, a typo, a bad enum and a range error",
        4,
        "all 4 in one message with file:line, exit 2",
    )


@pytest.mark.parametrize(
    ("config", "overrides", "expected"),
    [
        (
            TINY,
            ("train.lora_r=0", "train.learning_rate=-1", "train.max_length=100000", "train.bogus=1"),
            (
                "train.lora_r: must be at least 1",
                "train.learning_rate: must be a positive",
                "above the model's context of 32768",
                "train.bogus: unknown key",
            ),
        ),
        (
            CONFIGS_DIR / "qwen2.5-7b-lora.yaml",
            ("model.path=/nonexistent/qwen", "train.lora_alpha=0", "train.epochs=lots"),
            ("model.path: /nonexistent/qwen is not a usable model directory", "train.lora_alpha", "train.epochs"),
        ),
    ],
    ids=["impossible-values", "missing-model-directory"],
)
def test_training_lists_every_config_problem_in_one_message(
    config: Path, overrides: tuple[str, ...], expected: tuple[str, ...], tmp_path: Path, tiny_qwen_dir: Path, ledger
) -> None:
    out = tmp_path / "run"
    done = invoke_shoptune("train", str(config), *(f"--set={o}" for o in overrides), "--out", str(out))
    output = _assert_clean_failure(done)
    assert f"({len(expected)} problems)" in output
    for fragment in expected:
        assert fragment in output, fragment
    assert not out.exists()
    ledger("bad configs", f"`train` with {', '.join(overrides)}", len(expected), "one message listing all, exit 2")
