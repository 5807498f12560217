"""Write an evaluation report: report.json, samples.jsonl, report.md and report.html.

Every number in report.json traces back to samples.jsonl (each record's input, output, parsed
value and scores); the config, data hash, model identity and package versions travel with it.
"""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shoptune.core.atomic import atomic_write_json, atomic_write_text
from shoptune.eval.metrics.reported import (
    COUNT_SCORES,
    FIELD_VIEWS,
    HEADLINE,
    REPORTED,
    TASK_HEADLINE,
    score_lower_is_better,
    score_marks_failure,
)
from shoptune.eval.scoring import ScoredSample

RED = '<span style="color:#c00">{}</span>'


def write_report(out_dir: Path, report: dict[str, Any], samples: Sequence[ScoredSample]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out_dir / "samples.jsonl", "".join(json.dumps(s.to_json(), ensure_ascii=False) + "\n" for s in samples)
    )
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", render_markdown(report))
    atomic_write_text(out_dir / "report.html", render_html(report, samples))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _interval(report: dict[str, Any], key: str) -> str:
    low_high = report.get("intervals", {}).get(key)
    return f"[{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else ""


def render_markdown(report: dict[str, Any]) -> str:
    metrics = report["metrics"]
    lines = [
        f"# Evaluation: {report['model']['name']} on {Path(report['data']['path']).name}",
        "",
        f"{report['n']} records; backend {report['mode']['backend']}, structured output "
        f"{'on' if report['mode']['structured_output'] else 'off'}; task {report['task']['name']}.",
        "",
        "| metric | value | 95% interval |",
        "|---|---|---|",
    ]
    for key in HEADLINE:
        if key in metrics:
            lines.append(f"| {key} | {_fmt(metrics[key])} | {_interval(report, key)} |")
    for view in FIELD_VIEWS:
        for field, value in sorted(metrics.get(view, {}).items()):
            lines.append(f"| {view}.{field} | {_fmt(value)} | {_interval(report, f'{view}.{field}')} |")
    if report.get("comparison"):
        lines += [
            "",
            f"## Against baseline {report['comparison']['baseline']}",
            "",
            "| metric | current | baseline | difference [95%] | verdict |",
            "|---|---|---|---|---|",
        ]
        for key, row in report["comparison"]["metrics"].items():
            low, high = row["interval"]
            shown = RED.format(f"**{row['verdict']}**") if row["verdict"] == "worse" else row["verdict"]
            lines.append(
                f"| {key} | {row['current']:.3f} | {row['baseline']:.3f} | {row['difference']:+.3f} "
                f"[{low:+.3f}, {high:+.3f}] | {shown} |"
            )
    lines += ["", "## By task", "", "| task | n | headline |", "|---|---|---|"]
    for task, view in report["by_task"].items():
        best = ", ".join(f"{k} {_fmt(v)}" for k, v in view["metrics"].items() if k in HEADLINE)
        lines.append(f"| {task} | {view['n']} | {best} |")
    lines += [
        "",
        f"Latency: {report['latency']['mean_seconds']:.2f} s per record (mean), "
        f"{report['latency']['tokens_per_second']:.1f} output tokens/s overall.",
        "",
    ]
    return "\n".join(lines)


def bar_chart(title: str, series: dict[str, dict[str, float]], width: int = 640) -> str:
    """A grouped horizontal bar chart as inline SVG: {label: {series name: value in [0, 1]}}."""
    colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"]
    names = sorted({name for values in series.values() for name in values})
    row_height, label_width = 16 * max(1, len(names)) + 10, 170
    height = 30 + row_height * len(series)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    for row, (label, values) in enumerate(series.items()):
        y = 30 + row * row_height
        parts.append(f'<text x="0" y="{y + 12}" font-size="12">{html.escape(label)}</text>')
        for index, name in enumerate(names):
            value = values.get(name)
            if value is None:
                continue
            bar = max(1.0, (width - label_width - 60) * max(0.0, min(1.0, value)))
            top = y + index * 16
            parts.append(
                f'<rect x="{label_width}" y="{top}" width="{bar:.1f}" height="13" '
                f'fill="{colours[index % len(colours)]}"><title>{html.escape(name)}: {value:.3f}</title></rect>'
            )
            parts.append(f'<text x="{label_width + bar + 4:.1f}" y="{top + 11}" font-size="11">{value:.3f}</text>')
    legend = " ".join(
        f'<tspan fill="{colours[i % len(colours)]}">■ {html.escape(n)}</tspan>' for i, n in enumerate(names)
    )
    parts.append(f'<text x="{label_width}" y="16" font-size="11">{legend}</text></svg>')
    return "".join(parts)


