"""Typed, validated configuration: one frozen pydantic model per stage, loaded from YAML + `--set` overrides.

from shoptune.config import load_config
cfg = load_config("configs/tiny-qwen.yaml", overrides=["train.learning_rate=1e-4"])
"""

from shoptune.config.loader import ConfigError, json_schema, load_config, to_yaml, write_resolved_config
from shoptune.config.schema import (
    DataConfig,
    DemoConfig,
    EvalConfig,
    ModelConfig,
    ServeConfig,
    ShoptuneConfig,
    TrainConfig,
)

__all__ = [
    "ConfigError",
    "DataConfig",
    "DemoConfig",
    "EvalConfig",
    "ModelConfig",
    "ServeConfig",
    "ShoptuneConfig",
    "TrainConfig",
    "json_schema",
    "load_config",
    "to_yaml",
    "write_resolved_config",
]
