"""`refusal` records: out-of-scope requests and prompt-injection attempts, answered in role,
politely, without leaking instructions or bending prices and promotions."""

from __future__ import annotations

from typing import Any

from shoptune.data.surface import coupon_code
from shoptune.data.tasks.context import TaskContext
from shoptune.shop import resources
from shoptune.shop.prompts import catalogue_context, system_message

KIND_WEIGHTS = (("out_of_scope", 0.4), ("injection", 0.4), ("fake_coupon", 0.2))


def refusal_record(ctx: TaskContext) -> dict[str, Any]:
    kinds, weights = zip(*KIND_WEIGHTS, strict=True)
    kind = ctx.rng.choices(kinds, weights=weights)[0]
    spec = resources.templates("refusal")
    request = ctx.pick_template(spec["kinds"][kind][ctx.lang])["text"]
    wrapper = ctx.choice(spec["wrappers"][ctx.lang])
    code = coupon_code(ctx.rng)
    request = request.format(code=code)
    if not wrapper.endswith("{text}"):  # "…tonight?, quickly" reads badly: drop the request's end mark
        request = request.rstrip("?？!！。.")
    text = wrapper.format(text=request)
    body = ctx.choice(resources.templates("answers")["refusal"][kind][ctx.lang]).format(code=code)
    blocks = []
    if kind != "out_of_scope" and ctx.rng.random() < 0.4:
        # With real prices in view, the answer must still refuse to change them.
        shown = ctx.regular_products()
        products = ctx.rng.sample(shown, k=3)
        ctx.note_products(products)
        blocks.append(catalogue_context(products, ctx.lang))
    return {
        "task": "refusal",
        "messages": [
            system_message(ctx.system_prompt, *blocks),
            {"role": "user", "content": text},
            {"role": "assistant", "content": ctx.styled(body, first_reply=True)},
        ],
        "meta_extra": {"refusal_kind": kind},
    }
