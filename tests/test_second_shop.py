"""The second example shop (`shops/voltedge`: English only, electronics, a CSV catalogue, its own
warranty-claim schema and no order_request, its own policy, voice and order numbers) through the
pipeline: check, build, a short train on tiny-qwen2.5, eval, and the storefront over the shared vLLM
(its schemas, /v1/extract with its own schema, a chat answered from its order system). The example
shop runs the same stages in tests/test_demo.py and tests/test_vllm_stack.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest
from conftest import invoke_shoptune, start_storefront, train_and_evaluate
from jsonschema import Draft202012Validator

from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.shop import resources
from shoptune.shop.orders import ORDERS_FILE, read_orders
from shoptune.shop.reading import read_records

SHOP = REPO_ROOT / "shops" / "voltedge"
SETTINGS = (
    "--set", f"shop.dir={SHOP}",  # English only: the languages its style guide speaks, no `data.languages`
    "--set", "data.train_records=24", "--set", "data.val_records=6", "--set", "data.test_records=10",
)  # fmt: skip
API_KEY = "volt-key"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("voltedge") / "data"
    done = invoke_shoptune("data", "build", "--config", "configs/tiny-qwen.yaml", "--out", str(out), *SETTINGS)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_shop_checks_clean_and_builds_english_records_of_its_schemas(data: Path) -> None:
    checked = invoke_shoptune("shop", "check", str(SHOP))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    resources.use_shop(SHOP)  # the records are read against its schemas
    records = [r for split in ("train", "val", "test") for r in read_records(data / f"{split}.jsonl")]
    assert {r["lang"] for r in records} == {"en"}
    talk = [r for r in records if r["task"] != "extract"]
    assert talk and all("assistant of VoltEdge Electronics" in r["messages"][0]["content"] for r in talk)
    schemas = {r["schema"] for r in records if r["task"] == "extract"}
    assert schemas <= {"product_query", "warranty_claim"} and "warranty_claim" in schemas
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["imported"]["available"] > 0 and "catalogue/products.csv" in manifest["sources"]


def test_a_short_run_trains_and_evaluates_on_it(data: Path, tmp_path: Path) -> None:
    _, metrics = train_and_evaluate(data, tmp_path, *SETTINGS)
    assert metrics["extraction_records"] > 0 and "schema_valid_rate" in metrics
    assert {"serial_number", "fault"} <= set(metrics["field_recall"])


def test_the_storefront_serves_its_schemas_and_its_orders(tiny_vllm, tiny_qwen_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    app = start_storefront(
        tmp_path, tiny_vllm.server.base_url, tiny_qwen_dir, API_KEY, port=port, max_new_tokens=16,
        overrides=(f"shop.dir={SHOP}",),
    )  # fmt: skip
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {API_KEY}"}
    try:
        listed = httpx.get(f"{url}/v1/schemas", headers=headers, timeout=30).json()["schemas"]
        assert [s["name"] for s in listed] == ["product_query", "warranty_claim"]
        text = "The screen on my laptop cracked, serial VX-99812"
        claim = httpx.post(f"{url}/v1/extract", json={"text": text, "schema": "warranty_claim"}, headers=headers,
                           timeout=180)  # fmt: skip
        schema = resources.use_shop(SHOP).schemas["warranty_claim"]
        # guided decoding: a valid object, or a 502 naming the problem when the random weights run out of tokens
        assert (claim.status_code == 200 and Draft202012Validator(schema).is_valid(claim.json()["data"])) or (
            claim.status_code == 502 and "warranty_claim output is not valid" in claim.json()["error"]
        ), claim.text
        unknown = httpx.post(f"{url}/v1/extract", json={"text": text, "schema": "order_request"}, headers=headers)
        assert unknown.status_code == 422 and "known: product_query, warranty_claim" in unknown.json()["error"]

        order = next(o for o in read_orders(SHOP / ORDERS_FILE) if o.order_id == "VE-100001")
        asked = {"session_id": "ve-1", "message": "Where is my order VE-100001?", "customer_id": order.customer_id}
        answered = httpx.post(f"{url}/v1/chat", json=asked, headers=headers, timeout=180).json()
        assert answered["order_id"] == "VE-100001" and order.tracking_no in answered["reply"], answered
        other = {**asked, "session_id": "ve-2", "customer_id": "cust-999"}
        refused = httpx.post(f"{url}/v1/chat", json=other, headers=headers, timeout=180).json()
        assert order.tracking_no not in refused["reply"] and refused["products"] == []
    finally:
        app.stop()


def test_its_money_and_skus_are_its_own() -> None:
    """Dollars and VE-LAP-001 SKUs: in the catalogue context the model reads, in the budgets the
    generator writes, and in the grounding checks that read the model's answer."""
    from shoptune.data.surface import budget_phrase, shop_money
    from shoptune.eval.metrics.grounding import item_lines, score_record
    from shoptune.serve.stated_filters import stated_budget
    from shoptune.shop.prompts import catalogue_context

    resources.use_shop(SHOP)
    laptop = resources.products_by_sku()["VE-LAP-001"]
    assert f"| ${laptop.price:g} |" in catalogue_context([laptop], "en")
    money = shop_money()
    phrases = [budget_phrase(random.Random(seed), "en", None, 500, money) for seed in range(40)]
    assert not any("yuan" in p or "RMB" in p or "¥" in p for p in phrases) and any("$" in p for p in phrases)
    assert stated_budget("a laptop under $1500") == [None, 1500]
    answer = f"Here you go:\n1. VE-LAP-001 {laptop.name_en}, ${laptop.price:g}, colors: silver"
    assert item_lines(answer) == [("VE-LAP-001", laptop.name_en, f"{laptop.price:g}")]
    record = {"messages": [{"role": "assistant", "content": answer}], "meta": {"recommended_skus": ["VE-LAP-001"]}}
    scores = score_record(record, answer)
    assert scores["recommend_prices_exact"] == 1.0 and scores["hallucinated_items"] == 0.0
    wrong = answer.replace(f"${laptop.price:g}", "$1")
    assert score_record(record, wrong)["recommend_prices_exact"] == 0.0
