"""`faq` records: a policy question, the relevant policy text in the system message, and the
answer the policy document gives, in the brand voice."""

from __future__ import annotations

from typing import Any

from shoptune.data.surface import add_typos, casing_noise, order_id
from shoptune.data.tasks.context import TaskContext
from shoptune.shop import resources
from shoptune.shop.prompts import policy_context, system_message
from shoptune.shop.resources import PolicyTopic


def question_pool(topic: PolicyTopic, lang: str) -> list[dict[str, str]]:
    """A topic's questions as template-like entries, so they can be held out like templates."""
    return [{"id": f"q-{topic.id}-{lang}-{i:02d}", "text": q} for i, q in enumerate(topic.questions[lang], start=1)]


def policy_excerpt(ctx: TaskContext, topics: list[PolicyTopic]) -> str:
    """The topics asked about plus one unrelated topic, shuffled: retrieval is never perfect."""
    others = [t for t in resources.policy() if t not in topics]
    shown = [*topics, ctx.choice(others)]
    ctx.rng.shuffle(shown)
    return policy_context(shown, ctx.lang)


def ask(ctx: TaskContext, topic: PolicyTopic) -> str:
    """A policy question in a wrapper; an `{order_id}` in it is filled with an order number."""
    question = ctx.pick_template(question_pool(topic, ctx.lang))["text"].replace("{order_id}", order_id(ctx.rng))
    wrapper = ctx.pick_template(resources.templates("faq")[ctx.lang])["text"]
    return casing_noise(ctx.rng, add_typos(ctx.rng, wrapper, ctx.lang).format(question=question))


def faq_record(ctx: TaskContext) -> dict[str, Any]:
    topic = ctx.choice(resources.policy())
    question = ask(ctx, topic)
    return {
        "task": "faq",
        "messages": [
            system_message(ctx.system_prompt, policy_excerpt(ctx, [topic])),
            {"role": "user", "content": question},
            {"role": "assistant", "content": ctx.styled(topic.answer[ctx.lang], first_reply=True)},
        ],
        "meta_extra": {"policy_topics": [topic.id]},
    }
