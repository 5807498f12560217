"""The demo pipeline: prepare the model -> build data -> check it -> evaluate the base model ->
train LoRA -> merge (parity gate) -> evaluate the tuned model free-form and with structured output
-> served-path parity (guided = free-form, vLLM = in process, vLLM + LoRA = PEFT) -> serve it with
vLLM and the storefront, play a scripted conversation and send the hand-written extraction set
through /v1/extract -> attack it with the injection suite -> one report.

    shoptune demo                     # configs/cpu-smollm2.yaml into runs/demo (~25 min on 2 CPU cores)
    shoptune demo --quick --out runs/demo-quick   # same stages, less data and fewer steps (<10 min)
    shoptune demo --config configs/qwen2.5-7b-lora.yaml   # the real model, on a GPU machine

Every stage is the real one (`data build`, `train`, `merge`, `eval run` through vLLM's server,
the storefront API); the evaluations go through vLLM because generating 300 answers in-process
would take most of the CPU budget.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoptune.config import ShoptuneConfig, write_resolved_config
from shoptune.core.errors import BadInputError
from shoptune.core.hashing import sha256_file
from shoptune.core.paths import REPO_ROOT
from shoptune.demo.services import Services
from shoptune.demo.stages import StageRunner, content_hash

if TYPE_CHECKING:
    from shoptune.eval.parity import ParityServers

Log = Callable[[str], None]
INJECTION_SUITE = Path("datasets") / "security" / "prompt_injection.jsonl"
HANDWRITTEN = Path("eval") / "handwritten_extraction.jsonl"
"""A shop's hand-written extraction messages (the example shop has 40), in its folder."""


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "train"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def eval_base(self) -> Path:
        return self.root / "eval-base"

    @property
    def eval_tuned(self) -> Path:
        return self.root / "eval-tuned"

    @property
    def eval_guided(self) -> Path:
        return self.root / "eval-tuned-guided"

    @property
    def eval_injection(self) -> Path:
        return self.root / "eval-injection"

    @property
    def eval_handwritten(self) -> Path:
        return self.root / "eval-handwritten"

    @property
    def parity(self) -> Path:
        return self.root / "parity"

    @property
    def transcript(self) -> Path:
        return self.root / "transcript.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def demo_config(config: ShoptuneConfig, out: Path, quick: bool) -> ShoptuneConfig:
    """The config the demo runs: its own folders under `out`, and smaller sizes with --quick."""
    data = config.data.replace(dir=str(out / "data"))
    train, demo = config.train, config.demo
    if quick:
        data = data.replace(
            train_records=demo.quick_train_records,
            val_records=demo.quick_val_records,
            test_records=demo.quick_test_records,
        )
        train = train.replace(
            max_steps=demo.quick_max_steps, eval_steps=demo.quick_eval_steps, save_steps=demo.quick_eval_steps
        )
        demo = demo.replace(
            parity_adapter_records=demo.quick_parity_adapter_records,
            parity_in_process_records=demo.quick_parity_in_process_records,
        )
    serve = config.serve.replace(log_dir=str(out / "logs"), sqlite_path=str(out / "sessions.sqlite3"))
    return config.replace(data=data, train=train, serve=serve, demo=demo)


def evaluate_endpoint(
    config: ShoptuneConfig,
    data: Path,
    base_url: str,
    model_name: str,
    *,
    structured: bool,
    out_dir: Path,
    identity: dict[str, Any],
    log: Log,
    task_name: str = "shop",
    baseline: Path | None = None,
    extraction_model_name: str | None = None,
) -> dict[str, Any]:
    """Evaluate `data` through the endpoint as the storefront asks it (`extraction_model_name`
    answers the extraction records where one adapter per task is served) into `out_dir`."""
    from shoptune.eval.backends import EndpointBackend
    from shoptune.eval.metrics.reported import SUMMARY
    from shoptune.eval.runner import EvalJob, run_evaluation
    from shoptune.eval.tasks import load_task

    job = EvalJob.select(config, load_task(task_name), data, out_dir, baseline=baseline)
    backend = EndpointBackend.as_served(
        config, base_url, model_name, structured=structured, extraction_model_name=extraction_model_name
    )
    report = run_evaluation(job, backend, identity, structured=structured, log=log)
    metrics = report["metrics"]
    shown = [k for k in SUMMARY if k in metrics]
    log(f"  {model_name}: " + ", ".join(f"{key} {metrics[key]:.3f}" for key in shown))
    return {key: metrics[key] for key in shown}


