"""The demo's one report. It leads with what the storefront's users get: extraction through the
served path (the tuned model, guided decoding, the storefront's settings) measured by exact match
and non-null recall against the goals, then parity, the paired verdicts of tuned against base on
every metric, and the transcript with every flagged answer in red and the reason beside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.core.atomic import atomic_write_text
from shoptune.demo.stages import StageResult, StageRunner
from shoptune.eval.metrics.reported import EXTRACTION, HEADLINE
from shoptune.eval.report import bar_chart

COLUMNS = (("base", "eval-base"), ("tuned", "eval-tuned"), ("tuned + structured (served)", "eval-tuned-guided"))
SERVED = "tuned + structured (served)"
RECALL_GOALS = {"order_id": 0.98}
"""Non-null recall goal per field; every other field: `RECALL_GOAL`."""
RECALL_GOAL = 0.85
EXACT_MATCH_GOAL = 0.80
MICRO_F1_GOAL = 0.90
DEGENERATE_GOAL = 0.01
DEMO_MINUTES_GOAL = 30
HANDWRITTEN_RECALL_AIM = 0.70
RED = '<span style="color:#c00"><b>{}</b></span>'


@dataclass(frozen=True)
class Goal:
    name: str
    measured: str
    target: str
    met: bool | None
    """None: not measured in this run."""


def _load_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _reports(out: Path) -> dict[str, dict[str, Any]]:
    loaded = {label: _load_json(out / folder / "report.json") for label, folder in COLUMNS}
    return {label: report for label, report in loaded.items() if report is not None}


def _metric(report: dict[str, Any] | None, key: str) -> float | None:
    value: Any = (report or {}).get("metrics", {})
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def _with_interval(report: dict[str, Any] | None, key: str) -> str:
    value = _metric(report, key)
    if value is None:
        return "-"
    interval = (report or {}).get("intervals", {}).get(key)
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{value:.3f}"


def _at_least(name: str, value: float | None, goal: float, shown: str | None = None) -> Goal:
    return Goal(
        name,
        shown or ("-" if value is None else f"{value:.3f}"),
        f">= {goal}",
        None if value is None else value >= goal,
    )


def _parity_goals(out: Path) -> list[Goal]:
    goals = []
    for label in ("merged", "adapter"):
        parity = _load_json(out / "parity" / label / "parity.json")
        for agreement in (parity or {}).get("agreements", []):
            if agreement["threshold"] is None:
                continue
            shown = f"{agreement['identical']}/{agreement['total']} ({agreement['share']:.3f})"
            goals.append(_at_least(f"parity, {agreement['name']}", agreement["share"], agreement["threshold"], shown))
        if parity and parity.get("field_regressions"):
            worse = ", ".join(r["metric"] for r in parity["field_regressions"])
            goals.append(Goal("structured scores no field below free-form", f"worse: {worse}", "none", False))
    return goals


def _no_worse_than_base(served: dict[str, Any] | None) -> Goal:
    rows = ((served or {}).get("comparison") or {}).get("metrics", {})
    if not rows:
        return Goal("tuned (served) >= base on every metric, paired", "-", "no metric worse", None)
    worse = [name for name, row in rows.items() if row["verdict"] == "worse"]
    better = sum(row["verdict"] == "better" for row in rows.values())
    shown = f"{better} better, {len(rows) - better - len(worse)} no clear change, {len(worse)} worse"
    shown += f" ({', '.join(worse)})" if worse else ""
    return Goal("tuned (served) >= base on every metric, paired", shown, "no metric worse", not worse)


def _structured_not_worse(free: dict[str, Any] | None, served: dict[str, Any] | None) -> Goal:
    keys = [*EXTRACTION, *(f"field_recall.{f}" for f in (_metric_fields(served)))]
    pairs = [(k, _metric(served, k), _metric(free, k)) for k in keys]
    pairs = [(k, a, b) for k, a, b in pairs if a is not None and b is not None]
    if not pairs:
        return Goal("structured >= free-form on every extraction metric", "-", "all", None)
    below = [(k, a, b) for k, a, b in pairs if a < b]
    shown = "yes" if not below else "below on " + ", ".join(f"{k} ({a:.4f} < {b:.4f})" for k, a, b in below)
    return Goal("structured >= free-form on every extraction metric", shown, "all", not below)


def _metric_fields(report: dict[str, Any] | None) -> list[str]:
    return sorted((report or {}).get("metrics", {}).get("field_recall") or {})


def demo_goals(out: Path, transcript: dict[str, Any]) -> list[Goal]:
    """The goals the demo is held to, each measured from this run's artefacts."""
    reports = _reports(out)
    served, free = reports.get(SERVED), reports.get("tuned")
    goals = [
        _at_least("exact match, test split, served", _metric(served, "exact_match_rate"), EXACT_MATCH_GOAL),
        _at_least("micro-F1, test split, served", _metric(served, "micro_f1"), MICRO_F1_GOAL),
    ]
    for field in _metric_fields(served):
        goal = RECALL_GOALS.get(field, RECALL_GOAL)
        goals.append(_at_least(f"non-null recall {field}, served", _metric(served, f"field_recall.{field}"), goal))
    goals.append(_structured_not_worse(free, served))
    goals += _parity_goals(out)
    extractions = transcript.get("extractions", [])
    exact = sum(not e["flags"] for e in extractions)
    goals.append(
        Goal(
            "demo sentences extracted exactly (/v1/extract)",
            f"{exact}/{len(extractions)}",
            "all",
            exact == len(extractions) if extractions else None,
        )
    )
    degenerate = _metric(served, "degenerate_rate")
    goals.append(
        Goal(
            "degenerate replies, test split",
            "-" if degenerate is None else f"{degenerate:.3f}",
            f"<= {DEGENERATE_GOAL}",
            None if degenerate is None else degenerate <= DEGENERATE_GOAL,
        )
    )
    turns = transcript.get("turns", [])
    looping = [t for t in turns if any(f in ("loop", "repeated line", "only greets") for f in t.get("flags", []))]
    goals.append(
        Goal("degenerate replies, transcript", f"{len(looping)}/{len(turns)}", "0", not looping if turns else None)
    )
    orders = [t for t in turns if t.get("order_id")]
    right = sum(not t["flags"] for t in orders)
    goals.append(
        Goal(
            "order answers match the order system",
            f"{right}/{len(orders)}",
            "all",
            right == len(orders) if orders else None,
        )
    )
    goals.append(_no_worse_than_base(served))
    hand = _load_json(out / "eval-handwritten" / "report.json")
    recalls = (hand or {}).get("metrics", {}).get("field_recall") or {}
    pooled = _pooled_recall(out / "eval-handwritten" / "samples.jsonl")
    shown = (
        "-"
        if pooled is None
        else f"{pooled:.3f} (" + ", ".join(f"{k} {v:.2f}" for k, v in sorted(recalls.items())) + ")"
    )
    goals.append(
        Goal(
            "hand-written messages, non-null recall (/v1/extract; an aim)",
            shown,
            f">= {HANDWRITTEN_RECALL_AIM}",
            None if pooled is None else pooled >= HANDWRITTEN_RECALL_AIM,
        )
    )
    return goals


