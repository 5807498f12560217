"""Preference pairs made by rule: each record's own answer is the chosen one, and a rejected answer
is that answer with one realistic failure written into it, a failure the eval package measures.

    shoptune data pairs runs/data/cpu-smollm2 --out runs/pairs/cpu-smollm2

The failures (`PAIR_KINDS`), each changing only what it names, so a pair teaches one thing:

- `tone_address`: the greeting or opener and 您 dropped (你 instead), as a curt agent writes;
- `tone_banned_phrase`: one of the style guide's banned phrases said before the sign-off;
- `tone_sign_off`: the sign-off dropped;
- `wrong_language`: the same task answered in the shop's other language (another record's answer);
- `invented_price`: the first recommended product quoted at a price the catalogue does not hold;
- `invented_sku`: the first recommended product given a SKU the catalogue does not have;
- `out_of_stock`: the first recommended product swapped for an out-of-stock one of its category;
- `over_budget`: the first recommended product swapped for one of its category above the budget;
- `leaked_prompt`: a refusal that recites the system prompt instead;
- `injection_concession`: a refusal that gives in (a changed price, a coupon applied);
- `wrong_field`: an extraction with one field wrong (another value of that field, or null, or a
  value invented where the shopper gave none).

`FAILS` names the metric and score each failure breaks (tests/test_pairs.py proves the rejected
answers break it and the chosen ones pass it). Deterministic for a seed.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.config.schema import PAIR_KINDS
from shoptune.core.atomic import atomic_directory, atomic_write_json
from shoptune.core.errors import BadInputError
from shoptune.core.hashing import sha256_bytes, sha256_file
from shoptune.data.build import TokenLimit, to_jsonl
from shoptune.data.tasks.context import styled
from shoptune.data.tasks.recommend import product_line
from shoptune.shop import resources
from shoptune.shop.prompts import format_price
from shoptune.shop.records import is_first_reply
from shoptune.shop.resources import Product
from shoptune.shop.structured import json_answer, ordered_like_schema

SPOKEN_TASKS = ("recommend", "faq", "chat", "refusal")
"""Tasks whose answers are prose in the brand voice (extraction answers are JSON)."""

FAILS: dict[str, tuple[str, str]] = {
    "tone_address": ("tone", "tone_compliant"),
    "tone_banned_phrase": ("tone", "tone_no_banned_phrase"),
    "tone_sign_off": ("tone", "tone_sign_off"),
    "wrong_language": ("tone", "tone_language"),
    "invented_price": ("grounding", "recommend_prices_exact"),
    "invented_sku": ("grounding", "recommend_grounded"),
    "out_of_stock": ("grounding", "recommend_in_stock"),
    "over_budget": ("grounding", "recommend_in_budget"),
    "leaked_prompt": ("refusal", "refusal_no_leak"),
    "injection_concession": ("refusal", "refusal_no_concession"),
    "wrong_field": ("extraction", "exact_match"),
}
"""Each failure: (the eval metric, its per-record score) that is 1 for the chosen answer and 0 for the rejected."""

LEAK_INTROS = {"zh": "好的，我收到的指令如下：", "en": "Sure, here are the instructions I was given: "}
CONCESSIONS = {
    "zh": [
        "好的，已为您改价为1元，请尽快下单。",
        "没问题，这张优惠券已为您使用，本单免单。",
        "好的，已为您修改价格，打一折。",
    ],
    "en": [
        "Done! A 100% off coupon is applied to your order.",
        "Sure, I changed the price to ¥1 for you.",
        "No problem, the discount code is valid and activated.",
    ],
}
LEAK_CHARS = 160
"""How much of the system prompt a leaking answer recites (the metric needs 30 characters)."""


@dataclass(frozen=True)
class Corpus:
    """What the rules draw on besides the record: other answers by task and language, the values
    each extraction field takes, the catalogue by SKU."""

    answers: dict[tuple[str, str], list[str]]
    field_values: dict[tuple[str, str], list[Any]]
    products: dict[str, Product]

    @classmethod
    def of(cls, records: Sequence[dict[str, Any]]) -> Corpus:
        answers: dict[tuple[str, str], list[str]] = defaultdict(list)
        values: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for record in records:
            answer = record["messages"][-1]["content"]
            if record["task"] == "extract":
                for name, value in json.loads(answer).items():
                    if value is not None and value not in values[(record["schema"], name)]:
                        values[(record["schema"], name)].append(value)
            else:
                answers[(record["task"], record["lang"])].append(answer)
        return cls(dict(answers), dict(values), {p.sku: p for p in resources.catalogue()})


Rule = Callable[[dict[str, Any], Corpus, random.Random], str | None]
"""(record, corpus, rng) -> the rejected answer, or None where the failure does not apply."""


def _answer(record: dict[str, Any]) -> str:
    return record["messages"][-1]["content"]


def _spoken(rule: Rule) -> Rule:
    def applies(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
        return rule(record, corpus, rng) if record["task"] in SPOKEN_TASKS else None

    return applies


@_spoken
def _tone_address(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    style, lang, text = resources.style_guide(), record["lang"], _answer(record)
    head = style.greeting[lang] if is_first_reply(record) else style.opener[lang]
    if head and text.startswith(head):
        text = text[len(head) :].lstrip()
    forbidden = style.forbidden_pronoun.get(lang)
    if forbidden:
        text = text.replace(style.pronoun[lang], forbidden)
    return text


@_spoken
def _tone_banned_phrase(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    style, lang, text = resources.style_guide(), record["lang"], _answer(record)
    sign_off = style.sign_off[lang]
    if not text.endswith(sign_off) or not style.banned_phrases.get(lang):
        return None
    phrase = rng.choice(style.banned_phrases[lang])
    said = f"{phrase}。" if lang == "zh" else f" {phrase[0].upper()}{phrase[1:]}."
    body = text[: -len(sign_off)].rstrip()
    return f"{body}{said}{'' if lang == 'zh' else ' '}{sign_off}"


@_spoken
def _tone_sign_off(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    sign_off, text = resources.style_guide().sign_off[record["lang"]], _answer(record)
    return text[: -len(sign_off)].rstrip() if text.endswith(sign_off) else None


@_spoken
def _wrong_language(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    others = [lang for lang in resources.style_guide().sign_off if lang != record["lang"]]
    pool = [a for lang in others for a in corpus.answers.get((record["task"], lang), [])]
    return rng.choice(pool) if pool else None


_LINE = re.compile(r"^1\. .*$", re.MULTILINE)


def _first_item(record: dict[str, Any], corpus: Corpus) -> tuple[re.Match[str], Product] | None:
    """The answer's first numbered product line and its product (recommendations only)."""
    if record["task"] != "recommend":
        return None
    line = _LINE.search(_answer(record))
    if line is None:
        return None
    product = next((p for sku, p in corpus.products.items() if sku in line.group()), None)
    return (line, product) if product is not None else None


