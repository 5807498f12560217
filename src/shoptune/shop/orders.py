"""The shop's order system, as the storefront may see it: read-only lookups of one customer's order.

    shop.orders_url: sqlite:///orders.db    `orders` + `order_items` tables in any SQLAlchemy database
    (unset)                                the folder's sample `orders/orders.jsonl`, loaded into
                                           an SQLite database in memory

An order belongs to a customer. `OrderBook.lookup(order_id, customer_id)` returns it only to that
customer: another customer's order and an order that does not exist are the same `None`, so a
shopper cannot learn that someone else's order number is real. Nothing here writes to the order
system except `write_orders`, which builds a database for the example shop and for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from shoptune.core.errors import BadInputError
from shoptune.shop.catalogue import connect
from shoptune.shop.check import field_path

ORDERS_FILE = Path("orders") / "orders.jsonl"
OrderStatus = Literal["paid", "shipped", "delivered", "cancelled", "refunded"]

METADATA = MetaData()
ORDERS = Table(
    "orders",
    METADATA,
    Column("order_id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("placed_at", DateTime(), nullable=False),
    Column("shipped_at", DateTime()),
    Column("delivered_at", DateTime()),
    Column("carrier", String(64)),
    Column("tracking_no", String(64)),
)
ORDER_ITEMS = Table(
    "order_items",
    METADATA,
    Column("order_id", String(64), ForeignKey("orders.order_id"), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Float, nullable=False),
)


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        raise ValueError("a time in the shop's local time, without a UTC offset (2026-11-25T10:02:00)")
    return moment


LocalTime = Annotated[datetime, AfterValidator(_local)]
"""Order times are the shop's local time, as its order system shows them to shoppers."""


class OrderItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_price: float = Field(ge=0)


class Order(BaseModel):
    """One order as the order system holds it (and one line of `orders/orders.jsonl`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    status: OrderStatus
    placed_at: LocalTime
    shipped_at: LocalTime | None = None
    delivered_at: LocalTime | None = None
    carrier: str | None = None
    tracking_no: str | None = None
    items: tuple[OrderItem, ...] = Field(min_length=1)


def _order_lines(text: str) -> Iterator[tuple[int, Order | list[str]]]:
    """(line, the order or its "field: problem"s) for each order of an orders file's text."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, Order.model_validate_json(line)
        except ValidationError as invalid:
            yield number, [f"{field_path(error['loc'])}: {error['msg']}" for error in invalid.errors()]


def read_orders(path: Path) -> list[Order]:
    """`orders/orders.jsonl`, or `BadInputError` naming the file, line and field of the first problem."""
    orders = []
    for number, order in _order_lines(path.read_text(encoding="utf-8")):
        if isinstance(order, list):
            raise BadInputError(f"{path}:{number}: {order[0]}")
        orders.append(order)
    return orders


def order_problems(path: Path) -> Iterator[tuple[int, str]]:
    """(line, "field: problem") for every problem of an orders file, for `shop check`."""
    seen: dict[str, int] = {}
    for number, order in _order_lines(path.read_text(encoding="utf-8", errors="replace")):
        if isinstance(order, list):
            yield from ((number, problem) for problem in order)
            continue
        if order.order_id in seen:
            yield number, f"order_id: {order.order_id} is also on line {seen[order.order_id]}"
        seen.setdefault(order.order_id, number)


def write_orders(engine: Engine, orders: Iterable[Order]) -> int:
    """Create the order tables in `engine`'s database (if missing) and insert `orders`, replacing
    any with the same number; how many."""
    orders = list(orders)
    ids = [order.order_id for order in orders]
    items = [
        {"order_id": order.order_id, "line": line, **item.model_dump()}
        for order in orders
        for line, item in enumerate(order.items, start=1)
    ]
    try:
        METADATA.create_all(engine)
        if not orders:
            return 0
        with engine.begin() as connection:
            connection.execute(ORDER_ITEMS.delete().where(ORDER_ITEMS.c.order_id.in_(ids)))
            connection.execute(ORDERS.delete().where(ORDERS.c.order_id.in_(ids)))
            connection.execute(ORDERS.insert(), [order.model_dump(exclude={"items"}) for order in orders])
            connection.execute(ORDER_ITEMS.insert(), items)
    except SQLAlchemyError as exc:
        raise BadInputError(f"{engine.url!r}: cannot write orders: {exc}") from exc
    return len(orders)


class OrderBook:
    """Read-only lookups in the order system's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | None, shop_root: Path) -> OrderBook:
        """The database at `url`, or (no url) the shop's sample orders in an in-memory SQLite database."""
        if url:
            return cls(connect(url))
        # one in-memory database, shared by every connection and thread of the storefront
        engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        path = shop_root / ORDERS_FILE
        write_orders(engine, read_orders(path) if path.is_file() else [])
        return cls(engine)

    def lookup(self, order_id: str, customer_id: str | None) -> Order | None:
        """The order `order_id` if it is `customer_id`'s; None if it is not, or does not exist, or no
        customer is signed in (the same answer for all three)."""
        if not customer_id:
            return None
        try:
            with self.engine.connect() as connection:
                row = (
                    connection.execute(
                        select(ORDERS).where(
                            func.upper(ORDERS.c.order_id) == order_id.upper(), ORDERS.c.customer_id == customer_id
                        )
                    )
                    .mappings()
                    .first()
                )
                if row is None:
                    return None
                items = (
                    connection.execute(
                        select(ORDER_ITEMS.c.sku, ORDER_ITEMS.c.quantity, ORDER_ITEMS.c.unit_price)
                        .where(ORDER_ITEMS.c.order_id == row["order_id"])
                        .order_by(ORDER_ITEMS.c.line)
                    )
                    .mappings()
                    .all()
                )
        except SQLAlchemyError as exc:
            raise BadInputError(f"shop.orders_url: {self.engine.url!r}: cannot read orders: {exc}") from exc
        return Order(**row, items=tuple(OrderItem(**item) for item in items))
