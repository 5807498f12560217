"""`train --dry-run`: the estimator against hand-computed and published figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke_shoptune
from transformers import AutoModelForCausalLM

from shoptune.config import load_config
from shoptune.core.paths import CONFIGS_DIR, REPO_ROOT
from shoptune.train.estimate import GIB, NF4_BYTES_PER_PARAM, Architecture, estimate, lora_parameters

TOY = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "vocab_size": 1000,
    "tie_word_embeddings": True,
}
QWEN_7B = json.loads((REPO_ROOT / "src/shoptune/models/architectures/qwen2.5-7b-instruct.json").read_text())


def test_toy_model_by_hand() -> None:
    arch = Architecture.from_config(TOY)
    # per layer: q 64*64 + k 64*32 + v 64*32 + o 64*64 + gate/up/down 3 * 64*128 = 36,864; two layers
    assert arch.linear_parameters() == 73_728
    # tied embeddings 1000*64 + norms (2 per layer + final) * 64
    assert arch.other_parameters() == 64_000 + 5 * 64
    # LoRA r=4: q 4*(64+64) + k 4*(64+32) + v same + o 4*(64+64) + 3 * 4*(64+128) = 4,096 per layer
    assert (
        lora_parameters(arch, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), 4) == 8192
    )

    config = load_config(
        None,
        [
            "train.lora_r=4",
            "train.precision=bf16",
            "train.per_device_batch_size=2",
            "train.max_length=16",
            "train.gradient_checkpointing=false",
            "serve.max_model_len=64",
        ],
    )
    est = estimate(config, TOY, peak_tflops=1.0)
    assert est.weights_gib * GIB == pytest.approx(138_048 * 2)
    assert est.lora_states_gib * GIB == pytest.approx(8192 * 16)
    # activations: 32 tokens * 2 layers * (6*64 + 2*32 + 3*128) * 2 bytes
    assert est.activations_gib_without_checkpointing * GIB == pytest.approx(32 * 2 * 832 * 2)
    assert est.activations_gib_with_checkpointing * GIB == pytest.approx(32 * (2 * 64 * 2 + 832 * 2))
    assert est.lm_head_chunk_gib * GIB == pytest.approx(32 * 1000 * 4 * 2)
    assert est.flops_per_token == 4 * 138_048
    assert est.seconds_per_step == pytest.approx(32 * 4 * 138_048 / (1e12 * 0.4))


@pytest.mark.parametrize(
    ("fixture", "config_name", "rank", "overrides"),
    [
        ("tiny_qwen_dir", "tiny-qwen.yaml", 8, []),
        ("smollm2_dir", "cpu-smollm2.yaml", 16, []),
        ("smollm2_dir", "cpu-smollm2.yaml", 16, ["train.lora_top_layers=10"]),
    ],
)
def test_parameter_counts_match_the_real_models(
    fixture: str, config_name: str, rank: int, overrides: list[str], request
) -> None:
    from shoptune.train.model import with_lora

    directory: Path = request.getfixturevalue(fixture)
    config = load_config(CONFIGS_DIR / config_name, overrides)
    est = estimate(config, json.loads((directory / "config.json").read_text()))
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert est.total_parameters == sum(p.numel() for p in model.parameters())
    trainable, _ = with_lora(model, config.train).get_nb_trainable_parameters()
    assert est.trainable_parameters == trainable and config.train.lora_r == rank


def test_qwen_7b_against_published_figures() -> None:
    lora = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml", ["train.per_device_batch_size=1", "train.max_length=512"])
    est = estimate(lora, QWEN_7B)
    # PEFT prints "trainable params: 40,370,176 || all params: 7,655,986,688" for this setup.
    assert est.trainable_parameters == 40_370_176
    assert est.total_parameters + est.trainable_parameters == 7_655_986_688
    # LLaMA-Factory's README: ~16 GB for 7B LoRA (16-bit), ~6 GB for 7B QLoRA (4-bit).
    assert 14 <= est.total_gib <= 18
    qlora = estimate(lora.replace(train=lora.train.replace(adapter="qlora")), QWEN_7B)
    assert 5 <= qlora.total_gib <= 8
    assert qlora.weights_gib < est.weights_gib / 2.5
    assert pytest.approx(0.516, abs=0.001) == NF4_BYTES_PER_PARAM


def test_dry_run_cli_needs_no_weights(tmp_path: Path) -> None:
    done = invoke_shoptune(
        "train",
        "configs/qwen2.5-7b-qlora.yaml",
        "--dry-run",
        "--peak-tflops",
        "989",
        env={"SHOPTUNE_HOME": str(tmp_path), "SHOPTUNE_QWEN25_7B_DIR": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "7,615,616,512 parameters" in done.stdout and "40,370,176 trainable" in done.stdout
    assert "total" in done.stdout and "s/step" in done.stdout
    assert not (tmp_path / "models").exists()  # nothing prepared, nothing downloaded


def test_preference_methods_plan_two_sequences_a_record_and_their_reference() -> None:
    sft = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml", ["train.batching=padded"])
    dpo = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml", ["train.batching=padded", "train.method=dpo"])
    orpo = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml", ["train.batching=padded", "train.method=orpo"])
    base, paired, full_logits = (estimate(c, QWEN_7B) for c in (sft, dpo, orpo))
    assert paired.tokens_per_step == 2 * base.tokens_per_step
    assert paired.activations_gib_with_checkpointing == pytest.approx(2 * base.activations_gib_with_checkpointing)
    assert paired.flops_per_token == pytest.approx(base.flops_per_token * 8 / 6)  # + the reference's forward pass
    assert paired.weights_gib == base.weights_gib  # the reference is the same weights with the adapter off
    after_sft = estimate(dpo.replace(train=dpo.train.replace(init_adapter="runs/sft")), QWEN_7B)
    assert after_sft.lora_states_gib - paired.lora_states_gib == pytest.approx(base.trainable_parameters * 4 / GIB)
    tokens = 4 * 2048 * 2  # batch x length x (chosen, rejected)
    assert full_logits.lm_head_chunk_gib == pytest.approx(tokens * 152_064 * 4 * 3 / GIB)
    assert full_logits.flops_per_token == base.flops_per_token  # no reference model


def test_grpo_plans_its_sampled_answers_their_kv_cache_and_colocated_vllm() -> None:
    base = ["train.batching=padded"]
    sft = load_config(CONFIGS_DIR / "qwen2.5-7b-lora.yaml", base)
    grpo = load_config(
        CONFIGS_DIR / "qwen2.5-7b-lora.yaml", [*base, "train.method=grpo", "train.grpo.num_generations=8"]
    )
    with_kl = grpo.replace(train=grpo.train.replace(grpo=grpo.train.grpo.replace(beta=0.04)))
    colocated = grpo.replace(train=grpo.train.replace(grpo=grpo.train.grpo.replace(generation="vllm_colocate")))
    plain, sampled, kl, vllm = (estimate(c, QWEN_7B) for c in (sft, grpo, with_kl, colocated))
    assert sampled.tokens_per_step == 8 * plain.tokens_per_step  # 8 answers to each prompt
    kv_cache = 4 * 2048 * 8 * 28 * 2 * (4 * 128) * 2  # sequences x tokens x layers x (k, v) x KV width x bf16
    assert sampled.generation_gib == pytest.approx(kv_cache / GIB)
    assert vllm.generation_gib == pytest.approx((kv_cache + 7_615_616_512 * 2) / GIB)  # + vLLM's bf16 weights
    assert sampled.flops_per_token == pytest.approx(plain.flops_per_token * 8 / 6)  # + sampling's forward pass
    assert kl.flops_per_token == pytest.approx(plain.flops_per_token * 10 / 6)  # + the KL reference's


def test_dry_run_of_the_7b_grpo_recipe_shows_its_sampling(tmp_path: Path) -> None:
    done = invoke_shoptune(
        "train", "configs/qwen2.5-7b-grpo.yaml", "--dry-run", "--peak-tflops", "989",
        env={"SHOPTUNE_HOME": str(tmp_path), "SHOPTUNE_QWEN25_7B_DIR": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "method grpo (lora)" in done.stdout and "8 sampled answers per prompt" in done.stdout
    assert "sampling (vllm_colocate)" in done.stdout and "vLLM reserves 30% of the card" in done.stdout
    assert "reference model" not in done.stdout  # beta 0: no reference pass


def test_dry_run_of_a_preference_method_names_its_reference(tmp_path: Path) -> None:
    done = invoke_shoptune(
        "train", "configs/qwen2.5-7b-dpo.yaml", "--dry-run",
        env={"SHOPTUNE_HOME": str(tmp_path), "SHOPTUNE_QWEN25_7B_DIR": ""},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "method dpo (lora)" in done.stdout and "reference model: this model with the adapter off" in done.stdout
