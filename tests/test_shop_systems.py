"""The shop's live systems behind the storefront: a catalogue database whose prices and products
change while it runs, and an order system the chat answers order questions from, one customer's
orders only. The model is a fake here (what it is sent is what is checked); tests/test_vllm_stack.py
runs the same over HTTP against a real vLLM."""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI
from fastapi.testclient import TestClient
from own_shops import shop_with_a_claim_schema
from sqlalchemy import text

from shoptune.config.schema import ServeConfig, ShopConfig
from shoptune.core.errors import BadInputError
from shoptune.serve.app import create_app
from shoptune.serve.orders import OrderDesk
from shoptune.serve.retrieval import CatalogueIndex, LiveCatalogue, _document, terms
from shoptune.serve.routing import ContextRouter, calibrate_routing
from shoptune.serve.sessions import SqliteSessionStore
from shoptune.serve.storefront import Storefront, StorefrontSettings
from shoptune.shop import resources
from shoptune.shop.catalogue import SqlCatalogue, connect, write_catalogue
from shoptune.shop.orders import Order, OrderBook, read_orders, write_orders

KEY = {"X-API-Key": "secret"}
SHIPPED = "YX202611250001"  # customer C1001's shoes, shipped (datasets/orders/orders.jsonl)
DELIVERED = "YX202611180002"  # customer C1001's phone, delivered


def _extraction(request: dict[str, Any]) -> str:
    return json.dumps({"product": "手机", "price_range": [None, 3000], "color": None, "size": None})


def _fake_model(request: dict[str, Any]) -> str:
    return _extraction(request) if "response_format" in request else "好的"


def _storefront(tmp_path: Path, *, catalogue: LiveCatalogue | None = None, orders: OrderDesk | None = None):
    llm = FakeOpenAI(_fake_model)
    settings = StorefrontSettings(model_name="shop", system_prompt="You are the shop.")
    store = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    return Storefront(settings, store, llm, catalogue=catalogue, orders=orders), llm


def _sample_order(order_id: str) -> Order:
    return next(o for o in read_orders(resources.active().root / "orders" / "orders.jsonl") if o.order_id == order_id)


def _desk(now: datetime) -> OrderDesk:
    shop = resources.active()
    book = OrderBook.open(None, shop.root)
    return OrderDesk(book, shop, ShopConfig().order_id_pattern, shop.catalogue_source, now=lambda: now)


# --- the catalogue --------------------------------------------------------------------------


def test_the_inverted_index_scores_exactly_bm25() -> None:
    """Okapi BM25 written out product by product, against the index's postings."""
    index = CatalogueIndex()
    docs = [Counter(terms(_document(p))) for p in index.products]
    average = sum(sum(d.values()) for d in docs) / len(docs)
    for query in ("红色的小米手机", "a Xiaomi phone under 3000", "羽绒服 黑色 L码", "hello"):
        expected = []
        for doc in docs:
            length, score = sum(doc.values()), 0.0
            for term, count in Counter(terms(query)).items():
                if doc.get(term):
                    df = sum(1 for d in docs if term in d)
                    idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                    tf = doc[term]
                    score += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / average)) * count
            expected.append(score)
        assert index.scores(query).tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12), query
        ranked = index.ranked(query, pool=7)
        best = sorted(((s, i) for i, s in enumerate(expected) if s > 0), reverse=True)[:7]
        assert [p.sku for p in ranked] == [index.products[i].sku for _, i in best], query


def test_a_price_changed_in_the_catalogue_database_is_what_the_next_answer_quotes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    assert write_catalogue(url, resources.catalogue()) == len(resources.catalogue())
    source = SqlCatalogue(url)
    storefront, llm = _storefront(tmp_path, catalogue=LiveCatalogue(source))

    first = storefront.chat("s", "我想买一部3000元以内的手机")
    phone = first.products[0]
    assert phone.price <= 3000 and f"¥{phone.price:g}" in llm.requests[-1]["messages"][0]["content"]

    new_price = phone.price - 111
    with connect(url).begin() as db:
        db.execute(text("UPDATE products SET price = :price WHERE sku = :sku"), {"price": new_price, "sku": phone.sku})
    second = storefront.chat("s2", "我想买一部3000元以内的手机")
    quoted = next(p for p in second.products if p.sku == phone.sku)
    assert quoted.price == new_price  # no restart, no reload call
    context = llm.requests[-1]["messages"][0]["content"]
    assert f"¥{new_price:g}" in context and f"¥{phone.price:g}" not in context

    # Over budget now: the same filters leave it out of the matching products.
    with connect(url).begin() as db:
        db.execute(text("UPDATE products SET price = 9999 WHERE sku = :sku"), {"sku": phone.sku})
    third = storefront.chat("s3", "我想买一部3000元以内的手机")
    assert all(p.price <= 3000 for p in third.products[:1]) and phone.sku != third.products[0].sku


