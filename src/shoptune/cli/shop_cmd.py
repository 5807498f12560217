"""`shoptune shop ...`: scaffold a shop folder and check one."""

from __future__ import annotations

from pathlib import Path

import click

from shoptune.cli.console import say
from shoptune.cli.options import config_option, load_cli_config, set_option
from shoptune.core.errors import EXIT_VERDICT_FAILED


@click.group("shop")
def shop_group() -> None:
    """A shop is a folder: catalogue, extraction schemas, policy, style guide, templates."""


@shop_group.command("init")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
def init(folder: Path) -> None:
    """Write a new shop FOLDER from the example shop, with a README of each file, to edit."""
    from shoptune.shop.folder import init_shop

    init_shop(folder)
    say(f"shop written to {folder}: edit it, then `shoptune shop check {folder}`")


@shop_group.command("check")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@config_option
@set_option
def check(folder: Path, config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Validate every file of FOLDER; print FILE:LINE: field: problem for each and exit 1 if any.
    Schemas are also checked against the config's guided-decoding backend (serve.structured_output_backend)."""
    from shoptune.shop.folder import check_shop, schema_summary

    # the folder checked is the shop selected (a config's own shop.dir, or the example shop, need not exist)
    backend = load_cli_config(config_path, (*overrides, f"shop.dir={folder}")).serve.structured_output_backend
    problems = check_shop(folder, backend=backend)
    for problem in problems:
        click.echo(str(problem))
    if problems:
        click.echo(f"{len(problems)} problem(s) in {folder}", err=True)
        raise SystemExit(EXIT_VERDICT_FAILED)
    say(f"{folder}: no problems; extraction schemas:")
    for line in schema_summary(folder):
        click.echo(f"  {line}")


@shop_group.command("catalogue-db")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("url")
def catalogue_db(folder: Path, url: str) -> None:
    """Copy FOLDER's catalogue into the `products` table of the database at URL (a SQLAlchemy URL,
    e.g. sqlite:///shop.db); then `--set shop.catalogue_url=URL` serves from it, live."""
    from shoptune.shop.catalogue import FileCatalogue, write_catalogue
    from shoptune.shop.resources import catalogue_file

    count = write_catalogue(url, FileCatalogue(catalogue_file(folder)).products())
    say(f"{count} products written to {url}")


@shop_group.command("orders-db")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("url")
def orders_db(folder: Path, url: str) -> None:
    """Load FOLDER's sample orders (orders/orders.jsonl) into a new order database at URL; then
    `--set shop.orders_url=URL` makes the chat look orders up there."""
    from shoptune.shop.catalogue import connect
    from shoptune.shop.orders import ORDERS_FILE, read_orders, write_orders

    count = write_orders(connect(url), read_orders(folder / ORDERS_FILE))
    say(f"{count} orders written to {url}")
