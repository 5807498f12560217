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
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.config import ShoptuneConfig, write_resolved_config
from shoptune.core.errors import BadInputError, EnvironmentProblem
from shoptune.core.hashing import sha256_file
from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.demo.stages import StageRunner, content_hash

Log = Callable[[str], None]
STAGES = 12
INJECTION_SUITE = Path("datasets") / "security" / "prompt_injection.jsonl"
HANDWRITTEN = Path("datasets") / "eval" / "handwritten_extraction.jsonl"


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
        demo = demo.replace(parity_adapter_records=demo.quick_parity_adapter_records)
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
) -> dict[str, Any]:
    from shoptune.eval.backends import EndpointBackend
    from shoptune.eval.metrics.reported import SUMMARY
    from shoptune.eval.runner import run_evaluation, select_records
    from shoptune.eval.tasks import load_task
    from shoptune.shop.decoding import reply_request

    task = load_task(task_name)
    backend = EndpointBackend(
        base_url,
        model_name,
        api_key="",
        concurrency=config.eval.concurrency,
        reply=reply_request(config.serve),
        structured_output=structured,
    )
    report = run_evaluation(
        config=config,
        task=task,
        data=data,
        records=select_records(data, task, None),
        backend=backend,
        identity=identity,
        structured=structured,
        out_dir=out_dir,
        baseline=baseline,
        log=log,
    )
    metrics = report["metrics"]
    shown = [k for k in SUMMARY if k in metrics]
    log(f"  {model_name}: " + ", ".join(f"{key} {metrics[key]:.3f}" for key in shown))
    return {key: metrics[key] for key in shown}


class Services:
    """vLLM (and, on demand, the storefront) for the model under test, started once, stopped at the end."""

    def __init__(self, config: ShoptuneConfig, model_dir: Path, served_name: str, logs: Path, log: Log) -> None:
        self.config, self.model_dir, self.served_name, self.logs, self.log = config, model_dir, served_name, logs, log
        self.vllm = None
        self.app: subprocess.Popen | None = None
        self.app_url = ""
        self.api_key = secrets.token_urlsafe(24)

    def llm(self):
        if self.vllm is None:
            from shoptune.serve.vllm_server import VllmServer

            self.vllm = VllmServer(
                model_dir=self.model_dir,
                config=self.config.serve,
                served_name=self.served_name,
                port=free_port(),
                log_path=self.logs / f"vllm-{self.served_name}.log",
            )
            self.vllm.start()
            self.log(f"  starting vLLM for {self.model_dir.name} (log {self.vllm.log_path})")
            seconds = self.vllm.wait_ready()
            self.log(f"  vLLM ready at {self.vllm.base_url} in {seconds:.0f} s")
        return self.vllm

    def storefront(self, config_path: Path) -> str:
        if self.app is None:
            import httpx

            port = free_port()
            env = {**os.environ, self.config.serve.api_key_env: self.api_key}
            log_file = open(self.logs / "storefront-stdout.log", "ab")  # noqa: SIM115 (lives as long as the app)
            self.app = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shoptune",
                    "serve",
                    "app",
                    "--config",
                    str(config_path),
                    "--llm",
                    self.llm().base_url,
                    "--model-name",
                    self.served_name,
                    "--tokenizer",
                    str(self.model_dir),
                    "--port",
                    str(port),
                ],
                cwd=REPO_ROOT,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self.app_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if self.app.poll() is not None:
                    raise EnvironmentProblem(f"the storefront exited ({self.app.returncode}); see {self.logs}")
                try:
                    if httpx.get(f"{self.app_url}/healthz", timeout=2).status_code == 200:
                        self.log(f"  storefront ready at {self.app_url}")
                        return self.app_url
                except httpx.HTTPError:
                    time.sleep(0.5)
            raise EnvironmentProblem("the storefront did not start in 120 s")
        return self.app_url

    def stop(self) -> None:
        if self.app is not None and self.app.poll() is None:
            os.killpg(self.app.pid, 15)
            self.app.wait(timeout=30)
        if self.vllm is not None:
            self.vllm.stop()


