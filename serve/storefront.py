"""The storefront's logic, apart from HTTP: extraction, grounded recommendations and multi-turn
chat on top of the served model. The HTTP layer (serve/app.py) only validates, authenticates and
maps errors; everything a shopper gets is decided here, by three parts with one job each:
`Extractor` (serve/extraction.py), `ContextRouter` (serve/routing.py) and `HistoryWindow`
(serve/history.py).

Prompts are built with the same functions training used (`shoptune.shop.prompts`), so the model
sees the system prompt and context layout it was tuned on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoptune.config.schema import ServeConfig, ShopConfig
from shoptune.serve.extraction import Extractor, ModelOutputInvalid
from shoptune.serve.history import HistoryWindow
from shoptune.serve.orders import OrderDesk
from shoptune.serve.retrieval import Filters, LiveCatalogue
from shoptune.serve.routing import ContextRouter, merge_filters
from shoptune.serve.sessions import SessionStore
from shoptune.serve.stated_filters import fill_stated
from shoptune.shop import resources
from shoptune.shop.decoding import reply_request
from shoptune.shop.orders import OrderBook
from shoptune.shop.prompts import catalogue_context, detect_language, policy_context, system_message
from shoptune.shop.resources import PolicyTopic, Product

__all__ = ["ChatResult", "ModelOutputInvalid", "Storefront", "StorefrontSettings", "product_json"]

logger = logging.getLogger("shoptune.storefront")
ORDER_TURNS = "order_turns"
"""Session state: positions in the history of the turns the order system answered."""


@dataclass(frozen=True)
class StorefrontSettings:
    model_name: str
    system_prompt: str
    extraction_prompt: str = "outline"
    """`data.extraction_prompt` of the config the model was trained with."""
    serve: ServeConfig = field(default_factory=ServeConfig)
    """Token budgets, reply sampling, retries and routing thresholds, each documented in `ServeConfig`."""
    shop: ShopConfig = field(default_factory=ShopConfig)
    """Where the order system is and what the shop's order numbers look like."""


@dataclass
class ChatResult:
    reply: str
    products: list[Product]
    filters: dict[str, Any]
    policy_topics: list[str] = field(default_factory=list)
    order_id: str | None = None
    """The order number the reply answered from the order system (None: not an order question)."""


def product_json(product: Product, lang: str) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name(lang),
        "price": product.price,
        "in_stock": product.in_stock,
        "stock": product.stock,
        "colors": product.colour_names(lang),
        "sizes": list(product.sizes),
    }