@dataclass(frozen=True)
class Stage:
    """One demo stage: its name, the hash of what its result depends on, the files it must leave
    (a stage is skipped when both are as last time), and its body, which returns its summary.

    `warm_up`, when set, starts what the body will need (its servers) as soon as the stage named
    `warm_up_after` has finished, if this stage is going to run: a server then starts while the
    stages in between work, instead of after them."""

    name: str
    inputs: Callable[[DemoRun], str]
    outputs: Callable[[DemoRun], list[Path]]
    body: Callable[[DemoRun], dict[str, Any]]
    warm_up: Callable[[DemoRun], None] | None = None
    warm_up_after: str = ""


@dataclass
class DemoRun:
    """What the stages share: the resolved config and its file, the folders, the log, the servers of
    the tuned model, and the results so far (later stages' hashes chain on earlier ones')."""

    config: ShoptuneConfig
    config_path: Path
    paths: DemoPaths
    log: Log
    results: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def base(self) -> Services:
        return Services(self.config, self.model_dir, "base", self.paths.logs, self.log)

    @cached_property
    def tuned(self) -> Services:
        return Services(self.config, self.paths.merged, self.config.serve.served_model_name, self.paths.logs, self.log)

    @cached_property
    def parity_servers(self) -> ParityServers:
        from shoptune.eval.parity import ParityServers

        return ParityServers(self.config, self.paths.logs, self.log)

    def stop_servers(self) -> None:
        """Stop what the stages started (a cached property not yet read started nothing)."""
        started = self.__dict__
        if "base" in started:
            self.base.stop()
        if "tuned" in started:
            self.tuned.stop()
        if "parity_servers" in started:
            self.parity_servers.close()

    @property
    def model_dir(self) -> Path:
        return Path(self.results["prepare the model"].summary["model_dir"])

    @property
    def model_hash(self) -> str:
        return self.results["prepare the model"].summary["files_sha256"]

    @cached_property
    def identity(self) -> dict[str, Any]:
        from shoptune.models.identity import model_identity

        return model_identity(self.config.model.name, self.model_dir)

    @property
    def test_file(self) -> Path:
        return self.paths.data / "test.jsonl"

    @property
    def handwritten(self) -> Path | None:
        """The shop's hand-written extraction set, if it has one."""
        from shoptune.shop import resources

        path = resources.active().root / HANDWRITTEN
        return path if path.is_file() else None

    @property
    def data_hash(self) -> str:
        from shoptune.data.build import GENERATOR_VERSION
        from shoptune.data.imported import imported_file_hashes
        from shoptune.shop import resources

        return content_hash(
            self.model_hash,
            self.config.data.model_dump(),
            resources.source_hashes(),
            imported_file_hashes(self.config.data),
            GENERATOR_VERSION,
        )

    @property
    def eval_hash(self) -> str:
        return content_hash(self.data_hash, self.config.eval.model_dump(), self.config.serve.model_dump())

    @property
    def train_hash(self) -> str:
        return content_hash(self.data_hash, self.model_hash, self.config.train.model_dump())

    @property
    def merge_hash(self) -> str:
        adapter = self.paths.run / "final" / "adapter" / "adapter_model.safetensors"
        return content_hash(self.train_hash, sha256_file(adapter))


def prepare_model(run: DemoRun) -> dict[str, Any]:
    from shoptune.models import resolve_config_model
    from shoptune.models.identity import model_identity

    model_dir = resolve_config_model(run.config.model, log=run.log)
    return {
        "model_dir": str(model_dir),
        "files_sha256": model_identity(run.config.model.name, model_dir)["files_sha256"],
    }


