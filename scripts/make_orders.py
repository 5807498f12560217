"""Regenerate datasets/orders/orders.jsonl, the example shop's sample orders (data, committed).

    .venv/bin/python scripts/make_orders.py

Orders of 20 customers for the example catalogue's SKUs, in every status, placed in November 2026
(the shop's local time). Run once; the committed file is the source of truth afterwards. Two
orders are fixed because the demo conversation and the tests ask about them: YX202611250001
(customer C1001, shoes, shipped) and YX202611180002 (customer C1001, a phone, delivered).
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "datasets" / "catalogue" / "products.jsonl"
OUT = ROOT / "datasets" / "orders" / "orders.jsonl"
SEED = 20261207
CARRIERS = {"顺丰速运 SF Express": "SF", "京东物流 JD Logistics": "JDX", "中通快递 ZTO Express": "ZTO"}
"""Carrier: tracking-number prefix."""
STATUSES = ("paid", "shipped", "shipped", "delivered", "delivered", "delivered", "cancelled", "refunded")


def _order(
    order_id: str, customer: str, status: str, placed: datetime, products: list[dict], rng: random.Random
) -> dict:
    shipped = placed + timedelta(hours=rng.randint(4, 40)) if status in {"shipped", "delivered", "refunded"} else None
    delivered = (
        shipped + timedelta(days=rng.randint(1, 3), hours=rng.randint(0, 8))
        if shipped and status != "shipped"
        else None
    )
    carrier = rng.choice(sorted(CARRIERS)) if shipped else None
    return {
        "order_id": order_id,
        "customer_id": customer,
        "status": status,
        "placed_at": placed.isoformat(),
        "shipped_at": shipped.isoformat() if shipped else None,
        "delivered_at": delivered.isoformat() if delivered else None,
        "carrier": carrier,
        "tracking_no": f"{CARRIERS[carrier]}{rng.randint(10**11, 10**12 - 1)}" if carrier else None,
        "items": [{"sku": p["sku"], "quantity": rng.choice([1, 1, 1, 2]), "unit_price": p["price"]} for p in products],
    }


def main() -> None:
    rng = random.Random(SEED)
    catalogue = [json.loads(line) for line in CATALOGUE.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_category: dict[str, list[dict]] = {}
    for product in catalogue:
        by_category.setdefault(product["category"], []).append(product)
    shoes = next(p for p in catalogue if p["noun_en"] in {"sneakers", "running shoes", "shoes"})
    phone = next(p for p in catalogue if p["category"] == "phone" and p["stock"] > 0)
    orders = [
        _order("YX202611250001", "C1001", "shipped", datetime(2026, 11, 25, 10, 2), [shoes], rng),
        _order("YX202611180002", "C1001", "delivered", datetime(2026, 11, 18, 20, 41), [phone], rng),
    ]
    for number in range(3, 81):
        day = rng.randint(1, 30)
        placed = datetime(2026, 11, day, rng.randint(8, 23), rng.randint(0, 59))
        products = rng.sample(catalogue, rng.choice([1, 1, 2, 3]))
        customer = f"C{1000 + rng.randint(1, 20)}"
        orders.append(_order(f"YX202611{day:02d}{number:04d}", customer, rng.choice(STATUSES), placed, products, rng))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in orders), encoding="utf-8")
    print(f"{len(orders)} orders -> {OUT}")


if __name__ == "__main__":
    main()