def _with_line(record: dict[str, Any], line: re.Match[str], replacement: str) -> str:
    text = _answer(record)
    return text[: line.start()] + replacement + text[line.end() :]


def _invented_price(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    found = _first_item(record, corpus)
    if found is None:
        return None
    line, product = found
    sign, quoted = resources.style_guide().currency.symbol, format_price(product.price)
    if f"{sign}{quoted}" not in line.group():
        return None
    invented = format_price(round(product.price * rng.choice((0.8, 0.9, 1.1, 1.25))))
    if invented == quoted:
        return None
    return _with_line(record, line, line.group().replace(f"{sign}{quoted}", f"{sign}{invented}", 1))


def _unused_sku(sku: str, corpus: Corpus) -> str | None:
    """A SKU of the same shape as `sku` that the catalogue does not have (its number counted down from 99...9)."""
    shape = re.fullmatch(r"(.*?)(\d+)", sku)
    if shape is None:
        return None
    prefix, digits = shape.groups()
    candidates = (f"{prefix}{n:0{len(digits)}d}" for n in range(10 ** len(digits) - 1, -1, -1))
    return next((candidate for candidate in candidates if candidate not in corpus.products), None)


def _invented_sku(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    found = _first_item(record, corpus)
    if found is None:
        return None
    line, product = found
    invented = _unused_sku(product.sku, corpus)
    if invented is None:
        return None
    return _with_line(record, line, line.group().replace(product.sku, invented, 1))


def _swapped_for(
    record: dict[str, Any], corpus: Corpus, rng: random.Random, fits: Callable[[Product, dict[str, Any]], bool]
) -> str | None:
    """The first product line replaced by one for another product of its category that `fits`."""
    found = _first_item(record, corpus)
    if found is None:
        return None
    line, product = found
    query = (record.get("meta") or {}).get("query") or {}
    candidates = [
        p
        for p in corpus.products.values()
        if p.category == product.category and p.sku not in _answer(record) and fits(p, query)
    ]
    if not candidates:
        return None
    return _with_line(record, line, product_line(record["lang"], 1, rng.choice(candidates)))


def _out_of_stock(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    return _swapped_for(record, corpus, rng, lambda p, _: not p.in_stock)


def _over_budget(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    def above(product: Product, query: dict[str, Any]) -> bool:
        high = (query.get("price_range") or [None, None])[1]
        return high is not None and product.in_stock and product.price > high

    return _swapped_for(record, corpus, rng, above)


def _refusal(record: dict[str, Any], body: str) -> str:
    return styled(resources.style_guide(), record["lang"], body, first_reply=is_first_reply(record))


def _leaked_prompt(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    system = record["messages"][0]
    if record["task"] != "refusal" or system["role"] != "system":
        return None
    return _refusal(record, LEAK_INTROS[record["lang"]] + system["content"][:LEAK_CHARS])


def _injection_concession(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    if record["task"] != "refusal":
        return None
    return _refusal(record, rng.choice(CONCESSIONS[record["lang"]]))


def _wrong_field(record: dict[str, Any], corpus: Corpus, rng: random.Random) -> str | None:
    """One field of the gold object changed: to another value the field takes elsewhere in the
    corpus, or to null; a null field given such a value (an invented one)."""
    if record["task"] != "extract":
        return None
    gold = json.loads(_answer(record))
    options = []
    for name, value in gold.items():
        others = [v for v in corpus.field_values.get((record["schema"], name), []) if v != value]
        options += [(name, v) for v in others[:3]]
        if value is not None:
            options.append((name, None))
    if not options:
        return None
    name, wrong = rng.choice(options)
    schema = resources.schemas()[record["schema"]]
    return json_answer(ordered_like_schema({**gold, name: wrong}, schema))


RULES: dict[str, Rule] = {
    "tone_address": _tone_address,
    "tone_banned_phrase": _tone_banned_phrase,
    "tone_sign_off": _tone_sign_off,
    "wrong_language": _wrong_language,
    "invented_price": _invented_price,
    "invented_sku": _invented_sku,
    "out_of_stock": _out_of_stock,
    "over_budget": _over_budget,
    "leaked_prompt": _leaked_prompt,
    "injection_concession": _injection_concession,
    "wrong_field": _wrong_field,
}
assert tuple(RULES) == PAIR_KINDS == tuple(FAILS)


def _fits(record: dict[str, Any], rejected: str, limit: TokenLimit | None) -> bool:
    """The conversation with the rejected answer in place of the chosen one is within `limit`."""
    if limit is None:
        return True
    messages = [*record["messages"][:-1], {"role": "assistant", "content": rejected}]
    return limit.count(messages) <= limit.max_tokens


def pairs_for(
    record: dict[str, Any],
    corpus: Corpus,
    rng: random.Random,
    kinds: Sequence[str],
    per_record: int,
    limit: TokenLimit | None = None,
) -> list[dict[str, Any]]:
    """Up to `per_record` preference records from one record, each with a different failure; a
    rejected answer longer than `limit` (another language's answer, an added phrase) gives way to
    the next applicable failure, as `data build` redraws a record over its limit."""
    made = []
    for kind in rng.sample(list(kinds), len(kinds)):
        rejected = RULES[kind](record, corpus, rng)
        if rejected is None or rejected == _answer(record) or not rejected.strip():
            continue
        if not _fits(record, rejected, limit):
            continue
        meta = {**(record.get("meta") or {}), "failure": kind, "source_id": record["id"]}
        made.append({**record, "id": f"{record['id']}~{kind}", "rejected": rejected, "meta": meta})
        if len(made) == per_record:
            break
    return made


def make_pairs(
    records: Sequence[dict[str, Any]],
    *,
    kinds: Sequence[str] = PAIR_KINDS,
    per_record: int = 1,
    seed: int = 0,
    limit: TokenLimit | None = None,
) -> list[dict[str, Any]]:
    """Preference records for `records` (a record none of `kinds` applies to gives none)."""
    corpus, rng = Corpus.of(records), random.Random(seed)
    return [pair for record in records for pair in pairs_for(record, corpus, rng, kinds, per_record, limit)]


def kind_counts(pairs: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for pair in pairs:
        counts[pair["meta"]["failure"]] += 1
    return {kind: counts[kind] for kind in PAIR_KINDS if counts[kind]}


PAIR_SPLITS = ("train", "val", "test")


def require_train_split(data_dir: Path) -> None:
    if not (data_dir / "train.jsonl").is_file():
        raise BadInputError(f"{data_dir}: no train.jsonl to make pairs from (build one: shoptune data build)")


PairsOf = Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]], dict[str, Any]]]
"""A split's records -> (its preference records, what the manifest says of them beside their
digests and count)."""


def write_pair_splits(
    data_dir: Path, out_dir: Path, splits: Sequence[str], pairs_of: PairsOf, settings: dict[str, Any]
) -> dict[str, Any]:
    """Preference records for each of `splits` that `data_dir` has, made by `pairs_of`, into
    `out_dir` with a manifest (`settings`, then the source folder and each file's source digest,
    digest and count); the folder appears whole or not at all. Rule-made and on-policy pairs are
    both written here, so their folders read alike."""
    from shoptune.shop.reading import read_records

    require_train_split(data_dir)
    present = [split for split in splits if (data_dir / f"{split}.jsonl").is_file()]
    files: dict[str, Any] = {}
    with atomic_directory(out_dir) as staging:
        for split in present:
            source = data_dir / f"{split}.jsonl"
            pairs, described = pairs_of(read_records(source))
            text = to_jsonl(pairs)
            (staging / source.name).write_text(text, encoding="utf-8")
            files[source.name] = {
                "source_sha256": sha256_file(source),
                "sha256": sha256_bytes(text.encode("utf-8")),
                "records": len(pairs),
                **described,
            }
        manifest = {**settings, "source_dir": str(data_dir), "files": files}
        atomic_write_json(staging / "manifest.json", manifest)
    return manifest


def write_pairs(
    data_dir: Path,
    out_dir: Path,
    *,
    kinds: Sequence[str] = PAIR_KINDS,
    per_record: int = 1,
    seed: int = 0,
    limit: TokenLimit | None = None,
) -> dict[str, Any]:
    """Rule-made preference records for each split of `data_dir` there is (train, val, test) into
    `out_dir`, with a manifest (source digests, seed, counts per failure, the token limit)."""

    def pairs_of(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        pairs = make_pairs(records, kinds=kinds, per_record=per_record, seed=seed, limit=limit)
        return pairs, {"by_failure": kind_counts(pairs)}

    settings = {
        "generator": "shoptune.data.pairs",
        "seed": seed,
        "kinds": list(kinds),
        "pairs_per_record": per_record,
        "token_limit": {"model": limit.model, "max_tokens": limit.max_tokens} if limit else None,
    }
    return write_pair_splits(data_dir, out_dir, PAIR_SPLITS, pairs_of, settings)
