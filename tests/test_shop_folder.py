"""A shop folder: `shoptune shop init` scaffolds one, `shoptune shop check` lists every problem
of it with file and line, and `shop.dir` makes the stages read it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import invoke_shoptune
from own_shops import catalogue_as_csv, shop_with_a_claim_schema

from shoptune.core.paths import REPO_ROOT
from shoptune.shop import resources
from shoptune.shop.folder import CATALOGUE, POLICY, check_shop


def _new_shop(tmp_path: Path) -> Path:
    folder = tmp_path / "myshop"
    done = invoke_shoptune("shop", "init", str(folder))
    assert done.returncode == 0, done.stderr
    return folder


def test_init_writes_a_shop_that_checks_clean(tmp_path: Path) -> None:
    folder = _new_shop(tmp_path)
    assert (folder / "README.md").read_text(encoding="utf-8").startswith("# myshop: a shoptune shop")
    assert (folder / CATALOGUE).read_bytes() == (resources.active().root / CATALOGUE).read_bytes()
    assert [p.name for p in (folder / "eval").iterdir()] == ["demo_script.yaml"]  # to edit with the shop
    assert not (folder / "security").exists()  # shoptune's own test sets stay
    assert not (folder / "eval" / "handwritten_extraction.jsonl").exists()
    done = invoke_shoptune("shop", "check", str(folder))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "product_query: product, price_range, color, size" in done.stdout


def test_init_refuses_a_folder_with_files(tmp_path: Path) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    done = invoke_shoptune("shop", "init", str(folder))
    assert done.returncode == 2 and "exists and is not empty" in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_check_lists_every_problem_with_file_line_and_field(tmp_path: Path) -> None:
    folder = _new_shop(tmp_path)
    catalogue = folder / CATALOGUE
    lines = catalogue.read_text(encoding="utf-8").splitlines()
    first, third = json.loads(lines[0]), json.loads(lines[2])
    third["price"], third["prise"] = "cheap", 3
    del third["stock"]
    lines[2], lines[5] = json.dumps(third, ensure_ascii=False), lines[0]
    catalogue.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "schemas" / "by_three.schema.json").write_text(
        json.dumps({"type": "object", "properties": {"n": {"type": "number", "multipleOf": 3}}}), encoding="utf-8"
    )
    (folder / "schemas" / "typo.schema.json").write_text('{"type": "objekt"}', encoding="utf-8")
    policy = folder / POLICY
    policy.write_text(
        policy.read_text(encoding="utf-8").replace("facts: {return_days: 7,", "facts: {return_days: seven,", 1),
        encoding="utf-8",
    )

    done = invoke_shoptune("shop", "check", str(folder))
    assert done.returncode == 1
    found = done.stdout.splitlines()
    assert found == [str(problem) for problem in check_shop(folder)]
    assert found[:4] == [
        f"{catalogue}:3: price: Input should be a valid number, unable to parse string as a number",
        f"{catalogue}:3: stock: Field required",
        f"{catalogue}:3: prise: Extra inputs are not permitted",
        f"{catalogue}:6: sku: {first['sku']} is also on line 1",
    ]
    assert found[4].startswith(f"{folder / 'schemas' / 'by_three.schema.json'}: xgrammar: uses JSON Schema features")
    assert found[5].startswith(f"{folder / 'schemas' / 'typo.schema.json'}: not a valid JSON Schema at type:")
    assert found[6] == f"{policy}:7: topics.0.facts.return_days: Input should be a valid integer"
    assert len(found) == 7 and "7 problem(s)" in done.stderr


def test_a_config_names_the_shop_every_reader_then_reads(tmp_path: Path) -> None:
    folder = shop_with_a_claim_schema(tmp_path / "myshop")
    done = invoke_shoptune("config", "show", "configs/tiny-qwen.yaml", "--set", f"shop.dir={folder}")
    assert done.returncode == 0, done.stderr
    assert resources.active().root == folder.resolve()
    assert list(resources.schemas()) == ["order_request", "product_query", "warranty_claim"]
    missing = invoke_shoptune("config", "show", "configs/tiny-qwen.yaml", "--set", f"shop.dir={tmp_path / 'nowhere'}")
    assert missing.returncode == 2 and f"shop.dir: {tmp_path / 'nowhere'}: no such folder" in missing.stderr


def test_records_of_a_shop_schema_check_against_that_shop(tmp_path: Path) -> None:
    folder = shop_with_a_claim_schema(tmp_path / "myshop")
    record = {
        "id": "claim-1",
        "task": "extract",
        "lang": "en",
        "schema": "warranty_claim",
        "messages": [
            {"role": "user", "content": "My phone SN-7781 will not charge"},
            {"role": "assistant", "content": json.dumps({"serial_number": "SN-7781", "fault": "battery"})},
        ],
    }
    data = tmp_path / "claims.jsonl"
    data.write_text(json.dumps(record) + "\n", encoding="utf-8")
    on_that_shop = invoke_shoptune("data", "check", str(data), "--set", f"shop.dir={folder}")
    assert on_that_shop.returncode == 0, on_that_shop.stdout + on_that_shop.stderr
    on_the_example_shop = invoke_shoptune("data", "check", str(data))
    assert on_the_example_shop.returncode == 1
    assert "schema: unknown schema 'warranty_claim'; known: order_request, product_query" in on_the_example_shop.stdout


def test_a_csv_catalogue_reads_as_the_same_products_and_its_bad_rows_are_named(tmp_path: Path) -> None:
    folder = _new_shop(tmp_path)
    csv_file = catalogue_as_csv(folder)
    assert resources.use_shop(folder).catalogue == resources.use_shop(None).catalogue
    english_only = tmp_path / "english.csv"
    english_only.write_text(
        "sku,category,brand_en,noun_en,name_en,price,colors,sizes,stock\n"
        "E-1,audio,Sony,headphones,Sony WH-9 headphones,2199,black;silver,One size,12\n"
        "E-2,audio,Sony,earbuds,Sony W1 earbuds,cheap,white,,ten\n",
        encoding="utf-8",
    )
    english_only.replace(csv_file)
    resources.open_shop.cache_clear()
    problems = [str(p) for p in check_shop(folder)]
    assert problems == [
        f"{csv_file}:3: price: Input should be a valid number, unable to parse string as a number",
        f"{csv_file}:3: stock: Input should be a valid integer",
    ]
    csv_file.write_text(csv_file.read_text(encoding="utf-8").splitlines()[0] + "\n" + "E-1,audio,Sony,headphones,"
                        "Sony WH-9 headphones,2199,black;silver,One size,12\n", encoding="utf-8")  # fmt: skip
    (product,) = resources.use_shop(folder).catalogue
    assert (product.name_zh, product.name_en, product.price, product.stock) == (
        "Sony WH-9 headphones",
        "Sony WH-9 headphones",
        2199.0,
        12,
    )  # fmt: skip  (no zh columns: the en ones)
    assert [c.en for c in product.colors] == ["black", "silver"] and product.sizes == ("One size",)


def test_check_reads_the_order_replies_and_the_sample_orders(tmp_path: Path) -> None:
    folder = _new_shop(tmp_path)
    phrasing = folder / "templates" / "orders.yaml"
    text = phrasing.read_text(encoding="utf-8").replace("order_id_pattern: 'YX\\d{12}'", "order_id_pattern: 'YX(\\d'")
    phrasing.write_text(text.replace('    shipped: "您的订单', '    shiped: "您的订单', 1), encoding="utf-8")
    orders = folder / "orders" / "orders.jsonl"
    lines = orders.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace('"status": "delivered"', '"status": "lost"')
    orders.write_text("\n".join([*lines, lines[0]]) + "\n", encoding="utf-8")
    found = [str(problem) for problem in check_shop(folder)]
    assert found[0].startswith(f"{phrasing}:8: order_id_pattern: Value error, missing ), unterminated subpattern")
    assert found[1].startswith(f"{phrasing}:21: zh.status.shiped.[key]: Input should be 'paid', 'shipped'")
    assert found[2].startswith(f"{orders}:2: status: Input should be 'paid', 'shipped'")
    assert found[3] == f"{orders}:{len(lines) + 1}: order_id: YX202611250001 is also on line 1"
    assert len(found) == 4


def test_the_demo_script_is_the_shops_and_checked(tmp_path: Path) -> None:
    from shoptune.demo.conversation import schema_samples
    from shoptune.shop.script import SCRIPT_FILE, read_script

    volt = read_script(REPO_ROOT / "shops" / "voltedge")
    assert [t.message for t in volt.sessions[0].turns][2] == "Where is my order VE-100001?"
    assert volt.sessions[0].customer == "cust-001" and volt.sessions[0].turns[1].expect.colour == "silver"
    turns = [("system", "x"), ("user", "broken"), ("assistant", "{}")]
    messages = [{"role": role, "content": content} for role, content in turns]
    record = {"task": "extract", "schema": "warranty_claim", "messages": messages}
    sent = schema_samples(volt, [record], {"product_query": {}, "warranty_claim": {}})
    assert [row[0] for row in sent] == ["product_query", "warranty_claim"]  # the script covers both: no samples

    folder = _new_shop(tmp_path)
    script = folder / SCRIPT_FILE
    script.write_text(script.read_text(encoding="utf-8").replace("lang: en", "lang: fr"), encoding="utf-8")
    (problem,) = check_shop(folder)
    assert str(problem).startswith(f"{script}:19: sessions.1.lang: Input should be 'zh' or 'en'")
