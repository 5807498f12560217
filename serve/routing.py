"""Which context a chat turn gets: product cards from the catalogue, policy topics, or neither,
decided as the training data's tasks had them (a recommend turn carries catalogue context, an FAQ
turn policy context alone), and the filters a follow-up keeps from the turns before."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoptune.config.schema import ServeConfig
from shoptune.core.errors import BadInputError
from shoptune.serve.masking import ORDER_ID
from shoptune.serve.retrieval import Filters, LiveCatalogue, terms
from shoptune.shop import resources
from shoptune.shop.resources import PolicyTopic, Product, Shop

logger = logging.getLogger("shoptune.storefront")
_SLOT = re.compile(r"\{\w+\}")

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
            set(terms(" ".join([*t.title.values(), *t.text.values(), *(q for qs in t.questions.values() for q in qs)])))
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

    def __init__(self, serve: ServeConfig, catalogue: LiveCatalogue | None = None) -> None:
        self.serve = serve
        self.catalogue = catalogue or LiveCatalogue(resources.active().catalogue_source, serve.catalogue_check_s)
        self.policies = PolicyIndex()
        self.product_query_score = serve.product_query_score
        if self.product_query_score is None:
            calibration = calibrate_routing(self.catalogue, resources.active())
            logger.info("routing derived from the shop: %s", calibration)
            self.product_query_score = calibration.product_query_score

    def policy_topics(self, message: str) -> list[PolicyTopic]:
        """The policy topics a message is about, within the configured limits."""
        return self.policies.search(message, self.serve.policy_topics_per_turn, self.serve.policy_match_share)

    def retrieve(self, text: str, extracted: dict[str, Any] | None) -> list[Product]:
        """Products for `text`, the extracted product name searched first, the extracted filters applied."""
        query = " ".join(filter(None, [(extracted or {}).get("product"), text]))
        return self.catalogue.search(query, Filters.from_extraction(extracted))

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
        if self.catalogue.best_score(message) >= self.product_query_score:
            return True
        # The conversation is about products if an extraction named one or, for a small model
        # whose extraction missed it, if the last turn was grounded on products.
        if not (filters.get("product") or last_turn_had_products) or ORDER_ID.search(message):
            return False
        names_attribute = any(extracted.get(key) is not None for key in ("price_range", "color", "size"))
        return names_attribute or not topics


@dataclass(frozen=True)
class RoutingCalibration:
    """The product-request threshold derived from a shop, and how well it separates its messages."""

    product_query_score: float
    product_requests: int
    """Shop phrasings of product requests scored (each should reach the threshold)."""
    other_messages: int
    """Policy questions and follow-ups scored (each should stay below it)."""
    product_recall: float
    other_specificity: float


CALIBRATION_PRODUCTS = 400
"""Products (evenly spread over the catalogue) whose requests calibrate routing: enough to cover its
categories, few enough that a 100,000-SKU catalogue calibrates in a second."""


def shop_product_requests(shop: Shop) -> list[str]:
    """Product requests as the shop's shoppers phrase them: a product's noun (and a colour) put into
    the shop's product-request phrasings (`templates/product_query.yaml`, cycled), in each language
    they are written in, slots it has no value for left out; its bare noun where the shop has no
    such phrasings."""
    phrasings = shop.templates("product_query") if shop.has_templates("product_query") else {}
    catalogue = shop.catalogue
    sample = catalogue[:: max(1, len(catalogue) // CALIBRATION_PRODUCTS)]
    messages = []
    for number, product in enumerate(sample):
        for lang in list(phrasings) or ["zh", "en"]:
            noun = product.noun_zh if lang == "zh" else product.noun_en
            colour = product.colour_names(lang)[0] if product.colors else ""
            forms = phrasings.get(lang) or [{"text": "{product}"}]
            text = forms[number % len(forms)]["text"].replace("{product}", noun).replace("{color}", colour)
            messages.append(_SLOT.sub("", text))
    return messages


def shop_other_messages(shop: Shop) -> list[str]:
    """What shoppers send that is not a product request: the policy's questions and, if the shop has
    them, its follow-up phrasings (`templates/chat.yaml`) with a colour and each topic filled in."""
    messages = [q for topic in shop.policy for lang in ("zh", "en") for q in topic.questions.get(lang, [])]
    if shop.has_templates("chat"):
        chat = shop.templates("chat")
        colour = shop.catalogue[0].colors[0] if shop.catalogue and shop.catalogue[0].colors else None
        for lang_forms in chat.get("follow_ups", {}).values():
            for lang, forms in lang_forms.items():
                for form in forms:
                    for names in chat.get("topic_names", {}).values():
                        text = form["text"].replace("{topic}", names.get(lang, ""))
                        messages.append(
                            text.replace("{color}", (colour.zh if lang == "zh" else colour.en) if colour else "")
                        )
    return sorted(set(messages))


def calibrate_routing(catalogue: LiveCatalogue, shop: Shop) -> RoutingCalibration:
    """The score threshold that best separates the shop's product requests from its other messages
    (most balanced accuracy; of equals, the lowest, so a doubtful turn still sees the catalogue),
    placed halfway between the two scores around it."""
    requests = np.array([catalogue.best_score(m) for m in shop_product_requests(shop)])
    others = np.array([catalogue.best_score(m) for m in shop_other_messages(shop)])
    if not len(requests) or not len(others):
        raise BadInputError(
            f"{shop.root}: cannot derive serve.product_query_score without products and policy questions; set it"
        )
    candidates = np.unique(np.concatenate([requests, others]))
    accuracy = [(requests >= t).mean() + (others < t).mean() for t in candidates]
    best = int(np.argmax(accuracy))  # first of the best: the lowest
    threshold = float(candidates[best] + candidates[best - 1]) / 2 if best else float(candidates[0])
    return RoutingCalibration(
        product_query_score=round(threshold, 3),
        product_requests=len(requests),
        other_messages=len(others),
        product_recall=round(float((requests >= threshold).mean()), 3),
        other_specificity=round(float((others < threshold).mean()), 3),
    )
