"""`chat` records: 2-4 exchanges whose follow-ups only make sense with the history
("那黑色的呢？", "the cheaper one", "第二款有哪些规格？", "那退货呢？")."""

from __future__ import annotations

from typing import Any

from shoptune.data.tasks.context import Redraw, TaskContext, owning_split
from shoptune.data.tasks.faq import ask
from shoptune.data.tasks.queries import ProductQuery, sample_product_query
from shoptune.data.tasks.recommend import product_detail, recommendation_body, recommended, retrieve_candidates
from shoptune.shop import resources
from shoptune.shop.prompts import catalogue_context, policy_context, system_message
from shoptune.shop.resources import PolicyTopic, Product

CHAT_CONTEXT_SIZE = 4
"""Fewer products than a single recommendation shows: the turns need the room."""


class NoConversation(Redraw):
    """This draw cannot make a conversation of at least two exchanges; draw again."""


def follow_up(ctx: TaskContext, kind: str, **values: str) -> str | None:
    """A follow-up phrasing owned by this split (see `owning_split`), or None if there is none."""
    pool = resources.templates("chat")["follow_ups"][kind][ctx.lang]
    owned = [text for text in (t["text"].format(**values) for t in pool) if owning_split(text) == ctx.split]
    return ctx.choice(owned) if owned else None


def _topic(topic_id: str) -> PolicyTopic:
    return next(t for t in resources.policy() if t.id == topic_id)


def _colour_follow_up(ctx: TaskContext, query: ProductQuery, candidates: list[Product]):
    colours = sorted({c.zh for p in candidates if query.matches(p) or p.noun_zh == query.noun_zh for c in p.colors})
    ctx.rng.shuffle(colours)
    for colour in colours:
        surface = ctx.choice(resources.templates("lexicon")["colours"][colour][ctx.lang])
        text = follow_up(ctx, "colour", color=surface)
        if text:
            return text, query.with_colour(colour)
    return None


def shopping_conversation(ctx: TaskContext) -> dict[str, Any]:
    query = sample_product_query(ctx, forbid=frozenset({"color"}))
    candidates = retrieve_candidates(ctx, query, size=CHAT_CONTEXT_SIZE)
    picks = recommended(query, candidates)
    turns = [(query.text, ctx.styled(recommendation_body(ctx, query, picks), first_reply=True))]
    last_list = picks
    topics: list[PolicyTopic] = []
    wanted = ctx.rng.randint(2, 4)
    kinds = ["colour", "cheaper", "second", "policy"]
    attempts = 0
    while len(turns) < wanted and attempts < 12:
        attempts += 1
        kind = ctx.choice(kinds)
        if kind == "colour":
            found = _colour_follow_up(ctx, query, candidates)
            if not found:
                continue
            text, query = found
            picks = recommended(query, candidates)
            turns.append((text, ctx.styled(recommendation_body(ctx, query, picks), first_reply=False)))
            if picks:
                last_list = picks
        elif kind in ("cheaper", "second"):
            if len(last_list) < 2:
                continue
            text = follow_up(ctx, kind)
            if not text:
                continue
            product = min(last_list, key=lambda p: (p.price, p.sku)) if kind == "cheaper" else last_list[1]
            turns.append((text, ctx.styled(product_detail(ctx, product), first_reply=False)))
        else:
            topic_id = ctx.choice(sorted(resources.templates("chat")["topic_names"]))
            if any(t.id == topic_id for t in topics):
                continue
            text = follow_up(ctx, "policy", topic=resources.templates("chat")["topic_names"][topic_id][ctx.lang])
            if not text:
                continue
            topic = _topic(topic_id)
            topics.append(topic)
            turns.append((text, ctx.styled(topic.answer[ctx.lang], first_reply=False)))
    if len(turns) < 2:
        raise NoConversation
    blocks = [catalogue_context(candidates, ctx.lang)]
    if topics:
        blocks.append(policy_context(topics, ctx.lang))
    return _record(ctx, blocks, turns, scenario="shopping", topics=topics)


def policy_conversation(ctx: TaskContext) -> dict[str, Any]:
    topic_names = resources.templates("chat")["topic_names"]
    first = _topic(ctx.choice(sorted(topic_names)))
    turns = [(ask(ctx, first), ctx.styled(first.answer[ctx.lang], first_reply=True))]
    topics = [first]
    for _ in range(ctx.rng.randint(1, 2)):
        remaining = sorted(set(topic_names) - {t.id for t in topics})
        topic = _topic(ctx.choice(remaining))
        text = follow_up(ctx, "policy", topic=topic_names[topic.id][ctx.lang])
        if not text:
            continue
        topics.append(topic)
        turns.append((text, ctx.styled(topic.answer[ctx.lang], first_reply=False)))
    if len(turns) < 2:
        raise NoConversation
    return _record(ctx, [policy_context(topics, ctx.lang)], turns, scenario="policy", topics=topics)


def _record(
    ctx: TaskContext, blocks: list[str], turns: list[tuple[str, str]], *, scenario: str, topics: list[PolicyTopic]
) -> dict[str, Any]:
    messages = [system_message(ctx.system_prompt, *blocks)]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return {
        "task": "chat",
        "messages": messages,
        "meta_extra": {"scenario": scenario, "turns": len(turns), "policy_topics": [t.id for t in topics]},
    }


def chat_record(ctx: TaskContext) -> dict[str, Any]:
    return shopping_conversation(ctx) if ctx.rng.random() < 0.7 else policy_conversation(ctx)
