"""Training: the real TRL SFTTrainer + PEFT on tiny-qwen2.5 (and SmolLM2 for the template checks).

Covers: loss only on assistant turns, template parity with serving, the run folder, the
compact fused loss, batching modes, refusing to clobber runs, non-finite losses, and merge
with its parity gate. Kills, resumes and full disks: test_reliability_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import invoke_shoptune
from transformers import AutoModelForCausalLM, AutoTokenizer

from shoptune.config import load_config
from shoptune.config.loader import ConfigError
from shoptune.core.errors import BadInputError
from shoptune.core.paths import CONFIGS_DIR
from shoptune.shop.render import render_text
from shoptune.train.dataset import IGNORE_INDEX, build_rows

TINY = CONFIGS_DIR / "tiny-qwen.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    done = invoke_shoptune(
        "train", str(TINY), "--out", str(out), "--data", str(tiny_data), "--set", "train.generation_eval_records=4"
    )
    assert done.returncode == 0, done.stderr
    return out


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fixture", ["tiny_qwen_dir", "smollm2_dir"])
def test_training_text_is_what_the_server_renders(fixture: str, request, tiny_data: Path) -> None:
    """For every assistant turn, the tokens before it are exactly the prompt a server builds
    from the conversation so far (same system prompt, same generation prompt)."""
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    rows = build_rows(tiny_data / "val.jsonl", tokenizer, 4096).rows
    for record, row in zip(_records(tiny_data / "val.jsonl"), rows, strict=True):
        messages = record["messages"]
        assert messages[0]["role"] == "system"  # the record's own system prompt, never the template default
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            served_prompt = render_text(tokenizer, messages[:index], add_generation_prompt=True)
            prompt_ids = tokenizer(served_prompt, add_special_tokens=False).input_ids
            assert row["input_ids"][: len(prompt_ids)] == prompt_ids, record["id"]
            answer_ids = tokenizer(message["content"] + tokenizer.eos_token, add_special_tokens=False).input_ids
            assert row["input_ids"][len(prompt_ids) : len(prompt_ids) + len(answer_ids)] == answer_ids
            assert row["labels"][len(prompt_ids) : len(prompt_ids) + len(answer_ids)] == answer_ids
            assert set(row["labels"][: len(prompt_ids)]) <= {IGNORE_INDEX} or index > 2


@pytest.mark.parametrize("fixture", ["tiny_qwen_dir", "smollm2_dir"])
def test_loss_is_on_assistant_turns_and_their_end_token_only(fixture: str, request, tiny_data: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    rows = build_rows(tiny_data / "train.jsonl", tokenizer, 4096).rows
    for record, row in zip(_records(tiny_data / "train.jsonl"), rows, strict=True):
        trained = [token for token in row["labels"] if token != IGNORE_INDEX]
        expected = "".join(m["content"] + tokenizer.eos_token for m in record["messages"] if m["role"] == "assistant")
        assert tokenizer.decode(trained) == expected, record["id"]
        assert row["labels"].count(tokenizer.convert_tokens_to_ids("<|im_end|>")) == sum(
            m["role"] == "assistant" for m in record["messages"]
        )


def test_records_without_trainable_tokens_or_too_long_stop_the_run(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    data = tmp_path / "train.jsonl"
    record = {
        "id": "long-1",
        "task": "faq",
        "lang": "en",
        "messages": [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}],
    }
    data.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"train\.jsonl:1 \(id long-1\): \d+ tokens, over train.max_length=64"):
        build_rows(data, tokenizer, 64)
    # A template that drops assistant turns leaves nothing to learn: refused before training.
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] != 'assistant' %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
        "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    with pytest.raises(BadInputError, match=r"1 record\(s\) in .* cannot be trained on:\n.*id long-1"):
        build_rows(data, tokenizer, 4096)


def test_train_tasks_keeps_only_those_tasks_records(tiny_qwen_dir: Path, tiny_data: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    records = _records(tiny_data / "train.jsonl")
    extraction = build_rows(tiny_data / "train.jsonl", tokenizer, 4096, tasks=("extract",)).rows
    replies = build_rows(tiny_data / "train.jsonl", tokenizer, 4096, tasks=("faq", "recommend", "chat", "refusal")).rows
    assert 0 < len(extraction) < len(records)
    assert len(extraction) == sum(r["task"] == "extract" for r in records)
    assert len(extraction) + len(replies) == len(records)
    assert load_config(TINY, ["train.tasks=[extract]"]).train.tasks == ("extract",)
    with pytest.raises(ConfigError, match=r"train\.tasks: applies to SFT only; dpo trains on the pairs"):
        load_config(TINY, ["train.method=dpo", "train.tasks=[faq]"])


def test_compact_fused_head_gives_the_standard_loss(tiny_qwen_dir: Path, tiny_data: Path) -> None:
    from trl.trainer.utils import add_fused_lm_head

    from shoptune.train.fused_loss import enable_compact_fused_head

    assert enable_compact_fused_head()
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    rows = build_rows(tiny_data / "train.jsonl", tokenizer, 4096).rows[:3]
    length = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [0] * (length - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([r["labels"] + [IGNORE_INDEX] * (length - len(r["labels"])) for r in rows])
    mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (length - len(r["input_ids"])) for r in rows])
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype=torch.float32)
    standard = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    fused = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True).loss
    assert torch.allclose(standard, fused, atol=1e-5), (standard, fused)


def test_lora_top_layers_adapts_only_the_top_layers(tiny_qwen_dir: Path) -> None:
    from shoptune.train.model import with_lora

    config = load_config(TINY, ["train.lora_top_layers=1"]).train
    model = with_lora(AutoModelForCausalLM.from_pretrained(tiny_qwen_dir), config)
    adapted = {name.split(".layers.")[1].split(".")[0] for name, _ in model.named_parameters() if "lora_A" in name}
    assert adapted == {str(model.config.num_hidden_layers - 1)}
    too_many = load_config(TINY, ["train.lora_top_layers=99"]).train
    with pytest.raises(BadInputError, match="lora_top_layers: 99 but this model has 2 layers"):
        with_lora(AutoModelForCausalLM.from_pretrained(tiny_qwen_dir), too_many)


@pytest.mark.parametrize(("precision", "frozen"), [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_cpu_training_holds_frozen_weights_in_the_compute_precision(tiny_qwen_dir: Path, precision, frozen) -> None:
    from shoptune.train.model import load_base_for_training, with_lora

    config = load_config(TINY, [f"train.precision={precision}"]).train
    model = with_lora(load_base_for_training(tiny_qwen_dir, config, "cpu"), config)
    dtypes = {p.dtype for _, p in model.named_parameters() if not p.requires_grad}
    assert dtypes == {frozen}
    assert {p.dtype for _, p in model.named_parameters() if p.requires_grad} == {torch.float32}
    assert model.config._attn_implementation == "eager"  # train.attention "auto" on a CPU
    sdpa = load_config(TINY, ["train.attention=sdpa"]).train
    assert load_base_for_training(tiny_qwen_dir, sdpa, "cpu").config._attn_implementation == "sdpa"


def test_loraplus_optimizer_trains_b_at_the_ratio(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    from trl import SFTConfig

    from shoptune.train.model import loraplus_optimizer, with_lora

    config = load_config(TINY, ["train.loraplus_lr_ratio=16", "train.learning_rate=1e-3"]).train
    model = with_lora(AutoModelForCausalLM.from_pretrained(tiny_qwen_dir), config)
    arguments = SFTConfig(output_dir=str(tmp_path), learning_rate=config.learning_rate, use_cpu=True, report_to="none")
    optimizer = loraplus_optimizer(model, arguments, config.loraplus_lr_ratio)
    rate = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert set(rate) == {id(p) for p in trainable.values()}
    assert {rate[id(p)] for name, p in trainable.items() if "lora_A" in name} == {1e-3}
    assert {rate[id(p)] for name, p in trainable.items() if "lora_B" in name} == {16e-3}
    with pytest.raises(ConfigError, match="loraplus_lr_ratio"):
        load_config(TINY, ["train.loraplus_lr_ratio=0.5"])


def test_run_folder(tiny_run: Path, tiny_data: Path) -> None:
    for name in (
        "config.yaml",
        "manifest.json",
        "metrics.jsonl",
        "final/adapter/adapter_config.json",
        "final/adapter/adapter_model.safetensors",
        "final/adapter/tokenizer.json",
        "final/adapter/chat_template.jinja",
    ):
        assert (tiny_run / name).is_file(), name
    resolved = ["train.generation_eval_records=4", "train.attention=eager"]  # "auto" is eager on a CPU
    assert load_config(tiny_run / "config.yaml") == load_config(TINY, resolved)
    manifest = json.loads((tiny_run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["seed"] == 42
    assert manifest["git"]["commit"] and "torch" in manifest["packages"] and "trl" in manifest["packages"]
    assert (
        manifest["data"]["files"]["train.jsonl"]
        == __import__("hashlib").sha256((tiny_data / "train.jsonl").read_bytes()).hexdigest()
    )
    assert manifest["base_model"]["name"] == "tiny-qwen2.5" and len(manifest["base_model"]["files_sha256"]) == 64
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["final_metrics"]["steps"] == 10 and manifest["final_metrics"]["eval_loss"] > 0
    metrics = _records(tiny_run / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, 11))
    keys = {
        "step",
        "loss",
        "learning_rate",
        "grad_norm",
        "tokens_per_second",
        "eval_loss",
        "eval_json_valid_rate",
        "eval_exact_match_rate",
        "eval_micro_f1",
        "reward_margin",  # the preference methods' (tests/test_preference.py); null in SFT
        "reward_accuracy",
        "eval_reward_margin",
        "eval_reward_accuracy",
        "reward",  # GRPO's (tests/test_grpo.py); null in SFT
        "rewards",
        "eval_reward",
    }
    assert all(set(m) == keys for m in metrics)
    assert all(m["reward_margin"] is None and m["eval_reward_accuracy"] is None for m in metrics)
    assert all(m["reward"] is None and m["rewards"] is None for m in metrics)
    assert [m["step"] for m in metrics if m["eval_loss"] is not None] == [5, 10]
    assert manifest["final_metrics"]["eval_loss"] == metrics[-1]["eval_loss"]  # the last step's evaluation
    # generation metrics from the eval package, logged beside the eval loss
    assert [m["step"] for m in metrics if m["eval_json_valid_rate"] is not None] == [5, 10]
    scored = [m for m in metrics if m["eval_json_valid_rate"] is not None]
    assert all(0 <= m["eval_exact_match_rate"] <= 1 and 0 <= m["eval_micro_f1"] <= 1 for m in scored)
    assert sorted(p.name for p in (tiny_run / "checkpoints").iterdir() if p.name.startswith("step-")) == [
        "step-000005",
        "step-000010",
    ]
    assert list((tiny_run / "tensorboard").rglob("events.out.tfevents.*"))
    adapter = json.loads((tiny_run / "final/adapter/adapter_config.json").read_text())
    assert adapter["r"] == 8 and not adapter.get("modules_to_save")
    assert sorted(adapter["target_modules"]) == sorted(load_config(TINY).train.target_modules)


def test_batching_modes_see_the_same_loss(tmp_path: Path, tiny_data: Path) -> None:
    """Padding-free and packed batches must not let records attend to each other: first-step
    loss equals the padded batch's (same records, same weights)."""
    first_losses = {}
    for batching in ("padded", "padding_free"):
        out = tmp_path / batching
        done = invoke_shoptune(
            "train",
            str(TINY),
            "--out",
            str(out),
            "--data",
            str(tiny_data),
            "--set",
            f"train.batching={batching}",
            "--set",
            "train.max_steps=1",
            "--set",
            "train.eval_steps=null",
        )
        assert done.returncode == 0, done.stderr
        first_losses[batching] = _records(out / "metrics.jsonl")[0]["loss"]
    assert first_losses["padding_free"] == pytest.approx(first_losses["padded"], abs=1e-4)


