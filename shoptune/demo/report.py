"""The demo's one report: base vs tuned vs tuned with structured output, per metric with 95%
intervals, the storefront transcript with its catalogue checks, and the stage timings."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from shoptune.core.atomic import atomic_write_text
from shoptune.demo.stages import StageRunner
from shoptune.eval.report import HEADLINE, bar_chart

COLUMNS = (("base", "eval-base"), ("tuned", "eval-tuned"), ("tuned + structured", "eval-tuned-guided"))
ROWS = HEADLINE


def _load(out: Path) -> dict[str, dict[str, Any]]:
    reports = {}
    for label, folder in COLUMNS:
        path = out / folder / "report.json"
        if path.is_file():
            reports[label] = json.loads(path.read_text(encoding="utf-8"))
    return reports


def _cell(report: dict[str, Any], key: str) -> str:
    value = report["metrics"].get(key)
    if value is None:
        return "-"
    interval = report.get("intervals", {}).get(key)
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else f"{value:.3f}"


def _turn_row(turn: dict[str, Any]) -> str:
    named = ", ".join(f"{row['name']} ¥{row['catalogue_price']}" for row in turn["named"])
    cells = [
        turn["lang"],
        html.escape(turn["question"]),
        f"<pre>{html.escape(turn['answer'])}</pre>",
        html.escape(named),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _injection_section(out: Path) -> list[str]:
    """How many prompt-injection attacks (datasets/security) the tuned model resisted, per language."""
    path = out / "eval-injection" / "report.json"
    if not path.is_file():
        return []
    report = json.loads(path.read_text(encoding="utf-8"))
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


def write_demo_report(out: Path, runner: StageRunner) -> dict[str, Any]:
    reports = _load(out)
    transcript = (
        json.loads((out / "transcript.json").read_text(encoding="utf-8"))
        if (out / "transcript.json").is_file()
        else {"turns": [], "extractions": []}
    )
    labels = list(reports)
    keys = [k for k in ROWS if any(k in r["metrics"] for r in reports.values())]
    fields = sorted({f for r in reports.values() for f in r["metrics"].get("field_accuracy", {})})
    md = [
        "# shoptune demo report",
        "",
        f"{next(iter(reports.values()))['n'] if reports else 0} test records; values with 95% bootstrap intervals.",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    md += [f"| {k} | " + " | ".join(_cell(reports[label], k) for label in labels) + " |" for k in keys]
    md += [
        f"| field_accuracy.{f} | "
        + " | ".join(
            f"{reports[label]['metrics'].get('field_accuracy', {}).get(f, float('nan')):.3f}" for label in labels
        )
        + " |"
        for f in fields
    ]
    base_valid = reports.get("base", {}).get("metrics", {}).get("json_valid_rate")
    tuned_valid = reports.get("tuned", {}).get("metrics", {}).get("json_valid_rate")
    verdict = tuned_valid is not None and base_valid is not None and tuned_valid >= 0.95 and tuned_valid > base_valid
    md += [
        "",
        f"Tuned JSON validity {tuned_valid if tuned_valid is not None else float('nan'):.3f} vs base "
        f"{base_valid if base_valid is not None else float('nan'):.3f}: "
        f"{'meets' if verdict else 'misses'} the goal (>= 0.95 and above base).",
        "",
        "## Storefront transcript",
        "",
    ]
    for turn in transcript["turns"]:
        md.append(f"**[{turn['lang']}] shopper:** {turn['question']}  ")
        md.append(f"**assistant:** {turn['answer']}  ")
        for row in turn["named"]:
            check = (
                "price correct"
                if row["price_correct"]
                else ("no price quoted" if row["price_correct"] is None else "WRONG PRICE")
            )
            md.append(
                f"- names {row['name']} ({row['sku']}): catalogue ¥{row['catalogue_price']}, "
                f"quoted {row['quoted_price'] or '-'}, {check}, {'in stock' if row['in_stock'] else 'OUT OF STOCK'}"
            )
        md.append("")
    for extraction in transcript["extractions"]:
        md.append(
            f"**extract {extraction['schema']}:** {extraction['text']} -> "
            f"`{json.dumps(extraction['data'], ensure_ascii=False) if extraction['data'] else extraction['error']}`"
        )
    md += _injection_section(out)
    md += ["", "## Stages", "", "| stage | status | seconds |", "|---|---|---|"]
    md += [f"| {r.name} | {'skipped (unchanged)' if r.skipped else 'ran'} | {r.seconds:.0f} |" for r in runner.results]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    field_series = {
        f: {label: reports[label]["metrics"].get("field_accuracy", {}).get(f) for label in labels} for f in fields
    }
    headline = {
        k: {label: reports[label]["metrics"].get(k) for label in labels}
        for k in keys
        if k not in ("hallucinated_product_rate",)
    }
    table = "".join(
        f"<tr><td>{k}</td>" + "".join(f"<td>{_cell(reports[label], k)}</td>" for label in labels) + "</tr>"
        for k in keys
    )
    turns = "".join(_turn_row(t) for t in transcript["turns"])
    header = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>shoptune demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}}
pre{{white-space:pre-wrap;margin:0}}</style>
</head><body><h1>shoptune demo report</h1>
<table id="metrics"><tr><th>metric</th>{header}</tr>{table}</table>
<figure id="plot-headline">{bar_chart("Headline metrics: base, tuned, tuned + structured", headline)}</figure>
<figure id="plot-fields">{bar_chart("Per-field accuracy (extraction)", field_series)}</figure>
<h2>Storefront transcript</h2><table id="transcript"><tr><th>lang</th><th>shopper</th><th>assistant</th>
<th>catalogue products named</th></tr>{turns}</table></body></html>"""
    atomic_write_text(out / "report.html", page)
    return {"tuned_json_valid_rate": tuned_valid, "base_json_valid_rate": base_valid, "goal_met": verdict}