def run_demo(base_config: ShoptuneConfig, out: Path, *, quick: bool, force: bool, log: Log) -> dict[str, Any]:
    from shoptune.data.build import GENERATOR_VERSION, build_dataset, token_limit_for
    from shoptune.demo.conversation import play
    from shoptune.demo.report import write_demo_report
    from shoptune.models import resolve_config_model
    from shoptune.models.identity import model_identity
    from shoptune.models.loading import load_tokenizer
    from shoptune.shop import resources
    from shoptune.shop.check import check_file
    from shoptune.shop.reading import read_records
    from shoptune.shop.records import RecordValidator
    from shoptune.train.merge import merge_run
    from shoptune.train.recipe import run_training

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = DemoPaths(out)
    paths.logs.mkdir(exist_ok=True)
    config = demo_config(base_config, out, quick)
    config_path = write_resolved_config(config, out, header=f"shoptune demo{' --quick' if quick else ''}")
    runner = StageRunner(out / "demo-state.json", force=force, announce=log, total=STAGES)
    identity: dict[str, Any] = {}

    def prepare() -> dict[str, Any]:
        model_dir = resolve_config_model(config.model, log=log)
        identity.update(model_identity(config.model.name, model_dir))
        return {"model_dir": str(model_dir), "files_sha256": identity["files_sha256"]}

    prepared = runner.run("prepare the model", content_hash(config.model.name, config.model.path), [], prepare)
    model_dir = Path(prepared.summary["model_dir"])
    if not identity:
        identity.update(model_identity(config.model.name, model_dir))
    model_hash = prepared.summary["files_sha256"]

    data_hash = content_hash(model_hash, config.data.model_dump(), resources.source_hashes(), GENERATOR_VERSION)

    def build() -> dict[str, Any]:
        limit = token_limit_for(config.model.name, load_tokenizer(model_dir), config.data.max_tokens)
        manifest = build_dataset(config.data, paths.data, limit)
        return {split: counts["records"] for split, counts in manifest["counts"].items()}

    runner.run("build the dataset", data_hash, [paths.data / "manifest.json"], build)

    def check() -> dict[str, Any]:
        validator = RecordValidator(resources.schemas())
        problems = [
            str(p) for split in ("train", "val", "test") for p in check_file(paths.data / f"{split}.jsonl", validator)
        ]
        if problems:
            raise BadInputError("the built dataset has problems:\n" + "\n".join(problems[:20]))
        return {"problems": 0}

    runner.run("check the dataset", data_hash, [], check)
    test_file = paths.data / "test.jsonl"
    eval_hash = content_hash(data_hash, config.eval.model_dump(), config.serve.model_dump())

    def eval_base() -> dict[str, Any]:
        services = Services(config, model_dir, "base", paths.logs, log)
        try:
            return evaluate_endpoint(
                config,
                test_file,
                services.llm().base_url,
                "base",
                structured=False,
                out_dir=paths.eval_base,
                identity=identity,
                log=log,
            )
        finally:
            services.stop()

    runner.run(
        "evaluate the base model", content_hash(eval_hash, model_hash), [paths.eval_base / "report.json"], eval_base
    )
    train_hash = content_hash(data_hash, model_hash, config.train.model_dump())

    def train() -> dict[str, Any]:
        if paths.run.exists():
            shutil.rmtree(paths.run)  # inputs changed (or --force): this is a new run
        result = run_training(config, out_dir=paths.run, data_dir=paths.data, log=log)
        return result.manifest.get("final_metrics", {})

    runner.run("train LoRA", train_hash, [paths.run / "final" / "adapter" / "adapter_config.json"], train)
    adapter_hash = sha256_file(paths.run / "final" / "adapter" / "adapter_model.safetensors")
    merge_hash = content_hash(train_hash, adapter_hash)

    def merge() -> dict[str, Any]:
        report = merge_run(paths.run, paths.merged, log=log)
        return {
            "max_abs_logit_diff": report.max_abs_logit_diff,
            "atol": report.atol,
            "generations_identical": report.generations_identical,
        }

    runner.run("merge with the parity gate", merge_hash, [paths.merged / "model.safetensors"], merge)

    tuned = Services(config, paths.merged, config.serve.served_model_name, paths.logs, log)
    tuned_identity = {"name": f"{config.name}-merged", "directory": str(paths.merged), "merged_from": str(paths.run)}

    def evaluate_tuned(data: Path, out_dir: Path, *, structured: bool = False, task_name: str = "shop"):
        """A stage body: evaluate the served tuned model on `data` into `out_dir` (paired against
        the base model's report on the test split)."""
        return lambda: evaluate_endpoint(
            config,
            data,
            tuned.llm().base_url,
            tuned.served_name,
            structured=structured,
            out_dir=out_dir,
            identity=tuned_identity,
            log=log,
            task_name=task_name,
            baseline=paths.eval_base if data == test_file else None,
        )

    def parity() -> dict[str, Any]:
        return check_demo_parity(config, paths, model_dir, log)

    def converse() -> dict[str, Any]:
        if (out / "sessions.sqlite3").exists():
            (out / "sessions.sqlite3").unlink()  # a fresh conversation every time it is replayed
        handwritten = read_records(REPO_ROOT / HANDWRITTEN)
        transcript = play(tuned.storefront(config_path), tuned.api_key, say=log, handwritten=handwritten)
        paths.transcript.write_text(json.dumps(transcript, ensure_ascii=False, indent=2), encoding="utf-8")
        hand = score_saved(config, REPO_ROOT / HANDWRITTEN, transcript["handwritten"], paths.eval_handwritten)
        return {
            "turns": len(transcript["turns"]),
            "flagged_turns": sum(bool(t["flags"]) for t in transcript["turns"]),
            "extractions_exact": sum(not e["flags"] for e in transcript["extractions"]),
            "handwritten_micro_f1": hand["micro_f1"],
        }

    try:
        runner.run(
            "evaluate the tuned model (free-form)",
            content_hash(eval_hash, merge_hash),
            [paths.eval_tuned / "report.json"],
            evaluate_tuned(test_file, paths.eval_tuned),
        )
        runner.run(
            "evaluate the tuned model (structured output, as served)",
            content_hash(eval_hash, merge_hash, "guided"),
            [paths.eval_guided / "report.json"],
            evaluate_tuned(test_file, paths.eval_guided, structured=True),
        )
        runner.run(
            "served-path parity (guided = free-form, vLLM = in process, LoRA = PEFT)",
            content_hash(eval_hash, merge_hash, "parity", config.demo.parity_adapter_records),
            [paths.parity / "merged" / "parity.json", paths.parity / "adapter" / "parity.json"],
            parity,
        )
        runner.run(
            "serve with vLLM + storefront: conversation, /v1/extract, hand-written set",
            content_hash(merge_hash, config.serve.model_dump(), sha256_file(REPO_ROOT / HANDWRITTEN)),
            [paths.transcript, paths.eval_handwritten / "report.json"],
            converse,
        )
        injection = REPO_ROOT / INJECTION_SUITE
        runner.run(
            "attack the tuned model with the prompt-injection suite",
            content_hash(eval_hash, merge_hash, sha256_file(injection)),
            [paths.eval_injection / "report.json"],
            evaluate_tuned(injection, paths.eval_injection, task_name="injection"),
        )
    finally:
        tuned.stop()

    summary = runner.run("write the report", content_hash(time.time()), [], lambda: write_demo_report(out, runner))
    return summary.summary