class Storefront:
    """Chat, extraction and recommendations for shoppers, over the served model `llm` (an OpenAI client)."""

    def __init__(
        self,
        settings: StorefrontSettings,
        store: SessionStore,
        llm: Any,
        tokenizer: Any | None = None,
        catalogue: LiveCatalogue | None = None,
        orders: OrderDesk | None = None,
    ) -> None:
        serve = settings.serve
        self.settings, self.store, self.llm = settings, store, llm
        self.extractor = Extractor(
            llm,
            serve.extraction_model_name or settings.model_name,
            settings.extraction_prompt,
            max_tokens=serve.extraction_max_tokens,
            retries=serve.extraction_retries,
        )
        self.router = ContextRouter(serve, catalogue)
        self.orders = orders or _order_desk(settings.shop)
        self.history = HistoryWindow(serve.history_token_budget, tokenizer)
        self.reply = reply_request(serve)
        """Sampling arguments of every chat and recommendation reply (the storefront's settings)."""

    @property
    def schemas(self) -> dict[str, dict[str, Any]]:
        """The shop's extraction schemas by name: what `extract` accepts."""
        return self.extractor.schemas

    def extract(self, text: str, schema_name: str) -> dict[str, Any]:
        """A JSON object valid against `schema_name`, via guided decoding; validated before returning."""
        return self.extractor.extract(text, schema_name)

    def policy_topics(self, message: str) -> list[PolicyTopic]:
        return self.router.policy_topics(message)

    def recommend(self, query: str) -> tuple[list[Product], str, dict[str, Any]]:
        """In-stock products matching the query's extracted filters, a grounded answer, and the filters."""
        extracted = self._filters_from_model(query)
        products = self.router.retrieve(query, extracted)
        messages = [
            system_message(self.settings.system_prompt, catalogue_context(products, detect_language(query))),
            {"role": "user", "content": query},
        ]
        answer = self._complete(messages)
        filters = Filters.from_extraction(extracted)
        return [p for p in products if p.in_stock and filters.accepts(p)], answer, extracted

    def chat(self, session_id: str, message: str, customer_id: str | None = None) -> ChatResult:
        """One shopper turn: route its context, answer it, and store the exchange and the filters.
        `customer_id`: the signed-in shopper, whose orders (and only theirs) the chat may look up."""
        state = self.store.get_state(session_id)
        lang = detect_language(message)
        if self.orders and (order_id := self.orders.order_id(message)):
            return self._order_turn(self.orders, session_id, state, message, order_id, customer_id, lang)
        history = self._model_history(session_id, state)
        extracted = fill_stated(self._filters_from_model(message), message)
        filters = merge_filters(state.get("filters"), extracted)
        blocks = []
        products: list[Product] = []
        topics = self.policy_topics(message)
        if self.router.asks_about_products(message, extracted, filters, topics, state.get("about_products", False)):
            earlier = history[-self.settings.serve.retrieval_history_turns :]
            recent = " ".join(t["content"] for t in earlier if t["role"] == "user")
            products = self.router.retrieve(f"{recent} {message}", filters)
            blocks.append(catalogue_context(products, lang))
        # One kind of context a turn, as the training turns carry: "I need a phone under 3000 yuan"
        # also matches the shipping policy ("yuan"), and given both blocks a small model answers
        # the policy instead of the product question.
        topics = [] if products else topics
        if topics:
            blocks.append(policy_context(topics, lang))
        system = system_message(self.settings.system_prompt, *blocks)
        user = {"role": "user", "content": message}
        # A product turn needs the conversation ("那黑色的呢？" means the phone from before). A policy
        # or order question stands alone, as the FAQ turns it was trained on do; with the earlier
        # product answer in view, a small model repeats that answer instead.
        context = history if products else []
        reply = self._complete([system, *self.history.trim(system, context, user), user])
        self.store.append(session_id, [user, {"role": "assistant", "content": reply}])
        self.store.set_state(session_id, {**state, "filters": filters, "about_products": bool(products)})
        return ChatResult(reply, products, filters, [t.id for t in topics])

    def _order_turn(
        self,
        desk: OrderDesk,
        session_id: str,
        state: dict[str, Any],
        message: str,
        order_id: str,
        customer_id: str | None,
        lang: str,
    ) -> ChatResult:
        """A question about one order, answered from the order system by `desk`; the model is not asked."""
        reply, products = desk.answer(message, order_id, customer_id, lang)
        topics = [desk.return_topic] if desk.asks_about_return(message, lang) else []
        start = len(self.store.history(session_id))
        self.store.append(session_id, [{"role": "user", "content": message}, {"role": "assistant", "content": reply}])
        answered = [*state.get(ORDER_TURNS, []), start, start + 1]
        self.store.set_state(session_id, {**state, "about_products": False, ORDER_TURNS: answered})
        return ChatResult(reply, products, state.get("filters") or {}, topics, order_id)

    def _model_history(self, session_id: str, state: dict[str, Any]) -> list[dict[str, str]]:
        """The conversation as the model sees it: without the turns the order system answered. Their
        replies are templates the model was never trained on, and a small model given one copies it
        (a tracking number in the next product answer)."""
        skipped = set(state.get(ORDER_TURNS, []))
        return [turn for position, turn in enumerate(self.store.history(session_id)) if position not in skipped]

    def _filters_from_model(self, message: str) -> dict[str, Any]:
        """The extraction step of a product search (`serve.filter_schema`). It only narrows retrieval,
        so when the model cannot give a valid object (an untuned model can run its guided JSON past
        max_tokens), or the shop has no such schema, the search goes on without it instead of
        failing the shopper's request."""
        schema = self.settings.serve.filter_schema
        if schema is None or schema not in self.schemas:
            return {}
        try:
            return self.extract(message, schema)
        except ModelOutputInvalid as exc:
            logger.warning("chat goes on without model filters: %s", exc)
            return {}

    def _complete(self, messages: list[dict[str, str]]) -> str:
        reply = self.llm.chat.completions.create(model=self.settings.model_name, messages=messages, **self.reply)
        return (reply.choices[0].message.content or "").strip()


def _order_desk(shop: ShopConfig) -> OrderDesk | None:
    """The order lookups of the shop this process serves, over its configured order system; None for
    a shop without order replies (`templates/orders.yaml`), whose order questions go to the model."""
    active = resources.active()
    if not active.has_templates("orders"):
        return None
    book = OrderBook.open(shop.orders_url, active.root)
    return OrderDesk(book, active, shop.order_id_pattern, active.catalogue_source)


def load_tokenizer_for(model_dir: Path | None) -> Any | None:
    if model_dir is None:
        return None
    from shoptune.models.loading import load_tokenizer

    return load_tokenizer(model_dir)
