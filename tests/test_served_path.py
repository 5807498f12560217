"""The served path's shared parts, fast: the one JSON form, the metrics nulls cannot game, the
degenerate-reply detector, per-machine precision, the storefront's request arguments and the
parity gate's comparisons (on given outputs; tests/test_parity.py runs it on a served model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from shoptune.core import hardware
from shoptune.data.surface import order_id
from shoptune.eval.metrics.degenerate import degenerate_reasons
from shoptune.eval.metrics.extraction import score_record
from shoptune.eval.parity import agreement, field_regressions
from shoptune.eval.scoring import aggregate, score_samples
from shoptune.shop import resources
from shoptune.shop.decoding import extraction_request, reply_request
from shoptune.shop.structured import json_answer, ordered_like_schema, response_format, vocabulary_schema


def _record(rid: str, gold: dict, schema: str = "product_query") -> dict:
    return {
        "id": rid,
        "task": "extract",
        "lang": "zh",
        "schema": schema,
        "messages": [
            {"role": "system", "content": "x"},
            {"role": "user", "content": f"text {rid}"},
            {"role": "assistant", "content": json_answer(gold)},
        ],
    }


GOLD = {"product": "小米手机", "price_range": [2000, 3000], "color": "红色", "size": None}
ALL_NULL = {"product": None, "price_range": None, "color": None, "size": None}


def test_answers_are_written_in_the_form_guided_decoding_produces() -> None:
    assert json_answer(GOLD) == '{"product":"小米手机","price_range":[2000,3000],"color":"红色","size":null}'
    schema = resources.schemas()["order_request"]
    shuffled = {"reason": None, "intent": "return", "product": None, "order_id": "A1"}
    assert list(ordered_like_schema(shuffled, schema)) == ["intent", "order_id", "product", "reason"]


def test_every_generated_extraction_target_is_in_the_one_form(tiny_data: Path) -> None:
    records = [json.loads(line) for line in (tiny_data / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    extractions = [r for r in records if r["task"] == "extract"]
    assert extractions
    for record in extractions:
        text = record["messages"][-1]["content"]
        schema = resources.schemas()[record["schema"]]
        assert text == json_answer(ordered_like_schema(json.loads(text), schema)), record["id"]


def test_an_all_null_answer_scores_zero_recall_and_f1() -> None:
    scores = score_record(_record("r", GOLD), json_answer(ALL_NULL))
    assert scores["json_valid"] == 1.0 and scores["schema_valid"] == 1.0
    assert scores["recall:product"] == scores["recall:price_range"] == scores["recall:color"] == 0.0
    assert scores["recall:size"] is None  # null gold: not a recall case
    assert scores["invented:size"] == 0.0 and scores["exact_match"] == 0.0
    metrics = aggregate(
        score_samples([_record("r", GOLD)], {"r": json_answer(ALL_NULL)}, ("extraction",)),
        bootstrap_samples=0,
        seed=0,
    )["metrics"]
    assert metrics["micro_f1"] == 0.0 and set(metrics["field_recall"].values()) == {0.0}
    assert metrics["field_accuracy"]["size"] == 1.0  # plain accuracy rewards the null: why it is not the headline


def test_a_value_the_shopper_never_gave_counts_as_invented() -> None:
    invented = {**GOLD, "size": "XL"}
    scores = score_record(_record("r", GOLD), json_answer(invented))
    assert scores["invented:size"] == 1.0 and scores["exact_match"] == 0.0
    assert scores["recall:product"] == 1.0 and scores["f1_fp"] == 1.0 and scores["f1_tp"] == 3.0


@pytest.mark.parametrize(
    ("text", "lang", "reasons"),
    [
        ("亲，您好！" + "商品的基本部分和" * 4 + "祝您购物愉快～", "zh", ["loop"]),
        ("Hi there! the phone is great the phone is great the phone is great the phone is great", "en", ["loop"]),
        (
            "Hi there!\n1. PHN-0031 Apple 15 Pro phone, ¥2299\n2. PHN-0031 Xiaomi 90s phone, ¥2299\nHappy shopping!",
            "en",
            ["repeated line"],
        ),
        ("亲，您好！祝您购物愉快～", "zh", ["only greets"]),
        ("Hi there! Happy shopping!", "en", ["only greets"]),
        ("亲，您好！签收后7天内可申请七天无理由退货；质量问题15天内可退货。祝您购物愉快～", "zh", []),
        (
            "Hi there! I found 2 phones that match:\n1. PHN-0040 Redmi 15 Lite phone, ¥1199, colours: black, "
            "white, sizes: 8GB+128GB\n2. PHN-0031 Apple 15 Pro phone, ¥2299, colours: black, white, sizes: "
            "8GB+128GB\nHappy shopping!",
            "en",
            [],
        ),
    ],
)
def test_degenerate_replies_are_named(text: str, lang: str, reasons: list[str]) -> None:
    assert degenerate_reasons(text, lang) == reasons


def test_no_reference_answer_in_the_corpus_is_degenerate(tiny_data: Path) -> None:
    records = [json.loads(line) for line in (tiny_data / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    replies = [r for r in records if r["task"] != "extract"]
    assert replies
    assert [r["id"] for r in replies if degenerate_reasons(r["messages"][-1]["content"], r["lang"])] == []


def test_order_ids_come_in_other_shops_forms_and_are_copied_as_written(tiny_data: Path) -> None:
    import random

    forms = {order_id(random.Random(seed)) for seed in range(200)}
    assert sum(f.startswith("YX") for f in forms) > 60 and sum(not f.startswith("YX") for f in forms) > 40
    records = [json.loads(line) for split in ("train", "test") for line in (tiny_data / f"{split}.jsonl").open()]
    for record in records:
        if record.get("schema") == "order_request":
            value = json.loads(record["messages"][-1]["content"])["order_id"]
            assert value is None or value in record["messages"][-2]["content"], record["id"]


@pytest.mark.parametrize(
    ("flags", "precision", "dtype"),
    [
        (frozenset({"avx2", "fma"}), "fp32", "float32"),
        (frozenset({"avx512f", "avx512_bf16"}), "bf16", "bfloat16"),
        (frozenset({"amx_bf16", "amx_tile"}), "bf16", "bfloat16"),
    ],
)
def test_auto_precision_follows_the_cpu(monkeypatch, flags, precision, dtype) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "cuda_available", lambda: False)
    assert hardware.resolve_precision("auto", "cpu") == precision
    assert hardware.resolve_serve_dtype("auto") == dtype
    assert (
        hardware.resolve_precision("fp32", "cpu") == "fp32" and hardware.resolve_serve_dtype("bfloat16") == "bfloat16"
    )


def test_the_storefront_and_the_evaluations_ask_alike() -> None:
    from shoptune.config import load_config

    serve = load_config(Path("configs/cpu-smollm2.yaml")).serve
    guided = extraction_request("order_request", serve.extraction_max_tokens)
    free = extraction_request("order_request", serve.extraction_max_tokens, structured=False)
    assert guided.pop("response_format") == response_format("order_request")
    assert guided == free == {"temperature": 0.0, "max_tokens": serve.extraction_max_tokens}
    plain = serve.replace(repetition_penalty=1.0, reply_stop=())
    assert reply_request(plain) == {
        "temperature": 0.0,
        "max_tokens": serve.max_new_tokens,
        "frequency_penalty": serve.frequency_penalty,
    }
    tuned = reply_request(serve.replace(repetition_penalty=1.1, reply_stop=("\n4.",)))
    assert tuned["extra_body"] == {"repetition_penalty": 1.1} and tuned["stop"] == ["\n4."]


def test_the_vocabulary_schema_admits_the_demo_sentences_values_and_nothing_else() -> None:
    schema = vocabulary_schema("product_query")
    validator = Draft202012Validator(schema)
    assert validator.is_valid(GOLD) and validator.is_valid(ALL_NULL)
    assert not validator.is_valid({**GOLD, "color": "红"}) and not validator.is_valid({**GOLD, "product": "小米手"})
    order = Draft202012Validator(vocabulary_schema("order_request"))
    assert order.is_valid({"intent": "return", "order_id": "any form 123", "product": "鞋子", "reason": "尺码不合适"})


def test_parity_names_the_records_that_differ_and_the_fields_that_regress() -> None:
    records = [_record(f"r{i}", GOLD) for i in range(40)]
    right, wrong = json_answer(GOLD), json_answer({**GOLD, "color": None})
    free = {r["id"]: right for r in records}
    structured = {r["id"]: (wrong if i < 20 else right) for i, r in enumerate(records)}
    same = agreement("same", records, ("structured", free), ("free_form", free), 0.98)
    assert same.passed and same.share == 1.0
    # a multi-byte character cut by the token budget: transformers decodes U+FFFD, vLLM holds it back
    kept = {r["id"]: right[:-3] for r in records}
    cut = {rid: text + "\ufffd" for rid, text in kept.items()}
    assert agreement("cut", records, ("in_process", cut), ("vllm", kept), 0.95).passed
    differ = agreement("differ", records, ("structured", structured), ("free_form", free), 0.98)
    assert not differ.passed and [d["id"] for d in differ.differing] == [f"r{i}" for i in range(20)]
    regressions = {r["metric"]: r for r in field_regressions(records, free, structured, bootstrap_samples=200, seed=0)}
    assert {"field:color", "recall:color", "exact_match"} <= regressions.keys()
    assert regressions["recall:color"]["records"] == [f"r{i}" for i in range(20)]
    assert "field:product" not in regressions


def test_a_shops_own_spaced_answer_is_trained_in_the_one_form(tiny_qwen_dir: Path, tmp_path: Path) -> None:
    from shoptune.models.loading import load_tokenizer
    from shoptune.train.dataset import build_rows

    record = _record("own-1", GOLD)
    spaced = json.dumps({"size": None, **GOLD}, ensure_ascii=False)  # spaces, and another key order
    record["messages"][-1]["content"] = spaced
    path = tmp_path / "own.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    tokenizer = load_tokenizer(tiny_qwen_dir)
    row = build_rows(path, tokenizer, 512).rows[0]
    trained = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100])
    assert trained.startswith(json_answer(GOLD)), trained
