"""data stats / show / import, and the loss mask that `show` displays and training uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke_shoptune
from transformers import AutoTokenizer

from shoptune.shop.render import RenderError, marked_text, render_record

CHAT = [
    {"role": "system", "content": "You are a shop assistant."},
    {"role": "user", "content": "有红色的吗？"},
    {"role": "assistant", "content": "亲，有的：小米 14 手机，¥3999。"},
    {"role": "user", "content": "the cheaper one?"},
    {"role": "assistant", "content": '{"product": "小米手机", "price_range": null, "color": "红色", "size": null}'},
]


@pytest.mark.parametrize("fixture", ["tiny_qwen_dir", "smollm2_dir"])
def test_loss_mask_covers_exactly_the_assistant_turns(fixture: str, request: pytest.FixtureRequest) -> None:
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    rendered = render_record(tokenizer, CHAT)
    loss_ids = [i for i, m in zip(rendered.input_ids, rendered.loss_mask, strict=True) if m]
    expected = tokenizer.encode(CHAT[2]["content"] + "<|im_end|>", add_special_tokens=False) + tokenizer.encode(
        CHAT[4]["content"] + "<|im_end|>", add_special_tokens=False
    )
    assert loss_ids == expected
    assert tokenizer.decode(loss_ids) == CHAT[2]["content"] + "<|im_end|>" + CHAT[4]["content"] + "<|im_end|>"
    # Everything else (system, user turns, role headers, the newline after <|im_end|>) carries no loss.
    assert rendered.text == tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert list(rendered.input_ids) == tokenizer(rendered.text, add_special_tokens=False).input_ids
    assert marked_text(rendered).count("«") == 2


def test_a_template_without_eos_after_the_answer_is_refused(tiny_qwen_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    tokenizer.chat_template = (  # ChatML without <|im_end|>: the "never stops" trap
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(RenderError, match="does not end the assistant turn with the EOS token"):
        render_record(tokenizer, CHAT)


@pytest.fixture(scope="module")
def small_corpus(tiny_data: Path) -> Path:
    return tiny_data


def test_stats_counts_and_token_lengths(small_corpus: Path, tiny_qwen_dir: Path) -> None:
    done = invoke_shoptune("data", "stats", str(small_corpus / "train.jsonl"), "--model", "tiny-qwen2.5", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["records"] == 64
    assert sum(figures["by_task"].values()) == 64 and set(figures["by_lang"]) == {"zh", "en"}
    tokens = figures["tokens"]
    assert tokens["min"] <= tokens["median"] <= tokens["p95"] <= tokens["max"] <= 512
    assert figures["trainable_tokens"]["max"] < tokens["max"]
    assert figures["duplicates"] == {"ids": 0, "opening_user_messages": 0}


def test_show_marks_the_trained_tokens(small_corpus: Path, tiny_qwen_dir: Path) -> None:
    first = json.loads((small_corpus / "val.jsonl").read_text().splitlines()[0])
    done = invoke_shoptune("data", "show", str(small_corpus / "val.jsonl"), "--model", "tiny-qwen2.5", "--n", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"=== {first['id']} ({first['task']}, {first['lang']}):")
    assert f"«{first['messages'][-1]['content']}<|im_end|>»" in done.stdout
    assert "<|im_start|>system\n" in done.stdout


def test_stats_refuses_an_invalid_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n', encoding="utf-8")
    done = invoke_shoptune("data", "stats", str(bad))
    assert done.returncode == 2
    assert f"{bad}:1: id: must be a non-empty string" in done.stderr


def test_import_the_three_formats(tmp_path: Path) -> None:
    sharegpt = tmp_path / "sharegpt.jsonl"
    sharegpt.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "id": "s1",
                        "system": "Be nice.",
                        "conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "亲，您好！"}],
                    },
                    ensure_ascii=False,
                ),
                json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "tool", "value": "x"}]}),
                json.dumps({"conversations": [{"from": "human", "value": "hi"}]}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "sharegpt.out.jsonl"
    done = invoke_shoptune("data", "import", "--format", "sharegpt", str(sharegpt), "--out", str(out))
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["id"] == "s1" and record["lang"] == "zh" and record["task"] == "chat"
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert f"{sharegpt}:2: skipped: conversations[1]: unknown speaker 'tool'" in done.stderr
    assert (
        f"{sharegpt}:3: skipped: " in done.stderr
        and "need at least one user message and the assistant answer" in done.stderr
    )

    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "Translate", "input": "你好", "output": "Hello"}]), encoding="utf-8")
    done = invoke_shoptune(
        "data", "import", "--format", "alpaca", str(alpaca), "--out", str(tmp_path / "a.jsonl"), "--task", "faq"
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert record["messages"][0] == {"role": "user", "content": "Translate\n\n你好"} and record["task"] == "faq"

    openai_file = tmp_path / "openai.jsonl"
    openai_file.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "developer", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": "Is shipping free?"}]},
                    {"role": "assistant", "content": "Over 99 yuan, yes."},
                ]
            }
        )
        + "\n",
        encoding="utf-8",
    )
    done = invoke_shoptune("data", "import", "--format", "openai", str(openai_file), "--out", str(tmp_path / "o.jsonl"))
    assert done.returncode == 0, done.stderr
    assert (
        invoke_shoptune("data", "check", str(tmp_path / "o.jsonl"), str(out), str(tmp_path / "a.jsonl")).returncode == 0
    )


def test_import_with_nothing_convertible_writes_nothing(tmp_path: Path) -> None:
    source = tmp_path / "junk.jsonl"
    source.write_text('{"not": "sharegpt"}\n', encoding="utf-8")
    done = invoke_shoptune("data", "import", "--format", "sharegpt", str(source), "--out", str(tmp_path / "x.jsonl"))
    assert done.returncode == 2 and not (tmp_path / "x.jsonl").exists()
    assert "nothing could be converted" in done.stderr
