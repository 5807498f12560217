"""Order questions in the chat, answered from the order system.

A message naming one of the shop's order numbers (`shop.order_id_pattern`) is answered from that
order's row: its status, dates, carrier and items, or, for a return or refund question (one of
the shop's `return_words`), the return policy applied to its delivery date (within the window or
not, and why). The reply is filled from `templates/orders.yaml`, not generated: a small model
asked to restate a tracking number or count days from a date gets them wrong, and a wrong order
status is worse than none. The order must be the signed-in customer's; anyone else's is answered
exactly as a number that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shoptune.config.schema import LANGUAGES
from shoptune.shop.catalogue import CatalogueSource
from shoptune.shop.orders import Order, OrderBook
from shoptune.shop.resources import Product, Shop

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


class OrderDesk:
    """Finds an order number in a message and answers it from `book` for the signed-in customer.
    `order_id_pattern`: the config's (`shop.order_id_pattern`), else the shop's `templates/orders.yaml`'s."""

    def __init__(
        self,
        book: OrderBook,
        shop: Shop,
        order_id_pattern: str | None,
        catalogue: CatalogueSource,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.book, self.catalogue, self.now = book, catalogue, now
        self.phrasing: dict[str, Any] = shop.templates("orders")
        pattern = order_id_pattern or self.phrasing["order_id_pattern"]
        self.pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", re.IGNORECASE)
        facts = {topic.id: topic.facts for topic in shop.policy}
        self.window = _fact(facts, self.phrasing["return_window"])
        self.quality_window = _fact(facts, self.phrasing["quality_window"])

    def order_id(self, message: str) -> str | None:
        """The first order number in `message`, as written."""
        match = self.pattern.search(message)
        return match.group(0) if match else None

    @property
    def return_topic(self) -> str:
        """The policy topic a return answer applies."""
        return self.phrasing["return_window"]["topic"]

    def asks_about_return(self, message: str, lang: str) -> bool:
        """Whether `message` asks to return or refund (one of the shop's `return_words`)."""
        text = message.casefold()
        words = self.phrasing["return_words"]
        return any(word.casefold() in text for word in words.get(lang) or [w for ws in words.values() for w in ws])

    def answer(self, message: str, order_id: str, customer_id: str | None, lang: str) -> tuple[str, list[Product]]:
        """The reply to `message`, a question about `order_id` from `customer_id`, in `lang`, and the
        order's products as the catalogue has them now (none when the order is not the customer's)."""
        phrasing = self._replies(lang)
        order = self.book.lookup(order_id, customer_id)
        if order is None:
            return phrasing["not_found"].format(order_id=order_id), []
        products = self.catalogue.current([item.sku for item in order.items])
        values = self._values(order, products, lang)
        case = self._return_case(order) if self.asks_about_return(message, lang) else None
        reply = phrasing["returns"][case] if case else phrasing["status"][order.status]
        return reply.format(**values), [products[i.sku] for i in order.items if i.sku in products]

    def _return_case(self, order: Order) -> str:
        if order.status in {"cancelled", "refunded"}:
            return order.status
        if order.delivered_at is None:
            return "not_delivered"
        days = self._days_since(order.delivered_at)
        if days <= self.window:
            return "open"
        return "quality_only" if days <= self.quality_window else "closed"

    def _days_since(self, moment: datetime) -> int:
        return (self.now().date() - moment.date()).days

    def _replies(self, lang: str) -> dict[str, Any]:
        """The replies in `lang`, or in the shop's first language if it does not write `lang`."""
        return self.phrasing.get(lang) or next(v for k, v in self.phrasing.items() if k in LANGUAGES)

    def _values(self, order: Order, products: dict[str, Product], lang: str) -> dict[str, Any]:
        phrasing = self._replies(lang)
        names = [products[i.sku].name(lang) if i.sku in products else i.sku for i in order.items]
        items = phrasing["item_separator"].join(
            phrasing["item"].format(name=name, quantity=item.quantity)
            for name, item in zip(names, order.items, strict=True)
        )
        dates = {
            key: _date(getattr(order, f"{key}_at"), phrasing["date"]) for key in ("placed", "shipped", "delivered")
        }
        days = self._days_since(order.delivered_at) if order.delivered_at else None
        return {
            **order.model_dump(include={"order_id", "carrier", "tracking_no"}),
            **dates,
            "items": items,
            "days": days,
            "window": self.window,
            "quality_window": self.quality_window,
        }


def _fact(facts: dict[str, dict[str, int]], where: dict[str, str]) -> int:
    return facts[where["topic"]][where["fact"]]


def _date(moment: datetime | None, form: str) -> str | None:
    if moment is None:
        return None
    return form.format(month=moment.month, month_name=_MONTHS[moment.month - 1], day=moment.day, year=moment.year)
