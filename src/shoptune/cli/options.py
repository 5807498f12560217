"""Options shared by every command that reads a config: `--config FILE` and repeated `--set key=value`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from shoptune.config import ShoptuneConfig, load_config
from shoptune.config.schema import LANGUAGES, DataConfig
from shoptune.core.paths import DEFAULT_CONFIG
from shoptune.shop import resources
from shoptune.shop.resources import Shop

F = Callable[..., Any]


def set_option(func: F) -> F:
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config value, e.g. --set train.learning_rate=1e-4 (repeatable; wins over the file).",
    )(func)


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help=f"YAML config (default: {DEFAULT_CONFIG.relative_to(DEFAULT_CONFIG.parents[1])}).",
    )(func)


def default_config() -> Path | None:
    """The embedded default config in a checkout; None (the typed defaults) where shoptune is
    installed without one, so that commands on a shop folder anywhere still run."""
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def shop_defaults(data: DataConfig, shop: Shop) -> DataConfig:
    """`data` with what the config leaves unset taken from the shop: the languages its style guide
    speaks (VoltEdge: English only) and its own system prompt, if it has one."""
    set_here = data.model_fields_set
    if "languages" not in set_here:
        spoken = tuple(lang for lang in LANGUAGES if lang in shop.style_guide.opener)
        data = data.replace(languages=spoken or data.languages)
    if shop.style_guide.system_prompt and "system_prompt" not in set_here:
        data = data.replace(system_prompt=shop.style_guide.system_prompt)
    return data


def load_cli_config(
    config_path: Path | None, overrides: tuple[str, ...], *, check_model: bool = False
) -> ShoptuneConfig:
    """Load the given config (or the embedded default) with overrides, and select its shop for this
    process (`shop.dir`); raises ConfigError listing all problems.

    `check_model` adds the checks against the model's directory and context length, for
    commands that are about to load it (train, demo), so that those are listed together
    with the file's own problems instead of failing minutes later.
    """
    checks = ()
    if check_model:
        from shoptune.models.preflight import model_problems

        checks = (model_problems,)
    config = load_config(config_path if config_path is not None else default_config(), overrides, checks=checks)
    shop = resources.use_shop(config.shop.dir, config.shop.catalogue_url)
    config = config.replace(data=shop_defaults(config.data, shop))
    if config.shop.dir is None:
        return config
    # absolute from here on: a resolved config handed to a child in another directory names the same shop
    return config.replace(shop=config.shop.replace(dir=str(shop.root)))