def test_a_product_added_to_the_database_is_found_without_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    products = resources.catalogue()
    write_catalogue(url, products[:-1])
    clock = [0.0]
    live = LiveCatalogue(SqlCatalogue(url), check_every_s=1.0, clock=lambda: clock[0])
    newest = products[-1]
    assert newest.sku not in {p.sku for p in live.search(newest.name_zh, k=50)}
    write_catalogue(url, [newest])
    clock[0] = 0.5  # within serve.catalogue_check_s of the last look: the index stands
    assert newest.sku not in {p.sku for p in live.search(newest.name_zh, k=50)}
    clock[0] = 1.0
    assert live.search(newest.name_zh)[0].sku == newest.sku


def test_a_catalogue_database_that_cannot_be_read_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot read products"):
        SqlCatalogue(f"sqlite:///{tmp_path / 'empty.db'}").products()
    with pytest.raises(BadInputError, match="not a database URL"):
        connect("nosuchdialect://x")


# --- orders ---------------------------------------------------------------------------------


def test_an_order_question_is_answered_from_the_order_row_and_the_model_is_not_asked(tmp_path: Path) -> None:
    order = _sample_order(SHIPPED)
    storefront, llm = _storefront(tmp_path, orders=_desk(datetime(2026, 11, 27)))
    result = storefront.chat("s", f"我的订单{SHIPPED}到哪了？", customer_id=order.customer_id)
    assert result.order_id == SHIPPED and llm.requests == []
    assert [p.sku for p in result.products] == [item.sku for item in order.items]  # the cards of its items
    shoes = resources.products_by_sku()[order.items[0].sku]
    assert result.reply == (
        f"您的订单{SHIPPED}（{shoes.name_zh}×{order.items[0].quantity}）已于11月25日由{order.carrier}发出，"
        f"运单号{order.tracking_no}，正在配送中。"
    )
    english = storefront.chat("s", f"Where is my order #{SHIPPED.lower()}?", customer_id=order.customer_id)
    assert f"shipped on November 25 with {order.carrier}, tracking number {order.tracking_no}" in english.reply
    assert [t["content"] for t in storefront.store.history("s")][1] == result.reply  # kept in the conversation


def test_another_customers_order_is_answered_like_one_that_does_not_exist(tmp_path: Path) -> None:
    storefront, _ = _storefront(tmp_path, orders=_desk(datetime(2026, 11, 27)))
    owner = _sample_order(SHIPPED).customer_id
    stranger = storefront.chat("a", f"我的订单{SHIPPED}到哪了？", customer_id="C1002")
    theirs = stranger.reply
    assert stranger.products == [] and stranger.order_id == SHIPPED
    missing = storefront.chat("b", "我的订单YX209912310001到哪了？", customer_id="C1002").reply
    anonymous = storefront.chat("c", f"我的订单{SHIPPED}到哪了？").reply
    assert theirs == missing.replace("YX209912310001", SHIPPED) == anonymous
    assert "没有找到" in theirs and _sample_order(SHIPPED).tracking_no not in theirs and owner not in theirs


@pytest.mark.parametrize(
    ("days_after_delivery", "says"),
    [
        (3, "距今3天，在7天无理由退货期内，可以申请退货"),
        (10, "距今10天，已超过7天无理由退货期；如有质量问题，签收后15天内仍可退货"),
        (20, "距今20天，已超过退货期限（无理由7天，质量问题15天）"),
    ],
)
def test_a_return_question_gets_the_policy_applied_to_that_order(
    tmp_path: Path, days_after_delivery: int, says: str
) -> None:
    order = _sample_order(DELIVERED)
    today = order.delivered_at + timedelta(days=days_after_delivery)
    storefront, _ = _storefront(tmp_path, orders=_desk(today))
    reply = storefront.chat("s", f"订单{DELIVERED}可以退货吗？", customer_id=order.customer_id).reply
    delivered = f"{order.delivered_at.month}月{order.delivered_at.day}日"
    assert f"于{delivered}签收，{says}" in reply, reply
    not_yet = storefront.chat("s", f"订单{SHIPPED}能退吗", customer_id=order.customer_id).reply
    assert "还未签收" in not_yet