def build_data(run: DemoRun) -> dict[str, Any]:
    from shoptune.data.build import build_dataset, token_limit_for
    from shoptune.models.loading import load_tokenizer

    limit = token_limit_for(run.config.model.name, load_tokenizer(run.model_dir), run.config.data.max_tokens)
    manifest = build_dataset(run.config.data, run.paths.data, limit)
    return {split: counts["records"] for split, counts in manifest["counts"].items()}


def check_data(run: DemoRun) -> dict[str, Any]:
    from shoptune.shop import resources
    from shoptune.shop.check import check_file
    from shoptune.shop.records import RecordValidator

    validator = RecordValidator(resources.schemas())
    splits = [run.paths.data / f"{split}.jsonl" for split in ("train", "val", "test")]
    problems = [str(problem) for path in splits for problem in check_file(path, validator)]
    if problems:
        raise BadInputError("the built dataset has problems:\n" + "\n".join(problems[:20]))
    return {"problems": 0}


def start_base_server(run: DemoRun) -> None:
    run.base.start_llm()


def evaluate_base(run: DemoRun) -> dict[str, Any]:
    try:
        return evaluate_endpoint(
            run.config,
            run.test_file,
            run.base.llm().base_url,
            "base",
            structured=False,
            out_dir=run.paths.eval_base,
            identity=run.identity,
            log=run.log,
        )
    finally:
        run.base.stop()


def train_lora(run: DemoRun) -> dict[str, Any]:
    from shoptune.train.recipe import run_training

    if run.paths.run.exists():
        shutil.rmtree(run.paths.run)  # inputs changed (or --force): this is a new run
    result = run_training(run.config, out_dir=run.paths.run, data_dir=run.paths.data, log=run.log)
    return result.manifest.get("final_metrics", {})


def merge_adapter(run: DemoRun) -> dict[str, Any]:
    from shoptune.train.merge import merge_run

    report = merge_run(run.paths.run, run.paths.merged, log=run.log)
    return {
        "max_abs_logit_diff": report.max_abs_logit_diff,
        "atol": report.atol,
        "generations_identical": report.generations_identical,
    }


def evaluate_tuned(
    data: Callable[[DemoRun], Path],
    out_dir: Callable[[DemoPaths], Path],
    *,
    structured: bool = False,
    task_name: str = "shop",
) -> Callable[[DemoRun], dict[str, Any]]:
    """A stage body: evaluate the served tuned model on `data` into `out_dir`; on the test split it
    is paired against the base model's report."""

    def body(run: DemoRun) -> dict[str, Any]:
        file = data(run)
        return evaluate_endpoint(
            run.config,
            file,
            run.tuned.llm().base_url,
            run.tuned.served_name,
            out_dir=out_dir(run.paths),
            identity={
                "name": f"{run.config.name}-merged",
                "directory": str(run.paths.merged),
                "merged_from": str(run.paths.run),
            },
            log=run.log,
            structured=structured,
            task_name=task_name,
            baseline=run.paths.eval_base if file == run.test_file else None,
        )

    return body


def start_parity_servers(run: DemoRun) -> None:
    """The parity check's two fp32 servers (merged; base + adapter): on a CPU they start now."""
    run.parity_servers.want(run.paths.merged, None, "float32")
    run.parity_servers.want(run.model_dir, run.paths.run / "final" / "adapter", "float32")


def served_parity(run: DemoRun) -> dict[str, Any]:
    start_parity_servers(run)  # when the warm-up did not (its stage skipped): now
    try:
        return check_demo_parity(run.config, run.paths, run.model_dir, run.parity_servers, run.log)
    finally:
        run.parity_servers.close()