def test_a_finished_run_is_not_overwritten(tiny_run: Path, tiny_data: Path) -> None:
    done = invoke_shoptune("train", str(TINY), "--out", str(tiny_run), "--data", str(tiny_data))
    assert done.returncode == 2 and "already holds a training run" in done.stderr
    done = invoke_shoptune(
        "train",
        str(TINY),
        "--out",
        str(tiny_run),
        "--data",
        str(tiny_data),
        "--resume",
        "--set",
        "train.learning_rate=0.5",
    )
    assert done.returncode == 2 and "train.learning_rate differ" in done.stderr


def test_non_finite_loss_stops_the_run_naming_the_step(tmp_path: Path, tiny_data: Path, ledger) -> None:
    done = invoke_shoptune(
        "train",
        str(TINY),
        "--out",
        str(tmp_path / "nan"),
        "--data",
        str(tiny_data),
        "--set",
        "train.learning_rate=1e30",
        "--set",
        "train.max_grad_norm=1e30",
        "--set",
        "train.eval_steps=null",
    )
    assert done.returncode == 1, done.stderr
    assert "training stopped: non-finite loss = nan at step 2" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "nan" / "final").exists()
    assert json.loads((tmp_path / "nan" / "manifest.json").read_text())["status"] == "failed"
    ledger(
        "training faults",
        "a learning rate of 1e30 (the loss turns NaN)",
        1,
        "stopped with exit 1 naming step 2; no final adapter",
    )


