"""The storefront's logic, apart from HTTP: extraction, grounded recommendations and multi-turn
chat on top of the served model. The HTTP layer (serve/app.py) only validates, authenticates and
maps errors; everything a shopper gets is decided here.

Prompts are built with the same functions training used (`shoptune.shop.prompts`), so the model
sees the system prompt and context layout it was tuned on.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from shoptune.config.schema import ServeConfig
from shoptune.serve.masking import ORDER_ID
from shoptune.serve.retrieval import CatalogueIndex, Filters, terms
from shoptune.serve.sessions import SessionStore
from shoptune.serve.stated_filters import fill_stated
from shoptune.shop import resources
from shoptune.shop.decoding import extraction_request, reply_request
from shoptune.shop.prompts import (
    catalogue_context,
    detect_language,
    extraction_system_prompt,
    policy_context,
    system_message,
)
from shoptune.shop.resources import PolicyTopic, Product

logger = logging.getLogger("shoptune.storefront")


class ModelOutputInvalid(Exception):
    """The model did not produce a schema-valid object even with guided decoding and a retry."""


@dataclass(frozen=True)
class StorefrontSettings:
    model_name: str
    system_prompt: str
    extraction_prompt: str = "outline"
    """`data.extraction_prompt` of the config the model was trained with."""
    serve: ServeConfig = field(default_factory=ServeConfig)
    """Token budgets, reply sampling, retries and routing thresholds, each documented in `ServeConfig`."""


@dataclass
class ChatResult:
    reply: str
    products: list[Product]
    filters: dict[str, Any]
    policy_topics: list[str] = field(default_factory=list)


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


_FUNCTION_WORD = re.compile(
    r"\b(?:what|about|how|do|does|did|i|me|my|we|our|you|your|it|its|they|them|the|a|an|is|are|was|be|can|"
    r"could|would|will|have|has|had|need|want|get|there|this|that|these|those|of|in|on|for|to|with|and|or|any|some|please|hi|hello)\b",
    re.IGNORECASE,
)


class PolicyIndex:
    """Which policy topics a message is about: term overlap with each topic's title, text and questions."""

    def __init__(self) -> None:
        self.topics = list(resources.policy())
        self.bags = [
            set(terms(" ".join([*t.title.values(), *t.text.values(), *t.questions["zh"], *t.questions["en"]])))
            for t in self.topics
        ]

    def search(self, text: str, k: int, threshold: float) -> list[PolicyTopic]:
        """The (at most `k`) topics containing at least `threshold` of the message's terms, best first."""
        # English function words (and their 3-grams) overlap every policy text; without this
        # "What about black?" scored as a returns question.
        query = set(terms(_FUNCTION_WORD.sub(" ", text)))
        if not query:
            return []
        scored = sorted(((len(query & bag) / len(query), i) for i, bag in enumerate(self.bags)), reverse=True)
        return [self.topics[i] for score, i in scored[:k] if score >= threshold]