def test_the_chat_endpoint_takes_the_customer_from_the_shops_backend(tmp_path: Path) -> None:
    order = _sample_order(SHIPPED)
    storefront, _ = _storefront(tmp_path, orders=_desk(datetime(2026, 11, 27)))
    client = TestClient(create_app(storefront, api_key="secret"), raise_server_exceptions=False)
    body = {"session_id": "web-1", "message": f"Where is my order {SHIPPED}?", "customer_id": order.customer_id}
    answered = client.post("/v1/chat", json=body, headers=KEY)
    assert answered.status_code == 200 and answered.json()["order_id"] == SHIPPED
    assert order.tracking_no in answered.json()["reply"]
    bad = client.post("/v1/chat", json={**body, "customer_id": "C1001' OR '1'='1"}, headers=KEY)
    assert bad.status_code == 422 and "customer_id" in bad.json()["error"]


def test_an_order_database_at_a_url_is_read_and_a_bad_orders_file_names_line_and_field(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    orders = read_orders(resources.active().root / "orders" / "orders.jsonl")
    assert write_orders(connect(url), orders) == len(orders)
    assert write_orders(connect(url), orders[:3]) == 3  # loading again replaces, never duplicates
    book = OrderBook.open(url, tmp_path)
    assert book.lookup(SHIPPED, orders[0].customer_id) == orders[0]
    assert book.lookup(SHIPPED, "C1002") is None

    bad = tmp_path / "orders.jsonl"
    good = orders[1].model_dump_json()
    bad.write_text(good + "\n" + good.replace('"delivered"', '"lost"', 1) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"orders.jsonl:2: status: Input should be"):
        read_orders(bad)


# --- routing --------------------------------------------------------------------------------


def test_the_product_request_threshold_is_derived_from_the_shop(tmp_path: Path) -> None:
    example = ContextRouter(ServeConfig())
    calibration = calibrate_routing(example.catalogue, resources.active())
    assert example.product_query_score == calibration.product_query_score
    assert calibration.product_recall >= 0.95 and calibration.other_specificity >= 0.95, calibration
    for request in ("我想买一部3000元以内的手机", "Do you sell laptops?", "I need a phone under 3000 yuan"):
        assert example.catalogue.best_score(request) >= example.product_query_score, request
    for other in ("衣服尺码不合适，怎么退货？", "How do I return an item?", "那黑色的呢？"):
        assert example.catalogue.best_score(other) < example.product_query_score, other

    # A shop that sells only phones: its own scores, its own threshold.
    shop = shop_with_a_claim_schema(tmp_path / "phones")
    phones = [line for line in (shop / "catalogue" / "products.jsonl").read_text().splitlines() if '"phone"' in line]
    (shop / "catalogue" / "products.jsonl").write_text("\n".join(phones) + "\n")
    resources.use_shop(shop)
    own = ContextRouter(ServeConfig())
    assert own.product_query_score != example.product_query_score
    assert calibrate_routing(own.catalogue, resources.active()).product_recall >= 0.9

    assert ContextRouter(ServeConfig(product_query_score=20.0)).product_query_score == 20.0  # configured: as is


def test_a_shop_without_the_filter_schema_chats_on_the_budget_it_states(tmp_path: Path) -> None:
    shop = shop_with_a_claim_schema(tmp_path / "claims-only")
    (shop / "schemas" / "product_query.schema.json").unlink()
    resources.use_shop(shop)
    storefront, llm = _storefront(tmp_path)
    result = storefront.chat("s", "我想买一部3000元以内的手机")
    assert [r for r in llm.requests if "response_format" in r] == []  # no product_query to ask the model for
    assert result.filters["price_range"] == [None, 3000] and result.products
    assert all(p.price <= 3000 for p in result.products[:1])


def test_the_model_does_not_see_the_order_systems_replies_in_later_turns(tmp_path: Path) -> None:
    order = _sample_order(SHIPPED)
    storefront, llm = _storefront(tmp_path, orders=_desk(datetime(2026, 11, 27)))
    storefront.chat("s", "我想买一部3000元以内的手机", customer_id=order.customer_id)
    storefront.chat("s", f"我的订单{SHIPPED}到哪了？", customer_id=order.customer_id)
    storefront.chat("s", "那黑色的呢？", customer_id=order.customer_id)
    sent = json.dumps(llm.requests[-1]["messages"], ensure_ascii=False)
    assert "我想买一部3000元以内的手机" in sent and SHIPPED not in sent and order.tracking_no not in sent
    assert len(storefront.store.history("s")) == 6  # the shopper's own record keeps every turn
