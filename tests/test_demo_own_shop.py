"""A shop of one's own through every stage, as a new user gets there: `shop init`, a schema of its
own, the catalogue exported as CSV, 200 labelled examples imported with `data import`, then
`shoptune demo --set shop.dir=myshop --quick`, as a user runs it. What is checked is that every stage
ran on this shop's data and that its own schema is served and scored, which does not depend on the
model: it runs on tiny-qwen2.5 (`configs/tiny-qwen.yaml`, ~3 minutes here instead of ~5), since
`test_demo.py` already runs the embedded model through every stage. How well the model does is the
report's to say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_shoptune
from jsonschema import Draft202012Validator
from own_shops import WARRANTY_CLAIM, catalogue_as_csv, labelled_claims_csv
from test_demo import STAGES

from shoptune.core.paths import CONFIGS_DIR

pytestmark = pytest.mark.timeout(1800)
LABELLED = 200


@pytest.fixture(scope="module")
def own_demo(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("own-shop")
    shop = home / "myshop"

    def shoptune(*args: str):
        done = run_shoptune(*args, cwd=home, timeout=1500)
        assert done.returncode == 0, f"shoptune {' '.join(args)}:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
        return done

    shoptune("shop", "init", "myshop")
    (shop / "schemas" / "warranty_claim.schema.json").write_text(json.dumps(WARRANTY_CLAIM), encoding="utf-8")
    catalogue_as_csv(shop)
    labelled_claims_csv(home / "claims.csv", LABELLED)
    imported = shoptune(
        "data", "import", "claims.csv", "--format", "labelled", "--schema", "warranty_claim",
        "--text-field", "message", "--label-field", "label", "--out", "myshop/labelled/claims.jsonl",
        "--set", "shop.dir=myshop",
    )  # fmt: skip
    assert f"wrote {LABELLED} record(s)" in imported.stderr + imported.stdout
    checked = shoptune("shop", "check", "myshop")
    assert "warranty_claim: serial_number, fault" in checked.stdout
    out = home / "run"
    done = shoptune(
        "demo",
        "--config",
        str(CONFIGS_DIR / "tiny-qwen.yaml"),
        "--set",
        "shop.dir=myshop",
        "--quick",
        "--out",
        str(out),
    )
    return out, done.stderr


def test_every_stage_runs_on_the_shops_own_data(own_demo: tuple[Path, str]) -> None:
    out, log = own_demo
    for number, stage in enumerate(STAGES, start=1):
        assert f"[{number}/{len(STAGES)}] {stage}: done in" in log, stage
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert manifest["data_config"]["imported"] == [] and manifest["imported"]["available"] == LABELLED
    per_split = manifest["imported"]["per_split"]
    assert sum(per_split.values()) <= LABELLED and all(count > 0 for count in per_split.values()), per_split
    assert "catalogue/products.csv" in manifest["sources"] and "labelled/claims.jsonl" in manifest["sources"]
    train = [json.loads(line) for line in (out / "data" / "train.jsonl").read_text().splitlines()]
    assert sum(r["schema"] == "warranty_claim" for r in train if r.get("task") == "extract") == per_split["train"]


def test_eval_scores_the_new_schema_and_the_storefront_serves_it(own_demo: tuple[Path, str]) -> None:
    out, _ = own_demo
    report = json.loads((out / "eval-tuned-guided" / "report.json").read_text())
    assert {"serial_number", "fault"} <= report["metrics"]["field_recall"].keys()
    assert "schema_valid_rate" in report["metrics"]
    transcript = json.loads((out / "transcript.json").read_text())
    claims = [e for e in transcript["extractions"] if e["schema"] == "warranty_claim"]
    assert len(claims) == 3  # the demo sends test records of each schema its script does not cover
    validator = Draft202012Validator(WARRANTY_CLAIM)
    for claim in claims:  # guided decoding: a valid object, or a 502 naming the problem (it ran out of tokens)
        assert (claim["status"] == 200 and validator.is_valid(claim["data"])) or (
            claim["status"] == 502 and "warranty_claim output is not valid" in claim["error"]
        ), claim
    orders = [t for t in transcript["turns"] if t["order_id"]]
    assert orders and all(t["order"] and t["order"]["tracking_no"] in t["answer"] for t in orders)
    assert "order answers match the order system | 2/2" in (out / "report.md").read_text()
