"""The evaluation report opens in a real browser (headless Chromium) with its plots drawn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import invoke_shoptune


def test_report_html_renders_its_plots(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    gold, predictions = tmp_path / "gold.jsonl", tmp_path / "predictions.jsonl"
    records = [
        {
            "id": f"e{i}",
            "task": "extract",
            "lang": "zh",
            "schema": "product_query",
            "messages": [
                {"role": "user", "content": f"想买手机 {i}"},
                {
                    "role": "assistant",
                    "content": json.dumps(
                        {"product": "手机", "price_range": None, "color": None, "size": None}, ensure_ascii=False
                    ),
                },
            ],
        }
        for i in range(12)
    ]
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    outputs = [r["messages"][-1]["content"] if i % 3 else "no" for i, r in enumerate(records)]
    predictions.write_text(
        "".join(
            json.dumps({"id": r["id"], "output": o}, ensure_ascii=False) + "\n"
            for r, o in zip(records, outputs, strict=True)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "report"
    assert (
        invoke_shoptune(
            "eval", "score", "--data", str(gold), "--predictions", str(predictions), "--out", str(out)
        ).returncode
        == 0
    )
    assert shutil.which("chromium"), "Debian's chromium is needed (scripts/test.sh installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.goto((out / "report.html").as_uri())
        assert page.title().startswith("shoptune evaluation")
        figures = page.locator("figure svg")
        assert figures.count() == 4
        boxes = [figures.nth(i).bounding_box() for i in range(4)]
        assert all(box and box["width"] > 100 and box["height"] > 20 for box in boxes)
        assert page.locator("figure#plot-fields rect").count() >= 1
        assert "0.667" in page.locator("table#headline").inner_text()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
