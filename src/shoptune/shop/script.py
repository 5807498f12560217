"""A shop's demo script (`eval/demo_script.yaml`): the storefront conversation the demo plays and
the sentences it extracts, each with what a right answer does. It is shop data because the right
answer is: the products a budget allows, the policy a return question must quote, the order a
shopper asks about all come from that shop's catalogue, policy and order system. `shop check`
validates it; `shop init` copies the example shop's to edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shoptune.core.errors import BadInputError

SCRIPT_FILE = Path("eval") / "demo_script.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(Strict):
    """What a right answer to a scripted message does."""

    products: bool = False
    """It recommends at least one catalogue product (each in stock, within budget, in colour)."""
    max_price: float | None = None
    colour: str | None = None
    """The canonical colour every product it offers comes in (the catalogue's `colors[].zh`)."""
    noun: str | None = None
    """The canonical noun of every product it offers (the catalogue's `noun_zh`)."""
    mentions: tuple[str, ...] = ()
    """Policy answers: it contains at least one of these phrases."""
    order: str | None = None
    """Order questions: it states this order's carrier and tracking number as the order system has them."""


class Turn(Strict):
    message: str = Field(min_length=1)
    expect: Expect = Expect()


class Session(Strict):
    """One shopper's conversation, played turn by turn (each turn's history is the turns before)."""

    session: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    lang: Literal["zh", "en"]
    customer: str | None = None
    """The signed-in shopper the storefront's backend sends with each turn (order questions need one)."""
    turns: tuple[Turn, ...] = Field(min_length=1)


class Extraction(Strict):
    """A sentence sent to /v1/extract with the object a right answer is."""

    schema_name: str = Field(alias="schema", min_length=1)
    text: str = Field(min_length=1)
    expected: dict[str, Any]


class DemoScript(Strict):
    sessions: tuple[Session, ...] = ()
    extractions: tuple[Extraction, ...] = ()

    def sentences(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(schema, text, expected object) of each scripted extraction."""
        return [(e.schema_name, e.text, e.expected) for e in self.extractions]


def read_script(root: Path) -> DemoScript:
    """The shop's demo script; an empty one (no conversation, no scripted sentences) if it has none."""
    path = root / SCRIPT_FILE
    if not path.is_file():
        return DemoScript()
    try:
        return DemoScript.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise BadInputError(f"{path}: not a demo script ({exc}); `shoptune shop check` names each problem") from exc
