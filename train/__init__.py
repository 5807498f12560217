"""shoptune.train: LoRA / QLoRA supervised fine-tuning with TRL + PEFT, and merging."""
