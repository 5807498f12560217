"""shoptune.train: LoRA / QLoRA supervised fine-tuning with TRL + PEFT (issue 4), and merging."""
