"""Shared fixtures. Every test runs offline: an accidental hub call must fail loudly."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.core.process import ChildProcess, http_ok, shoptune_argv
from shoptune.models import prepare_model

SHOPTUNE_BIN = Path(sys.executable).with_name("shoptune")


MODEL_FIXTURES = {"tiny_qwen_dir", "smollm2_dir", "tiny_data"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs a prepared model, directly, through any fixture it uses, or by a fixture name
    it is parametrized with, is `slow`: it loads weights, trains or serves. `pytest -m "not slow"` is
    the fast tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        named = {value for value in callspec.params.values() if isinstance(value, str)} if callspec else set()
        if MODEL_FIXTURES & (set(getattr(item, "fixturenames", ())) | named):  # named: getfixturevalue(param)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def example_shop() -> Iterator[None]:
    """Each test starts and ends on the example shop: a command run in process with another
    `shop.dir` selects that shop for the process (`resources.use_shop`), and must not leak."""
    from shoptune.shop import resources

    resources.use_shop(None)
    yield
    resources.use_shop(None)


@pytest.fixture(scope="session")
def tiny_qwen_dir() -> Path:
    """tiny-qwen2.5 prepared in the shared cache ($SHOPTUNE_HOME), built once per machine."""
    return prepare_model("tiny-qwen2.5")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return prepare_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path) -> Path:
    """The tiny-qwen config's corpus, built once per test session by the real `data build`."""
    out = tmp_path_factory.mktemp("tiny-data")
    done = invoke_shoptune("data", "build", "--config", "configs/tiny-qwen.yaml", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def pair_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus large enough for every kind of rule-made failure (data/pairs.py) to apply
    somewhere, built without a tokenizer; the pairs and the GRPO rewards are tested on it."""
    out = tmp_path_factory.mktemp("pair-corpus")
    done = invoke_shoptune(
        "data", "build", "--config", "configs/tiny-qwen.yaml", "--out", str(out), "--no-length-limit",
        "--set", "data.train_records=240", "--set", "data.val_records=16", "--set", "data.test_records=16",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path) -> Path:
    """A LoRA adapter with non-zero weights on tiny-qwen2.5, saved as vLLM loads it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir)
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    out = tmp_path_factory.mktemp("adapter") / "shop-lora"
    get_peft_model(model, lora).save_pretrained(out)
    return out


class SharedVllm:
    """The one vLLM server the serving tests share: tiny-qwen2.5 as "shop" with `tiny_adapter` as
    "shop-lora", on the tiny-qwen config's serve settings but in fp32 (`DTYPE`), so that `eval
    parity --endpoint` can hold it to transformers in fp32 (on a 2-layer model fp32 costs nothing).
    Constructing it starts the server; `ready()` waits for it. A test that kills it on purpose calls
    `restart()`, which brings up the same server on the same port."""

    DTYPE = "float32"

    def __init__(self, model_dir: Path, adapter: Path, logs: Path) -> None:
        from shoptune.config import load_config

        self.model_dir, self.adapter, self.logs = model_dir, adapter, logs
        self.serve = load_config(REPO_ROOT / "configs" / "tiny-qwen.yaml").serve.replace(dtype=self.DTYPE)
        self.port, self.starts = free_port(), 0
        self.server = self.launch()

    def launch(self):
        from shoptune.serve.vllm_server import VllmServer, parse_lora

        self.starts += 1
        server = VllmServer(
            model_dir=self.model_dir,
            config=self.serve,
            served_name="shop",
            port=self.port,
            loras=[parse_lora(f"shop-lora={self.adapter}")],
            log_path=self.logs / f"vllm-{self.starts}.log",
        )
        return server.start()

    def ready(self) -> SharedVllm:
        try:
            self.server.wait_ready(timeout_s=600)
        except BaseException:
            self.server.stop()
            raise
        return self

    def restart(self):
        self.server.stop()
        self.server = self.launch()
        return self.ready().server


