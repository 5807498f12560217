"""`shoptune eval parity`: does the model the storefront serves answer as the model that was trained?

    shoptune eval parity --model runs/demo/merged --data runs/demo/data/test.jsonl --out runs/parity
    shoptune eval parity --model smollm2-135m-instruct --adapter runs/x/final/adapter --data test.jsonl --out runs/p

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
from typing import Any

from shoptune.config import ShoptuneConfig
from shoptune.core.atomic import atomic_write_json, atomic_write_text
from shoptune.core.hardware import resolve_serve_dtype
from shoptune.core.provenance import provenance
from shoptune.eval.bootstrap import paired_difference, verdict
from shoptune.eval.scoring import score_samples

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


def served_outputs(
    config: ShoptuneConfig,
    model_dir: Path,
    records: Sequence[dict[str, Any]],
    *,
    dtype: str,
    structured_too: bool,
    adapter: Path | None,
    log_dir: Path,
    log: Log,
) -> dict[str, Outputs]:
    """Greedy extraction outputs from one vLLM server (free-form, and guided when asked)."""
    from shoptune.core.net import free_port
    from shoptune.eval.backends import EndpointBackend
    from shoptune.serve.vllm_server import LoraModule, VllmServer

    loras = [LoraModule("adapter", Path(adapter))] if adapter is not None else []
    server = VllmServer(
        model_dir=Path(model_dir),
        config=config.serve.replace(dtype=dtype),
        served_name="parity",
        port=free_port(),
        loras=loras,
        log_path=log_dir / f"vllm-parity-{dtype}{'-adapter' if loras else ''}.log",
    )
    log(f"  starting vLLM ({dtype}{', base + LoRA adapter' if loras else ''}) for the parity check")
    outputs: dict[str, Outputs] = {}
    with server:
        for structured in (False, True) if structured_too else (False,):
            backend = EndpointBackend.as_served(
                config, server.base_url, "adapter" if loras else "parity", structured=structured
            )
            outputs["structured" if structured else "free"] = {p.id: p.output for p in backend.generate(records)}
    return outputs


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
) -> ParityReport:
    """Run the comparisons; `served` may hold outputs already generated in the serving dtype
    ({"free": ..., "structured": ...}, e.g. by the demo's eval stages) so they are not generated
    twice. `structured_check=False` runs only vLLM (fp32) against in process. `in_process_records`
    limits the comparisons with in-process generation (the slow side on a CPU) to the first N
    records; structured = free-form always covers all of them."""
    local_records = list(records[:in_process_records])  # [:None] keeps them all
    serve_dtype = resolve_serve_dtype(config.serve.dtype) if structured_check else "float32"
    ids = {r["id"] for r in records}
    wanted = ("free", "structured") if structured_check else ("free",)
    if served is None or not all(ids <= set(served.get(k, {})) for k in wanted):
        served = served_outputs(
            config,
            model_dir,
            records,
            dtype=serve_dtype,
            structured_too=structured_check,
            adapter=adapter,
            log_dir=log_dir,
            log=log,
        )
    fp32_served = served["free"]
    if serve_dtype != "float32":
        fp32_served = served_outputs(
            config,
            model_dir,
            local_records,
            dtype="float32",
            structured_too=False,
            adapter=adapter,
            log_dir=log_dir,
            log=log,
        )["free"]
    local = in_process_outputs(config, model_dir, local_records, adapter, log)
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
