"""The run folder: where everything about one training run lives.

runs/<name>/
  config.yaml          resolved config
  manifest.json        git commit, data hashes, versions, seed, base model, times, final metrics
  metrics.jsonl        one record per logging step
  tensorboard/         TensorBoard event files
  checkpoints/step-NNNNNN/   complete checkpoints (adapter + optimizer + RNG + trainer state)
  final/adapter/       PEFT adapter + tokenizer + chat template (vLLM loads it as a LoRA module)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunFolder:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"

    @property
    def adapter(self) -> Path:
        return self.final / "adapter"
