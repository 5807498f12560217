"""The plain baseline for train_throughput.py: Hugging Face `Trainer` + PEFT LoRA, defaults.

What a first notebook does: every batch padded to max length (512), no packing, no length
grouping, fp32, the Trainer's default settings. Same rows (shoptune's tokenisation, loss on
assistant tokens) and the same LoRA settings, learning rate and steps as the other runs, so
only the training setup differs. Prints one JSON line with the real (non-padding) tokens seen.

    python benchmarks/plain_trainer.py --model DIR --data train.jsonl --out DIR --steps 30
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

from shoptune.config.schema import ALL_LINEAR_PROJECTIONS
from shoptune.train.dataset import IGNORE_INDEX, build_rows

PAD_TO = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--learning-rate", type=float, required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    rows = build_rows(args.data, tokenizer, PAD_TO).rows

    def pad_to_max(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        def padded(key: str, value: int) -> torch.Tensor:
            return torch.tensor([r[key] + [value] * (PAD_TO - len(r[key])) for r in batch])

        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (PAD_TO - len(r["input_ids"])) for r in batch])
        return {
            "input_ids": padded("input_ids", tokenizer.pad_token_id),
            "labels": padded("labels", IGNORE_INDEX),
            "attention_mask": mask,
        }

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules=list(ALL_LINEAR_PROJECTIONS),
            task_type="CAUSAL_LM",
        ),
    )
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(args.out / "checkpoints"),
            per_device_train_batch_size=4,
            max_steps=args.steps,
            learning_rate=args.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=0.03,
            seed=args.seed,
            use_cpu=True,
            save_strategy="no",
            report_to="none",
            logging_steps=5,
            disable_tqdm=True,
            include_num_input_tokens_seen="non_padding",
            remove_unused_columns=False,
        ),
        train_dataset=rows,
        data_collator=pad_to_max,
    )
    output = trainer.train()
    model.save_pretrained(str(args.out / "adapter"))
    runtime = output.metrics["train_runtime"]
    real = trainer.state.num_input_tokens_seen
    print(json.dumps({"real_tokens": real, "train_runtime_s": runtime, "real_tokens_per_second": real / runtime}))


if __name__ == "__main__":
    main()
