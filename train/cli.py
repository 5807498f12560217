"""`shoptune train CONFIG` and `shoptune merge RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import click

from shoptune.cli.console import say
from shoptune.cli.options import load_cli_config, set_option


def _model_config_without_weights(config) -> dict:
    """config.json of the model: from its directory when available, else the bundled snapshot."""
    import importlib.resources
    import json
    import os

    from shoptune.models import REGISTRY
    from shoptune.models.registry import read_manifest

    name = config.model.name
    candidates = []
    if config.model.path:
        candidates.append(Path(config.model.path))
    spec = REGISTRY.get(name)
    if spec is not None and spec.path_env and os.environ.get(spec.path_env):
        candidates.append(Path(os.environ[spec.path_env]))
    manifest = read_manifest(name) if spec is not None else None
    if manifest:
        candidates.append(Path(manifest["location"]))
    if spec is None:
        candidates.append(Path(name))
    candidates.append(Path(str(importlib.resources.files("shoptune.models") / "architectures" / f"{name}.json")))
    for candidate in candidates:
        path = candidate if candidate.suffix == ".json" else candidate / "config.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    from shoptune.models import resolve_model_dir

    return json.loads((resolve_model_dir(name, log=say) / "config.json").read_text(encoding="utf-8"))


@click.command("train")
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path, dir_okay=False))
@set_option
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Run folder (default runs/<name>)."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder with train.jsonl and val.jsonl (default: the config's data.dir, built on first use).",
)
@click.option("--resume", is_flag=True, help="Continue from the newest complete checkpoint in the run folder.")
@click.option("--dry-run", is_flag=True, help="Print parameters, memory and time estimates; train nothing.")
@click.option(
    "--peak-tflops", type=float, default=None, help="With --dry-run: the GPU's peak TFLOP/s (H100 bf16: 989)."
)
def train(
    config_path: Path,
    overrides: tuple[str, ...],
    out_dir: Path | None,
    data_dir: Path | None,
    resume: bool,
    dry_run: bool,
    peak_tflops: float | None,
) -> None:
    """Fine-tune the config's model with LoRA/QLoRA (TRL SFTTrainer + PEFT) on the built dataset."""
    # A bad config (with the model's own limits, unless planning without weights) is reported
    # in full before anything else happens.
    config = load_cli_config(config_path, overrides, check_model=not dry_run)
    if dry_run:
        from shoptune.train.estimate import estimate, planned_steps, render

        model_config = _model_config_without_weights(config)
        click.echo(
            render(
                estimate(config, model_config, peak_tflops=peak_tflops),
                config,
                planned_steps(config, config.data.train_records),
            )
        )
        return
    from shoptune.train.recipe import run_training

    out_dir = out_dir or Path(config.train.output_root) / config.name
    result = run_training(config, out_dir=out_dir, data_dir=data_dir, resume=resume, log=say)
    if not result.main_process:
        return
    final = result.manifest.get("final_metrics", {})
    click.echo(
        f"run {result.run.root}: {final.get('steps')} steps, last loss {final.get('train_loss_last')}, "
        f"eval loss {final.get('eval_loss')}, adapter {result.run.adapter}"
    )


@click.command("merge")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--atol", type=float, default=None, help="Logit tolerance (default: 1e-3 for fp32, 5e-2 for bf16/fp16).")
def merge(run_dir: Path, out_dir: Path, atol: float | None) -> None:
    """Merge a run's adapter into its base model; exit 1 unless logits and greedy outputs match."""
    from shoptune.train.merge import merge_run

    report = merge_run(run_dir, out_dir, atol=atol, log=say)
    click.echo(
        f"merged into {report.out_dir}: max |logit diff| {report.max_abs_logit_diff:.3g} <= {report.atol:g}, "
        f"greedy generations identical on {report.probes} probes"
    )