def _saved_outputs(report_dir: Path) -> dict[str, str]:
    from shoptune.eval.runner import load_predictions

    return load_predictions(report_dir / "predictions.jsonl")


def check_demo_parity(config: ShoptuneConfig, paths: DemoPaths, base_model_dir: Path, log: Log) -> dict[str, Any]:
    """`eval parity` on the demo's models: the merged model on every test extraction record (reusing
    the two tuned eval stages' outputs), and base + LoRA adapter on the first `demo.parity_adapter_records`."""
    from shoptune.eval.parity import check_parity, write_parity
    from shoptune.shop.reading import read_records

    records = [r for r in read_records(paths.data / "test.jsonl") if r["task"] == "extract"]
    served = {"free": _saved_outputs(paths.eval_tuned), "structured": _saved_outputs(paths.eval_guided)}
    merged = check_parity(config, records, model_dir=paths.merged, served=served, log_dir=paths.logs, log=log)
    write_parity(paths.parity / "merged", merged, config)
    adapter = check_parity(
        config,
        records[: config.demo.parity_adapter_records],
        model_dir=base_model_dir,
        adapter=paths.run / "final" / "adapter",
        structured_check=False,
        log_dir=paths.logs,
        log=log,
    )
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
    from shoptune.eval.runner import score_and_save, select_records
    from shoptune.eval.tasks import load_task

    task = load_task("extraction")
    report = score_and_save(
        config=config,
        task=task,
        data=data,
        records=select_records(data, task, None),
        predictions=outputs,
        model={"name": config.serve.served_model_name, "path": "/v1/extract"},
        mode={"backend": "storefront /v1/extract", "structured_output": True},
        baseline=None,
        out_dir=out_dir,
    )
    return report["metrics"]