def converse(run: DemoRun) -> dict[str, Any]:
    """The scripted conversation, a few test records of each of the shop's schemas and the shop's
    hand-written extraction set (if it has one) through the storefront."""
    from shoptune.demo.conversation import play, schema_samples
    from shoptune.shop import resources
    from shoptune.shop.orders import OrderBook
    from shoptune.shop.reading import read_records
    from shoptune.shop.script import SCRIPT_FILE, read_script

    sessions = run.paths.root / "sessions.sqlite3"
    sessions.unlink(missing_ok=True)  # a fresh conversation every time it is replayed
    shop = resources.active()
    handwritten = read_records(run.handwritten) if run.handwritten else []
    orders = OrderBook.open(run.config.shop.orders_url, shop.root)
    script = read_script(shop.root)
    if not script.sessions:
        run.log(f"  {shop.root / SCRIPT_FILE}: no demo script, so no scripted conversation")
    transcript = play(
        run.tuned.storefront(run.config_path),
        run.tuned.api_key,
        orders,
        script,
        say=run.log,
        handwritten=handwritten,
        extractions=schema_samples(script, read_records(run.test_file), shop.schemas),
    )
    run.paths.transcript.write_text(json.dumps(transcript, ensure_ascii=False, indent=2), encoding="utf-8")
    summary = {
        "turns": len(transcript["turns"]),
        "flagged_turns": sum(bool(t["flags"]) for t in transcript["turns"]),
        "extractions_exact": sum(not e["flags"] for e in transcript["extractions"]),
    }
    if handwritten:
        hand = score_saved(run.config, run.handwritten, transcript["handwritten"], run.paths.eval_handwritten)
        summary["handwritten_micro_f1"] = hand["micro_f1"]
    return summary


def _report_json(folder: Callable[[DemoPaths], Path]) -> Callable[[DemoRun], list[Path]]:
    return lambda run: [folder(run.paths) / "report.json"]


STAGES: tuple[Stage, ...] = (
    Stage(
        "prepare the model",
        lambda run: content_hash(run.config.model.name, run.config.model.path),
        lambda run: [],
        prepare_model,
    ),
    Stage("build the dataset", lambda run: run.data_hash, lambda run: [run.paths.data / "manifest.json"], build_data),
    Stage("check the dataset", lambda run: run.data_hash, lambda run: [], check_data),
    Stage(
        "evaluate the base model",
        lambda run: content_hash(run.eval_hash, run.model_hash),
        _report_json(lambda paths: paths.eval_base),
        evaluate_base,
        warm_up=start_base_server,
        warm_up_after="prepare the model",
    ),
    Stage(
        "train LoRA",
        lambda run: run.train_hash,
        lambda run: [run.paths.run / "final" / "adapter" / "adapter_config.json"],
        train_lora,
    ),
    Stage(
        "merge with the parity gate",
        lambda run: run.merge_hash,
        lambda run: [run.paths.merged / "model.safetensors"],
        merge_adapter,
    ),
    Stage(
        "evaluate the tuned model (free-form)",
        lambda run: content_hash(run.eval_hash, run.merge_hash),
        _report_json(lambda paths: paths.eval_tuned),
        evaluate_tuned(lambda run: run.test_file, lambda paths: paths.eval_tuned),
    ),
    Stage(
        "evaluate the tuned model (structured output, as served)",
        lambda run: content_hash(run.eval_hash, run.merge_hash, "guided"),
        _report_json(lambda paths: paths.eval_guided),
        evaluate_tuned(lambda run: run.test_file, lambda paths: paths.eval_guided, structured=True),
    ),
    Stage(
        "served-path parity (guided = free-form, vLLM = in process, LoRA = PEFT)",
        lambda run: content_hash(
            run.eval_hash,
            run.merge_hash,
            "parity",
            run.config.demo.parity_adapter_records,
            run.config.demo.parity_in_process_records,
        ),
        lambda run: [run.paths.parity / "merged" / "parity.json", run.paths.parity / "adapter" / "parity.json"],
        served_parity,
        warm_up=start_parity_servers,
        warm_up_after="merge with the parity gate",
    ),
    Stage(
        "serve with vLLM + storefront: conversation, /v1/extract, hand-written set",
        lambda run: content_hash(run.merge_hash, run.config.serve.model_dump(), run.config.shop.model_dump()),
        lambda run: [run.paths.transcript, *([run.paths.eval_handwritten / "report.json"] if run.handwritten else [])],
        converse,
    ),
    Stage(
        "attack the tuned model with the prompt-injection suite",
        lambda run: content_hash(run.eval_hash, run.merge_hash, sha256_file(REPO_ROOT / INJECTION_SUITE)),
        _report_json(lambda paths: paths.eval_injection),
        evaluate_tuned(
            lambda run: REPO_ROOT / INJECTION_SUITE, lambda paths: paths.eval_injection, task_name="injection"
        ),
    ),
)


