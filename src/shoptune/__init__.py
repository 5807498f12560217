"""shoptune: LoRA fine-tuning and evaluation workbench for e-commerce customer service.

The package is split by stage: `shoptune.config` (typed configs), `shoptune.models` (the offline
model registry), `shoptune.train`, `shoptune.eval` and `shoptune.serve` (in the repo's top-level
`train/`, `eval/` and `serve/` folders), tied together by the `shoptune` CLI.
"""

__version__ = "0.1.0"
