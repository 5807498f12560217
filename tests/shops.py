"""A shop folder of its own for the tests of `shop.dir`: the example shop's data (as `shop init`
writes it) plus a third extraction schema, `warranty_claim`, that no code knows."""

from __future__ import annotations

import json
from pathlib import Path

from shoptune.shop.folder import init_shop

WARRANTY_CLAIM = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "A shopper's warranty claim for a device.",
    "type": "object",
    "properties": {
        "serial_number": {"type": ["string", "null"], "description": "The device's serial number as written."},
        "fault": {"enum": ["screen", "battery", "other", None], "description": "What is broken."},
    },
    "required": ["serial_number", "fault"],
    "additionalProperties": False,
}


def shop_with_a_claim_schema(folder: Path) -> Path:
    """A new shop at `folder` with `schemas/warranty_claim.schema.json` added; the folder."""
    init_shop(folder)
    (folder / "schemas" / "warranty_claim.schema.json").write_text(json.dumps(WARRANTY_CLAIM), encoding="utf-8")
    return folder