def warm_up_later_stages(runner: StageRunner, run: DemoRun, *, after: str) -> None:
    """Call the warm-up of every stage that waits on `after` and will run."""
    for later in STAGES:
        waits_on_it = later.warm_up is not None and later.warm_up_after == after
        if waits_on_it and not runner.will_skip(later.name, later.inputs(run), later.outputs(run)):
            later.warm_up(run)


def run_demo(base_config: ShoptuneConfig, out: Path, *, quick: bool, force: bool, log: Log) -> dict[str, Any]:
    """Run every stage in order (skipping the unchanged ones), then write the report; its summary."""
    from shoptune.demo.report import write_demo_report

    out = Path(out)
    paths = DemoPaths(out)
    paths.logs.mkdir(parents=True, exist_ok=True)
    config = demo_config(base_config, out, quick)
    config_path = write_resolved_config(config, out, header=f"shoptune demo{' --quick' if quick else ''}")
    runner = StageRunner(out / "demo-state.json", force=force, announce=log, total=len(STAGES) + 1)
    run = DemoRun(config, config_path, paths, log)
    try:
        for stage in STAGES:
            run.results[stage.name] = runner.run(
                stage.name, stage.inputs(run), stage.outputs(run), lambda stage=stage: stage.body(run)
            )
            warm_up_later_stages(runner, run, after=stage.name)
    finally:
        run.stop_servers()
    summary = runner.run("write the report", content_hash(time.time()), [], lambda: write_demo_report(out, runner))
    return summary.summary


def _saved_outputs(report_dir: Path) -> dict[str, str]:
    from shoptune.eval.runner import load_predictions

    return load_predictions(report_dir / "predictions.jsonl")


def check_demo_parity(
    config: ShoptuneConfig, paths: DemoPaths, base_model_dir: Path, servers: ParityServers, log: Log
) -> dict[str, Any]:
    """`eval parity` on the demo's models: the merged model's structured = free-form on every test
    extraction record (reusing the two tuned eval stages' outputs) and vLLM = in process on the first
    `demo.parity_in_process_records`, and base + LoRA adapter on the first `demo.parity_adapter_records`."""
    from shoptune.eval.parity import check_parity, write_parity
    from shoptune.shop.reading import read_records

    records = [r for r in read_records(paths.data / "test.jsonl") if r["task"] == "extract"]
    served = {"free": _saved_outputs(paths.eval_tuned), "structured": _saved_outputs(paths.eval_guided)}
    merged = check_parity(
        config,
        records,
        model_dir=paths.merged,
        served=served,
        in_process_records=config.demo.parity_in_process_records,
        log_dir=paths.logs,
        log=log,
        servers=servers,
    )
    adapter = check_parity(
        config,
        records[: config.demo.parity_adapter_records],
        model_dir=base_model_dir,
        adapter=paths.run / "final" / "adapter",
        structured_check=False,
        log_dir=paths.logs,
        log=log,
        servers=servers,
    )
    write_parity(paths.parity / "merged", merged, config)
    write_parity(paths.parity / "adapter", adapter, config)
    summary = {}
    for label, report in (("merged", merged), ("adapter", adapter)):
        for agreement in report.agreements:
            log(f"  {label}: {agreement.name}: {agreement.identical}/{agreement.total} identical")
        for failure in report.failures:
            log(f"  {label}: FAIL {failure}")
        summary[label] = {a.name: round(a.share, 4) for a in report.agreements}
        summary[f"{label}_passed"] = not report.failures
    return summary


def score_saved(config: ShoptuneConfig, data: Path, outputs: dict[str, str], out_dir: Path) -> dict[str, Any]:
    """Score outputs gathered outside an eval backend (the storefront's /v1/extract) into a report."""
    from shoptune.eval.runner import EvalJob, score_and_save
    from shoptune.eval.tasks import load_task

    job = EvalJob.select(config, load_task("extraction"), data, out_dir)
    model = {"name": config.serve.served_model_name, "path": "/v1/extract"}
    report = score_and_save(job, outputs, model, {"backend": "storefront /v1/extract", "structured_output": True})
    return report["metrics"]
