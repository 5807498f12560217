"""The storefront, its error mapping and the endpoint eval backend against a fake OpenAI client:
the routing and retry logic in milliseconds, beside the real-vLLM tests of the same paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest
from fake_openai import FakeOpenAI, connection_error, status_error, timeout_error
from fastapi.testclient import TestClient
from own_shops import WARRANTY_CLAIM, shop_with_a_claim_schema

from shoptune.config.schema import ServeConfig
from shoptune.core.errors import BadInputError, EnvironmentProblem
from shoptune.eval.backends import EndpointBackend
from shoptune.serve.app import create_app
from shoptune.serve.sessions import SqliteSessionStore
from shoptune.serve.storefront import Storefront, StorefrontSettings
from shoptune.shop import resources

KEY = {"X-API-Key": "secret"}
PHONE = {"product": "手机", "price_range": [None, 3000], "color": "黑色", "size": None}


def _is_extraction(request: dict[str, Any]) -> bool:
    return "response_format" in request


def _storefront(tmp_path: Path, answer) -> tuple[Storefront, FakeOpenAI]:
    llm = FakeOpenAI(answer)
    settings = StorefrontSettings(model_name="shop", system_prompt="You are the shop.", extraction_prompt="name")
    return Storefront(settings, SqliteSessionStore(tmp_path / "s.sqlite3"), llm), llm


def _client(storefront: Storefront) -> TestClient:
    return TestClient(create_app(storefront, api_key="secret"), raise_server_exceptions=False)


def test_extraction_is_guided_and_retried_once_when_invalid(tmp_path: Path) -> None:
    answers = iter(['{"product": "手机", "price_range": [nu', json.dumps(PHONE)])
    storefront, llm = _storefront(tmp_path, lambda _: next(answers))
    assert storefront.extract("有没有3000以内的黑色手机", "product_query") == PHONE
    assert len(llm.requests) == 2
    assert all(r["response_format"]["json_schema"]["name"] == "product_query" for r in llm.requests)
    assert all(r["temperature"] == 0.0 and r["max_tokens"] == 128 for r in llm.requests)  # serve.extraction_max_tokens


def test_an_extraction_that_stays_invalid_is_a_502_naming_the_problem(tmp_path: Path) -> None:
    storefront, llm = _storefront(tmp_path, lambda _: '{"product": 3}')
    response = _client(storefront).post("/v1/extract", json={"text": "手机", "schema": "product_query"}, headers=KEY)
    assert response.status_code == 502 and "product_query output is not valid" in response.json()["error"]
    assert len(llm.requests) == 2  # the try and one retry (serve.extraction_retries)


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (timeout_error, 504),
        (connection_error, 503),
        (lambda: status_error(openai.InternalServerError, 500), 503),
        (lambda: status_error(openai.BadRequestError, 400, "prompt too long"), 422),
        (lambda: status_error(openai.NotFoundError, 404), 502),
    ],
)
def test_model_failures_map_to_http_statuses(tmp_path: Path, failure, status: int) -> None:
    storefront, _ = _storefront(tmp_path, lambda _: failure())
    response = _client(storefront).post("/v1/recommend", json={"query": "手机"}, headers=KEY)
    assert response.status_code == status, response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]
    if status == 503:
        assert response.headers["retry-after"] == "5"


def test_a_product_turn_gets_catalogue_context_and_a_policy_turn_does_not(tmp_path: Path) -> None:
    def answer(request: dict[str, Any]) -> str:
        if not _is_extraction(request):
            return "好的，亲"
        asks_for_a_phone = "手机" in request["messages"][-1]["content"]
        return json.dumps(PHONE if asks_for_a_phone else dict.fromkeys(PHONE))

    storefront, llm = _storefront(tmp_path, answer)
    client = _client(storefront)
    asked = {"session_id": "s1", "message": "有没有3000以内的黑色手机"}
    product_turn = client.post("/v1/chat", json=asked, headers=KEY)
    assert product_turn.status_code == 200
    products = product_turn.json()["products"]
    # What passes the extracted filters comes first; near misses fill the context after it.
    assert products and products[0]["price"] <= 3000 and "黑色" in products[0]["colors"]
    system = llm.requests[-1]["messages"][0]["content"]
    assert all(p["sku"] in system for p in products)
    policy_turn = client.post("/v1/chat", json={"session_id": "s2", "message": "怎么退货？"}, headers=KEY)
    assert policy_turn.json()["products"] == [] and "returns" in policy_turn.json()["policy_topics"]
    reply = llm.requests[-1]
    assert "frequency_penalty" in reply and "response_format" not in reply


def test_a_product_turn_that_also_matches_a_policy_gets_only_the_catalogue(tmp_path: Path) -> None:
    storefront, llm = _storefront(tmp_path, lambda r: json.dumps(PHONE) if _is_extraction(r) else "ok")
    message = "I need a phone under 3000 yuan"
    assert storefront.policy_topics(message), "the message must match a policy for this test to mean anything"
    result = storefront.chat("s1", message)
    system = llm.requests[-1]["messages"][0]["content"]
    assert result.products and all(p.sku in system for p in result.products)
    assert result.policy_topics == [] and "Store policy:" not in system


def test_the_endpoint_backend_asks_as_the_storefront_does(tmp_path: Path) -> None:
    llm = FakeOpenAI(lambda r: json.dumps(PHONE) if _is_extraction(r) else "hello")
    backend = EndpointBackend(
        "http://unused", "shop", api_key="", concurrency=2, reply={"temperature": 0.0, "max_tokens": 9},
        extraction_max_tokens=7, structured_output=True, client=llm,
    )  # fmt: skip
    answered = {"role": "assistant", "content": "(the reference answer, not sent)"}
    records = [
        {
            "id": "e",
            "task": "extract",
            "schema": "product_query",
            "messages": [{"role": "user", "content": "手机"}, answered],
        },
        {"id": "c", "task": "chat", "messages": [{"role": "user", "content": "hi"}, answered]},
    ]
    predictions = {p.id: p.output for p in backend.generate(records)}
    assert predictions == {"e": json.dumps(PHONE), "c": "hello"}
    by_last_message = {r["messages"][-1]["content"]: r for r in llm.requests}
    assert by_last_message["手机"]["response_format"]["json_schema"]["name"] == "product_query"
    assert by_last_message["手机"]["max_tokens"] == 7
    assert by_last_message["hi"]["max_tokens"] == 9 and "response_format" not in by_last_message["hi"]


def test_with_one_adapter_per_task_extractions_ask_the_extraction_adapter(tmp_path: Path) -> None:
    llm = FakeOpenAI(lambda r: json.dumps(PHONE) if _is_extraction(r) else "好的，亲")
    settings = StorefrontSettings(
        model_name="shop", system_prompt="You are the shop.", extraction_prompt="name",
        serve=ServeConfig(extraction_model_name="extract"),
    )  # fmt: skip
    storefront = Storefront(settings, SqliteSessionStore(tmp_path / "s.sqlite3"), llm)
    storefront.chat("s1", "有没有3000以内的黑色手机")
    asked = [("extraction" if _is_extraction(r) else "reply", r["model"]) for r in llm.requests]
    assert asked == [("extraction", "extract"), ("reply", "shop")]

    backend = EndpointBackend(
        "http://unused", "shop", api_key="", concurrency=1, reply={}, extraction_max_tokens=8, structured_output=True,
        client=llm, extraction_model_name="extract",
    )  # fmt: skip
    answered = {"role": "assistant", "content": "(reference)"}
    records = [
        {"id": "e", "task": "extract", "schema": "product_query", "messages": [{"role": "user", "content": "手机"}]},
        {"id": "r", "task": "faq", "messages": [{"role": "user", "content": "怎么退货？"}]},
    ]
    backend.generate([{**record, "messages": [*record["messages"], answered]} for record in records])
    asked_by_message = {r["messages"][-1]["content"]: r["model"] for r in llm.requests[2:]}
    assert asked_by_message == {"手机": "extract", "怎么退货？": "shop"}


@pytest.mark.parametrize(
    ("failure", "error"),
    [(connection_error, EnvironmentProblem), (lambda: status_error(openai.BadRequestError, 400), BadInputError)],
)
def test_the_endpoint_backend_names_what_failed(failure, error: type[Exception]) -> None:
    backend = EndpointBackend(
        "http://unused", "shop", api_key="", concurrency=1, reply={}, extraction_max_tokens=8, structured_output=False,
        client=FakeOpenAI(lambda _: failure()),
    )  # fmt: skip
    with pytest.raises(error, match="endpoint"):
        backend.generate([{"id": "r1", "task": "chat", "messages": [{"role": "user", "content": "hi"}, {}]}])


def test_any_schema_of_the_shop_is_listed_and_extracted_and_an_unknown_one_is_a_422(tmp_path: Path) -> None:
    resources.use_shop(shop_with_a_claim_schema(tmp_path / "shop"))
    claim = {"serial_number": "SN-7781", "fault": "battery"}
    storefront, llm = _storefront(tmp_path, lambda _: json.dumps(claim))
    client = _client(storefront)

    listed = client.get("/v1/schemas", headers=KEY).json()["schemas"]
    assert [s["name"] for s in listed] == ["order_request", "product_query", "warranty_claim"]
    assert listed[2]["fields"] == {key: spec["description"] for key, spec in WARRANTY_CLAIM["properties"].items()}
    assert listed[2]["json_schema"] == WARRANTY_CLAIM

    done = client.post("/v1/extract", json={"text": "SN-7781 的电池坏了", "schema": "warranty_claim"}, headers=KEY)
    assert done.status_code == 200 and done.json()["data"] == claim, done.text
    assert llm.requests[-1]["response_format"]["json_schema"]["schema"] == WARRANTY_CLAIM  # guided by it

    unknown = client.post("/v1/extract", json={"text": "hi", "schema": "invoice"}, headers=KEY)
    assert unknown.status_code == 422
    known = "known: order_request, product_query, warranty_claim"
    assert unknown.json()["error"] == f"invalid request: schema: unknown schema 'invoice'; {known}"
    assert len(llm.requests) == 1  # an unknown schema never reaches the model
    assert client.get("/v1/schemas").status_code == 401