@pytest.fixture(scope="session")
def tiny_vllm(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path, tiny_adapter: Path):
    """The shared server (see `SharedVllm`), once it answers; stopped at the end of the session, its
    whole process group gone."""
    shared = SharedVllm(tiny_qwen_dir, tiny_adapter, tmp_path_factory.mktemp("vllm-logs")).ready()
    try:
        yield shared
    finally:
        pid = shared.server.process.pid
        shared.server.stop()
        assert shared.server.process.poll() is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def start_storefront(
    folder: Path,
    llm_url: str,
    tokenizer: Path,
    api_key: str,
    *,
    port: int,
    max_new_tokens: int,
    overrides: tuple[str, ...] = (),
    **serve_settings: int,
) -> ChildProcess:
    """`shoptune serve app` on the tiny-qwen config over the vLLM at `llm_url`, sessions and logs in
    `folder`, started and answering /healthz. `max_new_tokens` bounds how long tiny-qwen2.5's random
    weights ramble in a reply; `serve_settings` set other `serve.` fields (e.g. `extraction_retries`),
    `overrides` any others (`shop.catalogue_url=...`)."""
    argv = shoptune_argv(
        "serve", "app", "--config", "configs/tiny-qwen.yaml", "--llm", llm_url, "--model-name", "shop",
        "--tokenizer", str(tokenizer), "--port", str(port),
        "--set", f"serve.sqlite_path={folder / 'sessions.sqlite3'}", "--set", f"serve.log_dir={folder / 'logs'}",
        "--set", f"serve.max_new_tokens={max_new_tokens}",
        *(f"--set=serve.{name}={value}" for name, value in serve_settings.items()),
        *(f"--set={override}" for override in overrides),
    )  # fmt: skip
    env = {**os.environ, "SHOPTUNE_API_KEY": api_key}
    app = ChildProcess("the storefront", argv, folder / "app.log", env=env, cwd=REPO_ROOT).start()
    app.wait_ready(http_ok(f"http://127.0.0.1:{port}/healthz"), 120)
    return app


def train_and_evaluate(data: Path, work: Path, *settings: str) -> tuple[Path, dict]:
    """A 4-step tiny-qwen2.5 run on `data` and `eval run` of its adapter on the test split (the
    `--set` flags in `settings` for both: shop, data section); the run folder and the report's metrics."""
    run = work / "run"
    trained = invoke_shoptune(
        "train", "configs/tiny-qwen.yaml", "--out", str(run), "--data", str(data), *settings,
        "--set", "train.max_steps=4", "--set", "train.eval_steps=4", "--set", "train.save_steps=4",
        "--set", "train.generation_eval_records=1",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    report = work / "eval"
    evaluated = invoke_shoptune(
        "eval", "run", "--config", "configs/tiny-qwen.yaml", "--data", str(data / "test.jsonl"),
        "--model", "tiny-qwen2.5", "--adapter", str(run / "final" / "adapter"), "--out", str(report), *settings,
        "--set", "eval.max_new_tokens=24",  # random weights ramble to the limit: a short one is enough here
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    return run, json.loads((report / "report.json").read_text(encoding="utf-8"))["metrics"]


@dataclass(frozen=True)
class Ran:
    """What a command returned: its exit code and its two output streams."""

    returncode: int
    stdout: str
    stderr: str


def invoke_shoptune(*args: str, env: dict[str, str] | None = None) -> Ran:
    """The `shoptune` command run in this process with click's CliRunner: the same parsing, error
    wording and exit codes as the console script, without a Python start-up (torch, transformers,
    TRL: ~6 s) per call. For commands whose result is files and an exit code, training included;
    what is about the process itself (a kill, a signal, `accelerate launch`, a server) goes through
    `run_shoptune` or a `subprocess` of its own."""
    from click.testing import CliRunner

    from shoptune.main import cli

    with contextlib.chdir(REPO_ROOT):
        result = CliRunner().invoke(cli, list(args), env=env, prog_name="shoptune", catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def run_shoptune(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT, timeout: float = 600):
    """Run the installed `shoptune` console script as a user would, capturing its output."""
    assert shutil.which(str(SHOPTUNE_BIN)), f"{SHOPTUNE_BIN} missing: install with scripts/install.sh"
    return subprocess.run(
        [str(SHOPTUNE_BIN), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the reliability ledger -------------------------------------------------------------
# Reliability and security tests record what they tried and what happened; the table is
# printed at the end of the run and written to runs/reliability.md, and the README's table
# is copied from it (so its numbers come from the tests' own output).

RELIABILITY_ROWS: list[tuple[str, str, int, str]] = []


@pytest.fixture(scope="session")
def ledger():
    def record(area: str, tried: str, cases: int, outcome: str) -> None:
        RELIABILITY_ROWS.append((area, tried, cases, outcome))

    return record


def _ledger_markdown() -> str:
    lines = ["| area | what was tried | cases | what happened |", "|---|---|---:|---|"]
    lines += [f"| {area} | {tried} | {cases} | {outcome} |" for area, tried, cases, outcome in RELIABILITY_ROWS]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not RELIABILITY_ROWS:
        return
    table = _ledger_markdown()
    terminalreporter.section("reliability and security ledger")
    terminalreporter.write(table)
    out = REPO_ROOT / "runs" / "reliability.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
