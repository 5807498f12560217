"""Which context a chat turn gets: product cards from the catalogue, policy topics, or neither,
decided as the training data's tasks had them (a recommend turn carries catalogue context, an FAQ
turn policy context alone), and the filters a follow-up keeps from the turns before."""

from __future__ import annotations

import re
from typing import Any

from shoptune.config.schema import ServeConfig
from shoptune.serve.masking import ORDER_ID
from shoptune.serve.retrieval import CatalogueIndex, Filters, terms
from shoptune.shop import resources
from shoptune.shop.resources import PolicyTopic, Product

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


def merge_filters(previous: dict[str, Any] | None, extracted: dict[str, Any]) -> dict[str, Any]:
    """A follow-up ("那黑色的呢？") keeps the earlier product and budget and changes what it names."""
    if not previous or extracted.get("product"):
        return extracted
    merged = dict(previous)
    for key in ("price_range", "color", "size"):
        if extracted.get(key) is not None:
            merged[key] = extracted[key]
    return merged


class ContextRouter:
    """The catalogue and policy indexes, and the rule that picks a turn's context from them."""

    def __init__(self, serve: ServeConfig, index: CatalogueIndex | None = None) -> None:
        self.serve = serve
        self.index = index or CatalogueIndex()
        self.policies = PolicyIndex()

    def policy_topics(self, message: str) -> list[PolicyTopic]:
        """The policy topics a message is about, within the configured limits."""
        return self.policies.search(message, self.serve.policy_topics_per_turn, self.serve.policy_match_share)

    def retrieve(self, text: str, extracted: dict[str, Any] | None) -> list[Product]:
        """Products for `text`, the extracted product name searched first, the extracted filters applied."""
        query = " ".join(filter(None, [(extracted or {}).get("product"), text]))
        return self.index.search(query, Filters.from_extraction(extracted))

    def asks_about_products(
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
        if max(self.index.scores(message), default=0.0) >= self.serve.product_query_score:
            return True
        # The conversation is about products if an extraction named one or, for a small model
        # whose extraction missed it, if the last turn was grounded on products.
        if not (filters.get("product") or last_turn_had_products) or ORDER_ID.search(message):
            return False
        names_attribute = any(extracted.get(key) is not None for key in ("price_range", "color", "size"))
        return names_attribute or not topics
