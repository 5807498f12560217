"""`shoptune eval run|score|parity|pairs|gate`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from shoptune.cli.console import say
from shoptune.cli.options import config_option, load_cli_config, set_option
from shoptune.config.schema import TASKS
from shoptune.core.errors import EXIT_VERDICT_FAILED, BadInputError

_DATA = click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSONL corpus to evaluate on (e.g. the test split).",
)
_OUT = click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
_TASK = click.option(
    "--task",
    "task_name",
    default="shop",
    show_default=True,
    help="Evaluation task: a name in eval/tasks/ or a .yaml path.",
)
_BASELINE = click.option(
    "--baseline",
    type=click.Path(path_type=Path, file_okay=False),
    help="Another report on the same data: paired bootstrap verdict per metric.",
)


def _report_options(func):
    """The options `eval run` and `eval score` share: config, --set, the data, the report folder,
    the task and the baseline."""
    for option in reversed((config_option, set_option, _DATA, _OUT, _TASK, _BASELINE)):
        func = option(func)
    return func


@click.group("eval")
def eval_group() -> None:
    """Evaluate models and gate releases on the results."""


@eval_group.command("run")
@_report_options
@click.option("--model", "model", default=None, help="Registry name or model directory (in-process transformers).")
@click.option("--adapter", type=click.Path(path_type=Path, file_okay=False), help="A PEFT adapter on top of --model.")
@click.option(
    "--endpoint", default=None, help="Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
)
@click.option("--model-name", default=None, help="Model (or LoRA module) name on the endpoint.")
@click.option(
    "--extraction-model-name",
    default=None,
    help="The name on the endpoint that answers extraction records (default: serve.extraction_model_name, "
    "else --model-name): one adapter per task.",
)
@click.option(
    "--structured/--free-form",
    "structured",
    default=None,
    help="Extraction with response_format json_schema (endpoint only). Default: eval.structured_output.",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N records (smoke runs).")
def run(
    config_path,
    overrides,
    data,
    out_dir,
    task_name,
    baseline,
    model,
    adapter,
    endpoint,
    model_name,
    extraction_model_name,
    structured,
    limit,
) -> None:
    """Generate answers with a model or an endpoint, then score them into a report."""
    from shoptune.eval.backends import EndpointBackend, TransformersBackend
    from shoptune.eval.runner import EvalJob, run_evaluation
    from shoptune.eval.tasks import load_task

    config = load_cli_config(config_path, overrides)
    task = load_task(task_name)
    if (model is None) == (endpoint is None):
        raise BadInputError("give exactly one of --model NAME_OR_DIR or --endpoint URL (with --model-name)")
    structured = config.eval.structured_output if structured is None else structured
    if structured and endpoint is None:
        raise BadInputError("structured output needs an endpoint with guided decoding (vLLM): use --endpoint")
    job = EvalJob.select(config, task, data, out_dir, baseline=baseline, limit=limit)
    if endpoint is not None:
        if not model_name:
            raise BadInputError("--endpoint needs --model-name (the served model or LoRA module name)")
        api_key = os.environ.get(config.serve.api_key_env, "")
        extraction_model_name = extraction_model_name or config.serve.extraction_model_name
        backend = EndpointBackend.as_served(
            config,
            endpoint,
            model_name,
            structured=structured,
            api_key=api_key,
            extraction_model_name=extraction_model_name,
        )
        identity = {"name": model_name, "endpoint": endpoint}
        if extraction_model_name:
            identity["extraction_name"] = extraction_model_name
    else:
        from shoptune.models import resolve_config_model
        from shoptune.models.identity import model_identity

        model_dir = resolve_config_model(config.model, model, log=say)
        backend = TransformersBackend(
            model_dir,
            adapter_dir=adapter,
            dtype=config.model.dtype,
            batch_size=config.eval.batch_size,
            max_new_tokens=config.eval.max_new_tokens,
            temperature=config.eval.temperature,
        )
        identity = model_identity(model, model_dir)
        if adapter is not None:
            from shoptune.core.hashing import sha256_file

            identity["adapter"] = {"path": str(adapter), "sha256": sha256_file(adapter / "adapter_model.safetensors")}
    report = run_evaluation(job, backend, identity, structured=bool(structured), log=say)
    _summary(report, out_dir)


@eval_group.command("score")
@_report_options
@click.option(
    "--predictions",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help='JSONL of {"id": ..., "output": "raw model text"}.',
)
def score(config_path, overrides, data, out_dir, task_name, baseline, predictions) -> None:
    """Score saved outputs against an eval set, without a model."""
    from shoptune.eval.runner import EvalJob, load_predictions, score_and_save
    from shoptune.eval.tasks import load_task

    config = load_cli_config(config_path, overrides)
    job = EvalJob.select(config, load_task(task_name), data, out_dir, baseline=baseline)
    outputs = load_predictions(predictions)
    unknown = sorted(set(outputs) - {r["id"] for r in job.records})
    if unknown:
        say(f"warning: {len(unknown)} prediction id(s) match no evaluated record (e.g. {unknown[0]})")
    mode = {"backend": "saved-predictions", "structured_output": None, "predictions": str(predictions)}
    report = score_and_save(job, outputs, {"name": Path(predictions).stem}, mode)
    _summary(report, out_dir)


@eval_group.command("parity")
@config_option
@set_option
@_DATA
@_OUT
@click.option(
    "--model", "model", required=True, help="Merged model directory, or the base (name or directory) with --adapter."
)
@click.option(
    "--adapter", type=click.Path(path_type=Path, file_okay=False), help="A LoRA adapter: vLLM + LoRA vs PEFT."
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N extraction records.")
@click.option(
    "--endpoint",
    default=None,
    help="A running vLLM server (base URL) serving --model [+ --adapter] in serve.dtype, used instead of starting one.",
)
@click.option("--model-name", default=None, help="Model (or LoRA module) name on --endpoint.")
def parity(config_path, overrides, data, out_dir, model, adapter, limit, endpoint, model_name) -> None:
    """Exit 1 unless the served model answers extraction as it does in process, guided or not."""
    from shoptune.core.hardware import resolve_serve_dtype
    from shoptune.eval.parity import Endpoint, ParityServers, check_parity, write_parity
    from shoptune.eval.runner import select_records
    from shoptune.eval.tasks import load_task
    from shoptune.models import resolve_config_model

    config = load_cli_config(config_path, overrides)
    if endpoint is not None and not model_name:
        raise BadInputError("--endpoint needs --model-name (the served model or LoRA module name)")
    records = select_records(data, load_task("extraction"), limit)
    model_dir = resolve_config_model(config.model, model, log=say)
    servers = ParityServers(config, Path(out_dir), say)
    if endpoint is not None:
        running = Endpoint(endpoint, model_name, os.environ.get(config.serve.api_key_env, ""))
        servers.attach(model_dir, adapter, resolve_serve_dtype(config.serve.dtype), running)
    try:
        report = check_parity(
            config, records, model_dir=model_dir, adapter=adapter, log_dir=Path(out_dir), log=say, servers=servers
        )
    finally:
        servers.close()
    write_parity(out_dir, report, config)
    for line in report.failures:
        click.echo(f"FAIL {line}")
    for a in report.agreements:
        click.echo(f"{a.name}: {a.identical}/{a.total} identical ({a.share:.3f})")
    if report.failures:
        raise SystemExit(EXIT_VERDICT_FAILED)
    click.echo(f"parity passed; report in {out_dir}/parity.md")


@eval_group.command("pairs")
@config_option
@set_option
@click.option(
    "--data", "data_dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="A data folder."
)
@_OUT
@click.option("--endpoint", required=True, help="Base URL of the served model, e.g. http://127.0.0.1:8000/v1.")
@click.option("--model-name", required=True, help="Model (or LoRA module) name on the endpoint.")
@click.option("--samples", type=click.IntRange(2), default=4, show_default=True, help="Answers sampled per record.")
@click.option("--temperature", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=None, help="Sampling seed (default: the config's train.seed).")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    type=click.Choice(TASKS),
    help="Only records of this task (repeat for several; default: every task).",
)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N records of each split.")
def pairs(
    config_path, overrides, data_dir, out_dir, endpoint, model_name, samples, temperature, seed, tasks, limit
) -> None:
    """Make on-policy preference pairs: sample answers from a served model as the storefront asks,
    score each with the rewards train.grpo.rewards weighs, and pair the best with the worst where
    they differ (rule-made pairs: shoptune data pairs)."""
    from shoptune.eval.backends import EndpointBackend
    from shoptune.eval.onpolicy import Sampling, TrainingForm, write_on_policy_pairs
    from shoptune.models import resolve_config_model
    from shoptune.models.loading import load_tokenizer

    config = load_cli_config(config_path, overrides)
    api_key = os.environ.get(config.serve.api_key_env, "")
    backend = EndpointBackend.as_served(config, endpoint, model_name, structured=True, api_key=api_key)
    tokenizer = load_tokenizer(resolve_config_model(config.model, log=say))
    form = TrainingForm(tokenizer, config.train.max_length)  # pairs must render as training does
    sampling = Sampling(
        samples, temperature, config.train.seed if seed is None else seed, dict(config.train.grpo.rewards)
    )
    manifest = write_on_policy_pairs(data_dir, out_dir, backend, sampling, form, tasks=set(tasks) or None, limit=limit)
    for name, figures in manifest["files"].items():
        outcomes = ", ".join(f"{outcome} {n}" for outcome, n in figures["outcomes"].items())
        click.echo(f"{name:12s} {figures['records']:6d} pairs of {figures['sampled_records']} records ({outcomes})")
    say(f"wrote {out_dir}/ (check it: shoptune data check {out_dir}/train.jsonl)")


@eval_group.command("gate")
@click.argument("report_dir", type=click.Path(path_type=Path, file_okay=False))
@_BASELINE
@config_option
def gate(report_dir, baseline, config_path) -> None:
    """Exit 1 listing each failed gate (below threshold, or worse than --baseline); 0 otherwise."""
    from shoptune.config import load_config
    from shoptune.eval.gate import check_gates

    config = load_config(config_path) if config_path else None
    failures = check_gates(report_dir, config=config, baseline=baseline)
    for failure in failures:
        click.echo(f"FAIL {failure}")
    if failures:
        raise SystemExit(EXIT_VERDICT_FAILED)
    click.echo(f"all gates passed for {report_dir}")


def _summary(report: dict, out_dir: Path) -> None:
    from shoptune.eval.metrics.reported import SUMMARY

    metrics = report["metrics"]
    shown = ", ".join(f"{k} {metrics[k]:.3f}" for k in SUMMARY if k in metrics)
    click.echo(f"{report['n']} records: {shown}; report in {out_dir}")