def test_merge_passes_its_parity_gate(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    done = invoke_shoptune("merge", str(tiny_run), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "max |logit diff|" in done.stdout and "greedy generations identical" in done.stdout
    report = json.loads((out / "shoptune-merge.json").read_text())
    assert report["max_abs_logit_diff"] <= report["atol"] and report["generations_identical"]
    assert (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    generation = json.loads((out / "generation_config.json").read_text())
    assert 151645 in generation["eos_token_id"]  # <|im_end|> stops generation
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好"}], tokenize=False, add_generation_prompt=True
    ).startswith("<|im_start|>system\nYou are Qwen")


def test_merge_refuses_when_parity_fails_and_writes_nothing(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    done = invoke_shoptune("merge", str(tiny_run), "--out", str(out), "--atol", "0")
    assert done.returncode == 1
    assert "merged model differs from base + adapter" in done.stderr and not out.exists()
    assert [p for p in tmp_path.iterdir()] == []


def test_merge_of_something_that_is_not_a_run(tmp_path: Path) -> None:
    done = invoke_shoptune("merge", str(tmp_path), "--out", str(tmp_path / "m"))
    assert done.returncode == 2 and "is not a finished training run" in done.stderr


def test_qlora_needs_a_gpu(tmp_path: Path, tiny_data: Path) -> None:
    done = invoke_shoptune(
        "train",
        str(TINY),
        "--out",
        str(tmp_path / "q"),
        "--data",
        str(tiny_data),
        "--set",
        "train.adapter=qlora",
        "--set",
        "train.precision=bf16",
    )
    assert done.returncode == 3 and "needs a CUDA GPU" in done.stderr


def test_4bit_preparation_keeps_16_bit_weights_and_reaches_the_adapters(tiny_qwen_dir: Path) -> None:
    """The QLoRA preparation (its 4-bit load needs a GPU; this is the rest of it) must not upcast.

    PEFT's prepare_model_for_kbit_training upcasts embeddings and head to fp32 (+2 GiB on 7B,
    measured); ours keeps them bf16, freezes the base, and still gets gradients into the
    adapters through non-reentrant checkpointed layers.
    """
    from shoptune.train.model import prepare_for_4bit_training, with_lora

    config = load_config(
        TINY, overrides=["train.adapter=qlora", "train.precision=bf16", "train.gradient_checkpointing=true"]
    ).train
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, dtype=torch.bfloat16)
    prepare_for_4bit_training(model, config)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in model.parameters())
    model = with_lora(model, config)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    ids = torch.tensor([[9707, 11, 1879, 0, 151645]])
    model(input_ids=ids, labels=ids).loss.backward()
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_grads and all(g is not None and g.abs().sum() > 0 for g in lora_grads)
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)


def test_a_data_setting_newer_than_the_folder_counts_as_its_default(tmp_path: Path) -> None:
    """A folder built before a data setting existed was built with its default: not stale, unless
    this config changes that setting."""
    from shoptune.train.recipe import _check_built_with

    config = load_config(TINY)
    built = config.data.model_dump(mode="json")
    del built["imported"]  # a corpus built before `data.imported` existed
    (tmp_path / "manifest.json").write_text(json.dumps({"data_config": built}), encoding="utf-8")
    _check_built_with(config, tmp_path)
    changed = load_config(TINY, ["data.imported=[shops/x.jsonl]"])
    with pytest.raises(BadInputError, match=r"different data config \(imported differ\)"):
        _check_built_with(changed, tmp_path)
