"""`shoptune demo`: the end-to-end pipeline on one config, with one report."""

from __future__ import annotations

from pathlib import Path

import click

from shoptune.cli.console import say
from shoptune.cli.options import config_option, load_cli_config, set_option


@click.command("demo")
@config_option
@set_option
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/demo"), show_default=True
)
@click.option("--quick", is_flag=True, help="Same stages on less data and fewer steps (CI runs this).")
@click.option("--force", is_flag=True, help="Rerun every stage, even those whose inputs have not changed.")
def demo(config_path: Path | None, overrides: tuple[str, ...], out_dir: Path, quick: bool, force: bool) -> None:
    """Run data -> LoRA -> merge -> eval base vs tuned -> vLLM -> storefront, with one report.

    Default config: configs/cpu-smollm2.yaml (the embedded SmolLM2-135M-Instruct). Stages whose
    inputs have not changed since the last run are skipped (content hashes) unless --force.
    """
    from shoptune.demo.pipeline import run_demo

    config = load_cli_config(config_path, overrides, check_model=True)
    summary = run_demo(config, out_dir, quick=quick, force=force, log=say)
    missed = summary.get("goals_missed", [])
    click.echo(
        f"demo finished: {out_dir}/report.html and {out_dir}/report.md; served extraction exact match "
        f"{summary.get('served_exact_match_rate') or 0:.3f}, micro-F1 {summary.get('served_micro_f1') or 0:.3f}; "
        + (f"{len(missed)} goal(s) missed: {'; '.join(missed)}" if missed else "every goal met")
    )