class Storefront:
    def __init__(
        self,
        settings: StorefrontSettings,
        store: SessionStore,
        llm: Any,
        tokenizer: Any | None = None,
        index: CatalogueIndex | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self.tokenizer = tokenizer
        self.index = index or CatalogueIndex()
        self.policies = PolicyIndex()
        self.reply = reply_request(settings.serve)
        """Sampling arguments of every chat and recommendation reply (the storefront's settings)."""
        self.validators = {name: Draft202012Validator(s) for name, s in resources.schemas().items()}

    # --- extraction -----------------------------------------------------------------------
    def extract(self, text: str, schema_name: str) -> dict[str, Any]:
        """A JSON object valid against `schema_name`, via guided decoding; validated before returning."""
        schema = resources.schemas()[schema_name]
        messages = [
            {
                "role": "system",
                "content": extraction_system_prompt(schema_name, schema, self.settings.extraction_prompt),
            },
            {"role": "user", "content": text},
        ]
        problem = "no answer"
        for _ in range(1 + self.settings.serve.extraction_retries):
            reply = self.llm.chat.completions.create(
                model=self.settings.model_name, messages=messages, **extraction_request(schema_name)
            )
            content = reply.choices[0].message.content or ""
            try:
                value = json.loads(content)
            except ValueError as exc:
                problem = f"not JSON ({exc})"
                continue
            errors = list(self.validators[schema_name].iter_errors(value)) if isinstance(value, dict) else []
            if isinstance(value, dict) and not errors:
                return value
            problem = errors[0].message if errors else "not a JSON object"
        raise ModelOutputInvalid(f"the model's {schema_name} output is not valid: {problem}")

    # --- recommendation -------------------------------------------------------------------
    def recommend(self, query: str) -> tuple[list[Product], str, dict[str, Any]]:
        extracted = self.extract(query, "product_query")
        products = self._retrieve(query, extracted)
        lang = detect_language(query)
        messages = [
            system_message(self.settings.system_prompt, catalogue_context(products, lang)),
            {"role": "user", "content": query},
        ]
        answer = self._complete(messages)
        filters = Filters.from_extraction(extracted)
        matching = [p for p in products if p.in_stock and filters.accepts(p)]
        return matching, answer, extracted

    def _retrieve(self, text: str, extracted: dict[str, Any] | None) -> list[Product]:
        query = " ".join(filter(None, [(extracted or {}).get("product"), text]))
        return self.index.search(query, Filters.from_extraction(extracted))

    # --- chat -----------------------------------------------------------------------------
    def chat(self, session_id: str, message: str) -> ChatResult:
        history = self.store.history(session_id)
        state = self.store.get_state(session_id)
        lang = detect_language(message)
        extracted = fill_stated(self._filters_from_model(message), message)
        filters = self._merge_filters(state.get("filters"), extracted)
        blocks = []
        products: list[Product] = []
        topics = self.policy_topics(message)
        if self._asks_about_products(message, extracted, filters, topics, state.get("about_products", False)):
            earlier = history[-self.settings.serve.retrieval_history_turns :]
            recent = " ".join(t["content"] for t in earlier if t["role"] == "user")
            products = self._retrieve(f"{recent} {message}", filters)
            blocks.append(catalogue_context(products, lang))
        if topics:
            blocks.append(policy_context(topics, lang))
        system = system_message(self.settings.system_prompt, *blocks)
        user = {"role": "user", "content": message}
        # A product turn needs the conversation ("那黑色的呢？" means the phone from before). A policy
        # or order question stands alone, as the FAQ turns it was trained on do; with the earlier
        # product answer in view, a small model repeats that answer instead.
        context = history if products else []
        reply = self._complete([system, *self._trim(system, context, user), user])
        self.store.append(session_id, [user, {"role": "assistant", "content": reply}])
        self.store.set_state(session_id, {**state, "filters": filters, "about_products": bool(products)})
        return ChatResult(reply, products, filters, [t.id for t in topics])

    def policy_topics(self, message: str) -> list[PolicyTopic]:
        """The policy topics a message is about, within the configured limits."""
        serve = self.settings.serve
        return self.policies.search(message, serve.policy_topics_per_turn, serve.policy_match_share)

    def _filters_from_model(self, message: str) -> dict[str, Any]:
        """The chat's extraction step. It only narrows retrieval, so when the model cannot give a
        valid object (an untuned model can run its guided JSON past max_tokens) the turn goes on
        without it instead of failing the shopper's request."""
        try:
            return self.extract(message, "product_query")
        except ModelOutputInvalid as exc:
            logger.warning("chat goes on without model filters: %s", exc)
            return {}

    def _asks_about_products(
        self,
        message: str,
        extracted: dict[str, Any],
        filters: dict[str, Any],
        topics: list[PolicyTopic],
        last_turn_had_products: bool = False,
    ) -> bool:
        """Whether this turn gets catalogue context, as the training data's recommend turns do.

        A message that matches the catalogue strongly on its own (BM25) does. So does a follow-up
        in a conversation about a product that names a colour, size or budget ("那黑色的呢？") or
        asks no policy question. A question about an order or a policy ("怎么退货？") does not:
        with product cards in its context a small model answers it with the same recommendation
        again, and the FAQ turns it was trained on carry policy context alone.
        """
        if max(self.index.scores(message), default=0.0) >= self.settings.serve.product_query_score:
            return True
        # The conversation is about products if an extraction named one or, for a small model
        # whose extraction missed it, if the last turn was grounded on products.
        if not (filters.get("product") or last_turn_had_products) or ORDER_ID.search(message):
            return False
        names_attribute = any(extracted.get(key) is not None for key in ("price_range", "color", "size"))
        return names_attribute or not topics

    @staticmethod
    def _merge_filters(previous: dict[str, Any] | None, extracted: dict[str, Any]) -> dict[str, Any]:
        """A follow-up ("那黑色的呢？") keeps the earlier product and budget and changes what it names."""
        if not previous or extracted.get("product"):
            return extracted
        merged = dict(previous)
        for key in ("price_range", "color", "size"):
            if extracted.get(key) is not None:
                merged[key] = extracted[key]
        return merged

    def _trim(
        self, system: dict[str, str], history: list[dict[str, str]], user: dict[str, str]
    ) -> list[dict[str, str]]:
        """Drop the oldest exchanges until the conversation fits the history token budget."""
        kept = list(history)
        while kept and self._tokens([system, *kept, user]) > self.settings.serve.history_token_budget:
            kept = kept[2:]
        return kept

    def _tokens(self, messages: list[dict[str, str]]) -> int:
        if self.tokenizer is None:
            return sum(len(m["content"]) for m in messages) // 2
        return len(self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)["input_ids"])

    def _complete(self, messages: list[dict[str, str]]) -> str:
        reply = self.llm.chat.completions.create(model=self.settings.model_name, messages=messages, **self.reply)
        return (reply.choices[0].message.content or "").strip()


def load_tokenizer_for(model_dir: Path | None) -> Any | None:
    if model_dir is None:
        return None
    from shoptune.models.loading import load_tokenizer

    return load_tokenizer(model_dir)
