"""Preference pairs: every rule-made rejected answer fails the eval metric it was made to fail and its
chosen answer passes it; `data pairs` writes a folder `data check` accepts; the preference format
is checked (file:line), shown, and imported from the usual chosen/rejected JSONL forms."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path

import pytest
from conftest import invoke_shoptune

from shoptune.config.schema import PAIR_KINDS
from shoptune.data.pairs import FAILS, make_pairs, write_pairs
from shoptune.shop.reading import read_records


def _score(pair: dict, answer: str) -> float:
    metric, key = FAILS[pair["meta"]["failure"]]
    return import_module(f"shoptune.eval.metrics.{metric}").score_record(pair, answer)[key]


@pytest.mark.parametrize("seed", [0, 1])
def test_each_rejected_answer_fails_its_metric_and_the_chosen_one_passes(pair_corpus: Path, seed: int) -> None:
    records = read_records(pair_corpus / "train.jsonl")
    pairs = make_pairs(records, per_record=3, seed=seed)
    assert {p["meta"]["failure"] for p in pairs} == set(PAIR_KINDS)  # every rule was exercised
    wrong = [
        (p["id"], _score(p, p["messages"][-1]["content"]), _score(p, p["rejected"]))
        for p in pairs
        if (_score(p, p["messages"][-1]["content"]), _score(p, p["rejected"])) != (1.0, 0.0)
    ]
    assert wrong == [], wrong[:5]
    assert all(p["rejected"] != p["messages"][-1]["content"] for p in pairs)
    assert len({p["id"] for p in pairs}) == len(pairs)


def test_pairs_are_deterministic_for_a_seed(pair_corpus: Path) -> None:
    records = read_records(pair_corpus / "train.jsonl")
    assert make_pairs(records, seed=3) == make_pairs(records, seed=3)
    assert make_pairs(records, seed=3) != make_pairs(records, seed=4)


def test_data_pairs_writes_what_data_check_accepts(pair_corpus: Path, tmp_path: Path, tiny_qwen_dir: Path) -> None:
    out = tmp_path / "pairs"
    made = invoke_shoptune(
        "data", "pairs", str(pair_corpus), "--out", str(out), "--config", "configs/tiny-qwen.yaml",
        "--kinds", "tone_sign_off,wrong_field,invented_price", "--per-record", "2",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["files"]) == {"train.jsonl", "val.jsonl", "test.jsonl"}
    kinds = {p["meta"]["failure"] for p in read_records(out / "train.jsonl")}
    assert kinds == {"tone_sign_off", "wrong_field", "invented_price"}
    assert manifest["files"]["train.jsonl"]["records"] == len(read_records(out / "train.jsonl"))
    checked = invoke_shoptune("data", "check", str(out / "train.jsonl"), str(out / "val.jsonl"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shown = invoke_shoptune("data", "show", str(out / "train.jsonl"), "--model", "tiny-qwen2.5", "--n", "1")
    assert shown.returncode == 0 and "rejected" in shown.stdout.lower(), shown.stdout


def test_data_pairs_of_a_folder_without_train_writes_nothing(tmp_path: Path) -> None:
    done = invoke_shoptune("data", "pairs", str(tmp_path), "--out", str(tmp_path / "pairs"))
    assert done.returncode == 2 and "no train.jsonl" in done.stderr
    assert not (tmp_path / "pairs").exists()


def test_write_pairs_replaces_the_folder_whole(pair_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    first = write_pairs(pair_corpus, out, kinds=("tone_sign_off",), seed=0)
    second = write_pairs(pair_corpus, out, kinds=("wrong_field",), seed=0)
    assert first["files"]["train.jsonl"]["sha256"] != second["files"]["train.jsonl"]["sha256"]
    assert {p["meta"]["failure"] for p in read_records(out / "train.jsonl")} == {"wrong_field"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]  # no staging folder left


@pytest.mark.parametrize(
    ("rejected", "problem"),
    [("", "rejected"), (None, "rejected"), ("SAME", "same as the chosen")],
)
def test_data_check_names_the_line_and_field_of_a_bad_rejected_answer(
    pair_corpus: Path, tmp_path: Path, rejected: str | None, problem: str
) -> None:
    records = read_records(pair_corpus / "val.jsonl")[:3]
    bad = {**records[1], "rejected": records[1]["messages"][-1]["content"] if rejected == "SAME" else rejected}
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [records[0], bad, records[2]]))
    done = invoke_shoptune("data", "check", str(path))
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert f"{path}:2" in said and "rejected" in said and problem in said, said


def test_import_preference_reads_the_usual_chosen_rejected_forms(tmp_path: Path) -> None:
    source = tmp_path / "prefs.jsonl"
    rows = [
        {
            "prompt": "你们的退货政策是什么？",
            "chosen": "亲，您好！签收后7天内可无理由退货。",
            "rejected": "自己看官网。",
        },
        {
            "system": "You are the shop's assistant.",
            "prompt": [{"role": "user", "content": "Do you ship abroad?"}],
            "chosen": [{"role": "assistant", "content": "Hello! We ship to mainland China only."}],
            "rejected": [{"role": "assistant", "content": "Yeah whatever."}],
        },
    ]
    source.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "imported.jsonl"
    done = invoke_shoptune("data", "import", str(source), "--format", "preference", "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = read_records(out)
    assert [r["rejected"] for r in records] == ["自己看官网。", "Yeah whatever."]
    assert records[1]["messages"][0] == {"role": "system", "content": "You are the shop's assistant."}
    assert records[0]["messages"][-1] == {"role": "assistant", "content": "亲，您好！签收后7天内可无理由退货。"}
    checked = invoke_shoptune("data", "check", str(out))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rejected_answer_over_the_token_limit_gives_way_to_another_failure(pair_corpus: Path) -> None:
    from shoptune.data.build import TokenLimit

    records = read_records(pair_corpus / "train.jsonl")
    limit = TokenLimit(model="characters", max_tokens=120, count=lambda messages: len(messages[-1]["content"]))
    unlimited = make_pairs(records, seed=0)
    limited = make_pairs(records, seed=0, limit=limit)
    assert any(len(p["rejected"]) > 120 for p in unlimited)  # the limit has something to do
    assert limited and all(len(p["rejected"]) <= 120 for p in limited)
    over = {p["meta"]["source_id"] for p in unlimited if len(p["rejected"]) > 120}
    assert [p for p in limited if p["meta"]["source_id"] in over]  # another failure took the place of one too long