def render_html(report: dict[str, Any], samples: Sequence[ScoredSample], others: dict[str, dict] | None = None) -> str:
    """Self-contained HTML: headline table, plots (per-field accuracy, per task, per language,
    output lengths) and the worst examples. `others` adds series (e.g. base vs tuned)."""
    current = report["model"]["name"]
    reports = {current: report, **(others or {})}
    fields = sorted(report["metrics"].get("field_recall", {}))
    field_series = {
        f: {name: r["metrics"].get("field_recall", {}).get(f) for name, r in reports.items()} for f in fields
    }
    headline = [k for k in HEADLINE if k in report["metrics"] and not REPORTED[k].diagnostic]
    task_series = {t: {name: _task_headline(r, t) for name, r in reports.items()} for t in report["by_task"]}
    lang_series = {
        lang: {
            name: r["by_lang"].get(lang, {}).get("metrics", {}).get("exact_match_rate") for name, r in reports.items()
        }
        for lang in report["by_lang"]
    }
    lengths = [len(s.output or "") for s in samples]
    buckets = [0, 50, 100, 200, 400, 800, 10**9]
    histogram = {
        f"{lo}-{hi if hi < 10**9 else '∞'} chars": {current: sum(lo <= n < hi for n in lengths) / max(1, len(lengths))}
        for lo, hi in itertools.pairwise(buckets)
    }
    worst = sorted(samples, key=_badness, reverse=True)[:15]
    rows = "".join(_worst_row(s) for s in worst)
    table = "".join(
        f"<tr><td>{k}</td><td>{_fmt(report['metrics'][k])}</td><td>{_interval(report, k)}</td></tr>" for k in headline
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>shoptune evaluation: {html.escape(current)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;font-size:13px}} pre{{white-space:pre-wrap;margin:0}}
figure{{margin:1.5em 0}}</style></head><body>
<h1>Evaluation: {html.escape(current)}</h1>
<p>{report["n"]} records from <code>{html.escape(report["data"]["path"])}</code>
(sha256 {report["data"]["sha256"][:12]}…); backend {report["mode"]["backend"]};
structured output {"on" if report["mode"]["structured_output"] else "off"}.</p>
<table id="headline"><tr><th>metric</th><th>value</th><th>95% interval</th></tr>{table}</table>
<figure id="plot-fields">{bar_chart("Per-field recall on non-null gold values (extraction)", field_series)}</figure>
<figure id="plot-tasks">{bar_chart("Headline rate per task", task_series)}</figure>
<figure id="plot-langs">{bar_chart("Extraction exact match per language", lang_series)}</figure>
<figure id="plot-lengths">{bar_chart("Output length distribution (share of records)", histogram)}</figure>
<h2>Worst examples</h2><table id="worst"><tr><th>id</th><th>task</th><th>input</th><th>output</th>
<th>reference</th><th>failed</th></tr>{rows}</table>
</body></html>"""


def _task_headline(report: dict[str, Any], task: str) -> float | None:
    return report.get("by_task", {}).get(task, {}).get("metrics", {}).get(TASK_HEADLINE.get(task, ""))


def _worst_row(sample: ScoredSample) -> str:
    failed = ", ".join(k for k, v in sample.scores.items() if score_marks_failure(k, v))
    cells = [
        html.escape(sample.record["id"]),
        sample.record["task"],
        html.escape(_short(sample.to_json()["input"])),
        f"<pre>{html.escape(_short(sample.output or ''))}</pre>",
        f"<pre>{html.escape(_short(sample.record['messages'][-1]['content']))}</pre>",
        html.escape(failed),
    ]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def _badness(sample: ScoredSample) -> float:
    total = 0.0
    for key, value in sample.scores.items():
        if value is None or key in COUNT_SCORES:
            continue
        total += min(1.0, value) if score_lower_is_better(key) else 1.0 - min(1.0, value)
    return total


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
