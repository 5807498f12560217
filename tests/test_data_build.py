"""The corpus generator: determinism, task mix, split hygiene, grounding and schema validity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import invoke_shoptune
from jsonschema import Draft202012Validator

from shoptune.config import load_config
from shoptune.core.hashing import sha256_file
from shoptune.core.paths import CONFIGS_DIR
from shoptune.data.build import allocate, build_dataset, held_out
from shoptune.data.tasks.context import normalise_message
from shoptune.shop import resources
from shoptune.shop.prompts import format_price
from shoptune.shop.records import RecordValidator

DEFAULT = load_config(CONFIGS_DIR / "cpu-smollm2.yaml")


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The default config's corpus, built through the CLI as a user would (length limit included)."""
    out = tmp_path_factory.mktemp("corpus")
    done = invoke_shoptune("data", "build", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out, json.loads((out / "manifest.json").read_text())


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_default_build_sizes_tasks_and_languages(default_corpus: tuple[Path, dict]) -> None:
    out, manifest = default_corpus
    train, test = _records(out / "train.jsonl"), _records(out / "test.jsonl")
    assert len(train) >= 2000 and len(test) >= 300
    for records in (train, test):
        assert {(r["task"], r["lang"]) for r in records} == {
            (task, lang) for task in ("extract", "recommend", "faq", "chat", "refusal") for lang in ("zh", "en")
        }
        assert {r["schema"] for r in records if r["task"] == "extract"} == {"product_query", "order_request"}
    assert manifest["token_limit"] == {"model": "smollm2-135m-instruct", "max_tokens": DEFAULT.data.max_tokens}
    for name, entry in manifest["files"].items():
        assert sha256_file(out / name) == entry["sha256"]
    assert manifest["seed"] == DEFAULT.data.seed and manifest["generator_version"]
    assert (out / "config.yaml").is_file()


def test_build_is_byte_identical_for_a_seed_and_differs_for_another(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    build_dataset(DEFAULT.data, first)
    build_dataset(DEFAULT.data, second)
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "manifest.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    build_dataset(DEFAULT.data.replace(seed=DEFAULT.data.seed + 1), other)
    assert (first / "train.jsonl").read_bytes() != (other / "train.jsonl").read_bytes()


def test_task_mix_follows_the_config(tmp_path: Path) -> None:
    manifest = build_dataset(DEFAULT.data, tmp_path)
    for split in ("train", "val", "test"):
        expected = allocate(getattr(DEFAULT.data, f"{split}_records"), DEFAULT.data.split_task_mix(split))
        assert manifest["counts"][split]["by_task"] == dict(sorted(expected.items()))
        langs = manifest["counts"][split]["by_lang"]
        assert abs(langs["zh"] - langs["en"]) <= len(DEFAULT.data.task_mix)
    assert allocate(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}


def test_eval_task_mix_sets_the_validation_and_test_splits_only(tmp_path: Path) -> None:
    data = DEFAULT.data.replace(
        train_records=40,
        val_records=20,
        test_records=20,
        task_mix={"extract": 1.0},
        eval_task_mix={"extract": 0.5, "faq": 0.5},
    )
    counts = build_dataset(data, tmp_path)["counts"]
    assert counts["train"]["by_task"] == {"extract": 40}
    assert counts["val"]["by_task"] == counts["test"]["by_task"] == {"extract": 10, "faq": 10}


def test_split_hygiene(default_corpus: tuple[Path, dict]) -> None:
    out, manifest = default_corpus
    users = {
        split: {
            normalise_message(m["content"])
            for r in _records(out / f"{split}.jsonl")
            for m in r["messages"]
            if m["role"] == "user"
        }
        for split in ("train", "val", "test")
    }
    assert not users["train"] & users["val"] and not users["train"] & users["test"] and not users["val"] & users["test"]
    held = held_out(DEFAULT.data)
    assert held.templates and held.skus
    for split in ("train", "val"):
        for record in _records(out / f"{split}.jsonl"):
            assert not set(record["meta"]["templates"]) & held.templates, record["id"]
            assert not set(record["meta"]["skus"]) & held.skus, record["id"]
    test = _records(out / "test.jsonl")
    novel_templates = sum(bool(set(r["meta"]["templates"]) & held.templates) for r in test)
    novel_skus = sum(bool(set(r["meta"]["skus"]) & held.skus) for r in test)
    assert novel_templates >= 0.15 * len(test) and novel_skus >= 0.05 * len(test)
    hygiene = manifest["split_hygiene"]
    assert hygiene["test_records_with_heldout_templates"] == novel_templates
    assert hygiene["test_records_with_heldout_skus"] == novel_skus
    assert sum(hygiene["user_messages_shared_between_splits"].values()) == 0


def test_every_extraction_target_is_valid_against_its_schema(default_corpus: tuple[Path, dict]) -> None:
    out, _ = default_corpus
    validators = {name: Draft202012Validator(schema) for name, schema in resources.schemas().items()}
    checked = 0
    for split in ("train", "val", "test"):
        for record in _records(out / f"{split}.jsonl"):
            if record["task"] == "extract":
                target = json.loads(record["messages"][-1]["content"])
                assert list(validators[record["schema"]].iter_errors(target)) == [], record
                checked += 1
    assert checked > 900


def test_seed_example_shape_is_in_the_corpus(default_corpus: tuple[Path, dict]) -> None:
    """Chinese canonical values for English requests, open budget ends as null."""
    out, _ = default_corpus
    targets = [
        (r["lang"], json.loads(r["messages"][-1]["content"]))
        for r in _records(out / "train.jsonl")
        if r.get("schema") == "product_query"
    ]
    english_colours = [t["color"] for lang, t in targets if lang == "en" and t["color"]]
    assert english_colours and all(re.search(r"[\u4e00-\u9fff]", c) for c in english_colours)
    assert any(t["price_range"] and t["price_range"][0] is None for _, t in targets)
    assert any(t["price_range"] and None not in t["price_range"] for _, t in targets)


PRODUCT_LINE = re.compile(r"^\d+\. (?P<sku>[A-Z]{3}-\d{4}) (?P<name>.+?)[，,] ?¥(?P<price>[\d.]+)[，,]", re.MULTILINE)


def _satisfies(product: resources.Product, query: dict) -> bool:
    wanted = query["product"]
    if wanted not in (product.noun_zh, f"{product.brand_zh}{product.noun_zh}"):
        return False
    if query["price_range"]:
        low, high = query["price_range"]
        if (low is not None and product.price < low) or (high is not None and product.price > high):
            return False
    if query["color"] and query["color"] not in {c.zh for c in product.colors}:
        return False
    return not (query["size"] and query["size"] not in product.sizes)


def test_recommend_answers_are_grounded_in_the_catalogue(default_corpus: tuple[Path, dict]) -> None:
    out, _ = default_corpus
    by_name = {}
    for product in resources.catalogue():
        by_name[product.name_zh] = product
        by_name[product.name_en] = product
    checked = 0
    for split in ("train", "test"):
        for record in _records(out / f"{split}.jsonl"):
            if record["task"] != "recommend":
                continue
            answer, context = record["messages"][-1]["content"], record["messages"][0]["content"]
            query = record["meta"]["query"]
            named = PRODUCT_LINE.findall(answer)
            for sku, name, price in named:
                product = by_name[name]  # named products exist, under their own SKU
                assert product.sku == sku, (record["id"], sku, name)
                assert product.in_stock, (record["id"], name)
                assert float(price) == product.price and price == format_price(product.price)
                assert _satisfies(product, query), (record["id"], name, query)
                assert product.sku in context
            # Nothing that qualifies was left out (up to the three-product cap).
            shown = [resources.products_by_sku()[sku] for sku in record["meta"]["context_skus"]]
            qualifying = [p for p in shown if p.in_stock and _satisfies(p, query)]
            assert len(named) == min(3, len(qualifying)), record["id"]
            checked += 1
    assert checked >= 150, f"only {checked} recommendation records to check (the default mix gives 9% of 2,300)"


def test_answers_follow_the_style_guide(default_corpus: tuple[Path, dict]) -> None:
    out, _ = default_corpus
    style = resources.style_guide()
    for record in _records(out / "train.jsonl"):
        if record["task"] == "extract":
            continue
        lang = record["lang"]
        replies = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert replies[0].startswith(style.greeting[lang]), record["id"]
        for reply in replies:
            assert reply.endswith(style.sign_off[lang]), record["id"]
            assert not any(phrase in reply for phrase in style.banned_phrases[lang])
            if lang == "zh":
                assert reply.startswith(style.opener["zh"]) and "你" not in reply.replace("您", "")


def test_built_records_pass_the_validator(default_corpus: tuple[Path, dict]) -> None:
    out, _ = default_corpus
    validator = RecordValidator(resources.schemas())
    for split in ("train", "val", "test"):
        for record in _records(out / f"{split}.jsonl"):
            assert validator.problems(record) == []


def test_chats_need_their_history(default_corpus: tuple[Path, dict]) -> None:
    out, _ = default_corpus
    chats = [r for r in _records(out / "train.jsonl") if r["task"] == "chat"]
    turns = [sum(m["role"] == "user" for m in r["messages"]) for r in chats]
    assert min(turns) >= 2 and max(turns) <= 6
    follow_ups = [m["content"] for r in chats for m in r["messages"][3:] if m["role"] == "user"]
    assert any("的呢" in f or "有" in f for f in follow_ups) and any("cheaper" in f for f in follow_ups)