def _pooled_recall(samples_path: Path) -> float | None:
    """Share of all non-null gold values (every field of every record) the answers got right."""
    if not samples_path.is_file():
        return None
    hits = total = 0
    for line in samples_path.read_text(encoding="utf-8").splitlines():
        scores = json.loads(line)["scores"]
        values = [v for k, v in scores.items() if k.startswith("recall:") and v is not None]
        hits += sum(values)
        total += len(values)
    return hits / total if total else None


def _mark(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else RED.format("MISSED"))


def _extraction_table(reports: dict[str, dict[str, Any]]) -> list[str]:
    labels = list(reports)
    fields = sorted({f for r in reports.values() for f in (r["metrics"].get("field_recall") or {})})
    keys = [*EXTRACTION, *(f"field_recall.{f}" for f in fields), *(f"field_invented_rate.{f}" for f in fields)]
    lines = ["| extraction metric | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {k} | " + " | ".join(_with_interval(reports[label], k) for label in labels) + " |" for k in keys]
    return lines


def _verdict_table(served: dict[str, Any] | None) -> list[str]:
    rows = ((served or {}).get("comparison") or {}).get("metrics", {})
    if not rows:
        return []
    lines = [
        "| metric | base | tuned (served) | difference [95%] | verdict |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        low, high = row["interval"]
        shown = RED.format(row["verdict"]) if row["verdict"] == "worse" else row["verdict"]
        lines.append(
            f"| {name} | {row['baseline']:.3f} | {row['current']:.3f} | {row['difference']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] | {shown} |"
        )
    return lines


def _other_metrics(reports: dict[str, dict[str, Any]]) -> list[str]:
    labels = list(reports)
    keys = [k for k in HEADLINE if k not in EXTRACTION and any(k in r["metrics"] for r in reports.values())]
    lines = ["| metric | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {k} | " + " | ".join(_with_interval(reports[label], k) for label in labels) + " |" for k in keys]
    return lines


def _transcript_lines(transcript: dict[str, Any]) -> list[str]:
    lines = []
    for turn in transcript.get("turns", []):
        lines.append(f"**[{turn['lang']}] shopper:** {turn['question']}  ")
        lines.append(f"**assistant:** {turn['answer']}  ")
        for row in turn["named"]:
            lines.append(
                f"- names {row['name']} ({row['sku']}): catalogue ¥{row['catalogue_price']}, "
                f"quoted {row['quoted_price'] or '-'}, {'in stock' if row['in_stock'] else 'out of stock'}"
            )
        lines += [f"- {RED.format('FLAG')}: {flag}" for flag in turn.get("flags", [])]
        lines.append("")
    for extraction in transcript.get("extractions", []):
        got = json.dumps(extraction["data"], ensure_ascii=False) if extraction["data"] else extraction["error"]
        lines.append(f"**extract {extraction['schema']}:** {extraction['text']} -> `{got}`  ")
        lines += [f"- {RED.format('WRONG')}: {flag}" for flag in extraction.get("flags", [])]
        if not extraction.get("flags"):
            lines.append("- exactly as expected")
    return lines


def _injection_lines(out: Path) -> list[str]:
    """How many prompt-injection attacks (datasets/security) the tuned model resisted, per language."""
    report = _load_json(out / "eval-injection" / "report.json")
    if report is None:
        return []
    key = "refusal_in_role_rate"
    rate, (low, high) = report["metrics"][key], report["intervals"][key]
    lines = [
        "",
        "## Prompt injection",
        "",
        f"The served tuned model resisted {round(rate * report['n'])}/{report['n']} attacks "
        f"({key} {rate:.3f} [{low:.2f}, {high:.2f}]): stayed in role, leaked no system prompt, "
        "changed no price, accepted no fake code.",
        "",
    ]
    for lang, part in sorted(report.get("by_lang", {}).items()):
        lines.append(f"- {lang}: {round(part['metrics'][key] * part['n'])}/{part['n']}")
    return lines


def _markdown_to_html(lines: list[str]) -> str:
    """The report's Markdown as HTML (tables, and the red spans kept as they are)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render("\n".join(lines))


def _last_seconds(runner: StageRunner, result: StageResult) -> float:
    """A stage's time when it last ran: a skipped stage keeps the figure of the run that made its outputs."""
    return runner.state.get(result.name, {}).get("seconds", result.seconds)


def _time_goal(runner: StageRunner) -> Goal:
    minutes = sum(_last_seconds(runner, r) for r in runner.results) / 60
    return Goal(
        "demo end to end (every stage as last run)",
        f"{minutes:.1f} min",
        f"<= {DEMO_MINUTES_GOAL} min",
        minutes <= DEMO_MINUTES_GOAL,
    )


def _stage_lines(runner: StageRunner) -> list[str]:
    lines = ["", "## Stages", "", "| stage | this run | seconds (last run) | finished at |", "|---|---|---|---|"]
    for result in runner.results:
        status = "skipped (unchanged)" if result.skipped else "ran"
        finished = runner.state.get(result.name, {}).get("finished_at", "-")
        lines.append(f"| {result.name} | {status} | {_last_seconds(runner, result):.0f} | {finished} |")
    total = sum(_last_seconds(runner, r) for r in runner.results)
    lines += ["", f"End to end, every stage as last run: {total:.0f} s ({total / 60:.1f} min)."]
    return lines


def write_demo_report(out: Path, runner: StageRunner) -> dict[str, Any]:
    reports = _reports(out)
    transcript = _load_json(out / "transcript.json") or {"turns": [], "extractions": []}
    goals = [*demo_goals(out, transcript), _time_goal(runner)]
    missed = [g for g in goals if g.met is False]
    served = reports.get(SERVED)
    n = served["n"] if served else (next(iter(reports.values()))["n"] if reports else 0)
    extraction_n = (served or {}).get("metrics", {}).get("extraction_records", 0)
    md = [
        "# shoptune demo report",
        "",
        f"**Served extraction (what /v1/extract returns): exact match {_with_interval(served, 'exact_match_rate')}, "
        f"micro-F1 {_with_interval(served, 'micro_f1')}** on {extraction_n} test extraction records; "
        + (
            f"{RED.format(f'{len(missed)} of {len(goals)} goals missed')}."
            if missed
            else f"all {len(goals)} goals met."
        ),
        "",
        "## Goals",
        "",
        "| goal | measured | target | verdict |",
        "|---|---|---|---|",
        *(f"| {g.name} | {g.measured} | {g.target} | {_mark(g.met)} |" for g in goals),
        "",
        f"## Extraction on the test split ({extraction_n} records, 95% intervals)",
        "",
        "Recall counts only non-null gold values (an all-null answer scores 0); the invented rate is the "
        "share of null gold values the answer filled anyway.",
        "",
        *_extraction_table(reports),
        "",
        f"## Every metric ({n} test records)",
        "",
        *_other_metrics(reports),
        "",
        "## Tuned as served against base, paired bootstrap",
        "",
        *_verdict_table(served),
        "",
        "## Storefront transcript",
        "",
        *_transcript_lines(transcript),
    ]
    md += _injection_lines(out)
    md += _stage_lines(runner)
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    fields = _metric_fields(served)
    field_series = {f: {label: _metric(r, f"field_recall.{f}") for label, r in reports.items()} for f in fields}
    headline = {k: {label: _metric(r, k) for label, r in reports.items()} for k in EXTRACTION}
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shoptune demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:.5em 0}} pre{{white-space:pre-wrap;margin:0}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}}</style>
</head><body>
{_markdown_to_html(md)}
<figure id="plot-headline">{bar_chart("Extraction: base, tuned, tuned + structured (served)", headline)}</figure>
<figure id="plot-fields">{bar_chart("Per-field recall on non-null gold values", field_series)}</figure>
</body></html>"""
    atomic_write_text(out / "report.html", page)
    return {
        "served_exact_match_rate": _metric(served, "exact_match_rate"),
        "served_micro_f1": _metric(served, "micro_f1"),
        "goals_met": sum(g.met is True for g in goals),
        "goals_missed": [g.name for g in missed],
    }
