"""A shop folder checked as a whole, and scaffolded from the example shop.

    shoptune shop init myshop      # the example shop's files to edit, with a README of each
    shoptune shop check myshop     # FILE:LINE: field: problem, for every problem, exit 1 if any

The check reads every file the stages read (catalogue, schemas, policy, style guide, templates)
against typed models, so a shop's mistake is reported before a data build, a training run or a
server start finds it, and all of them at once. An extraction schema must be a valid JSON Schema
(draft 2020-12) of an object, and use only what the serving config's guided-decoding backend
supports (asked of vLLM's own check when vLLM is installed).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from shoptune.core.errors import BadInputError
from shoptune.core.paths import DATASETS_DIR
from shoptune.shop.check import Problem, field_path
from shoptune.shop.orders import ORDERS_FILE, order_problems
from shoptune.shop.resources import SCHEMA_SUFFIX, Shop, catalogue_file, catalogue_rows, read_schema, schema_name
from shoptune.shop.script import SCRIPT_FILE, DemoScript

CATALOGUE = Path("catalogue") / "products.jsonl"
POLICY = Path("policy") / "store_policy.yaml"
STYLE_GUIDE = Path("brand") / "style_guide.yaml"
ORDER_PHRASING = Path("templates") / "orders.yaml"
SHOP_PARTS = ("catalogue", "schemas", "policy", "brand", "templates", "orders")
"""What `shop init` copies: the example shop's own data, and its demo script (its hand-written eval set and
security set stay shoptune's)."""

Text = Field(min_length=1)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ColourRow(Strict):
    zh: str = Text
    en: str = Text


class ProductRow(Strict):
    """One line of `catalogue/products.jsonl` (or row of `products.csv`)."""

    sku: str = Text
    category: str = Text
    category_zh: str | None = None
    category_en: str | None = None
    brand_zh: str = Text
    brand_en: str = Text
    noun_zh: str = Text
    noun_en: str = Text
    name_zh: str = Text
    name_en: str = Text
    price: float = Field(ge=0, strict=False)
    colors: list[ColourRow]
    sizes: list[str]
    stock: int = Field(ge=0)
    specs: dict[str, Any] = Field(default_factory=dict)


Bilingual = dict[str, str]


class PolicyTopicRow(Strict):
    id: str = Text
    title: Bilingual
    facts: dict[str, int] | None = None
    text: Bilingual
    questions: dict[str, list[str]]
    answer: Bilingual


class PolicyFile(Strict):
    topics: list[PolicyTopicRow] = Field(min_length=1)


class AddressForm(Strict):
    opener: str
    pronoun: str
    forbidden_pronoun: str | None


class Emoji(Strict):
    max_per_reply: int = Field(ge=0)
    allowed: list[str]


class MaxLength(Strict):
    zh_chars: int = Field(gt=0)
    en_words: int = Field(gt=0)


class CurrencySpec(Strict):
    symbol: str = Text
    units: dict[str, list[str]]


class StyleGuideFile(Strict):
    shop_name: Bilingual
    address_form: dict[str, AddressForm]
    greeting: Bilingual
    sign_off: Bilingual
    banned_phrases: dict[str, list[str]]
    emoji: Emoji
    max_length: MaxLength
    currency: CurrencySpec | None = None
    system_prompt: str | None = Field(None, min_length=1)


class PolicyFact(Strict):
    topic: str = Text
    fact: str = Text


class OrderReplies(Strict):
    date: str = Text
    item: str = Text
    item_separator: str
    not_found: str = Text
    status: dict[Literal["paid", "shipped", "delivered", "cancelled", "refunded"], str]
    returns: dict[Literal["open", "quality_only", "closed", "not_delivered", "cancelled", "refunded"], str]


def _is_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(str(exc)) from exc
    return pattern


class OrderPhrasingFile(Strict):
    """`templates/orders.yaml`: the shop's order numbers, return words and windows, and the replies
    to order questions in each language it speaks."""

    order_id_pattern: Annotated[str, AfterValidator(_is_regex)] = Text
    return_words: dict[str, list[str]]
    return_window: PolicyFact
    quality_window: PolicyFact
    zh: OrderReplies | None = None
    en: OrderReplies | None = None


def check_catalogue(root: Path) -> Iterator[Problem]:
    path = catalogue_file(root)
    if not path.is_file():
        yield Problem(str(path), None, "missing: the catalogue, one product per line (or products.csv)")
        return
    seen: dict[str, int] = {}
    for number, raw in catalogue_rows(path):
        if isinstance(raw, ValueError):
            yield Problem(str(path), number, f"not a product record: {raw}")
            continue
        try:
            product = ProductRow.model_validate(raw)
        except ValidationError as invalid:
            for error in invalid.errors():
                yield Problem(str(path), number, f"{field_path(error['loc'])}: {error['msg']}")
            continue
        if product.sku in seen:
            yield Problem(str(path), number, f"sku: {product.sku} is also on line {seen[product.sku]}")
        seen.setdefault(product.sku, number)
    if not seen:
        yield Problem(str(path), None, "no products")


def backend_problem(schema: dict[str, Any], backend: str) -> str | None:
    """Why the guided-decoding backend would refuse `schema` at serve time, or None. Asks vLLM's
    own check of the features xgrammar lacks; without vLLM installed there is nothing to ask."""
    if backend != "xgrammar":
        return None
    try:
        from vllm.v1.structured_output.backend_xgrammar import has_xgrammar_unsupported_json_features
    except ImportError:
        return None
    if has_xgrammar_unsupported_json_features(schema):
        return "uses JSON Schema features xgrammar cannot enforce (vLLM would refuse every request with it)"
    return None


def check_schemas(root: Path, backend: str) -> Iterator[Problem]:
    folder = root / "schemas"
    paths = sorted(folder.glob(f"*{SCHEMA_SUFFIX}"))
    if not paths:
        yield Problem(str(folder), None, f"no extraction schema (*{SCHEMA_SUFFIX})")
    for path in paths:
        if not schema_name(path).isidentifier():
            yield Problem(str(path), None, "the name before .schema.json must be a word (letters, digits, _)")
        try:
            schema = read_schema(path)
        except BadInputError as bad:
            yield Problem(str(path), None, str(bad).removeprefix(f"{path}: "))
            continue
        refused = backend_problem(schema, backend)
        if refused:
            yield Problem(str(path), None, f"{backend}: {refused}")


def _node_line(node: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the YAML value at `loc` (as deep as the file goes)."""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((value for key, value in node.value if key.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = node.value[part]
        else:
            found = None
        if found is None:
            break
        node = found
    return node.start_mark.line + 1


def _not_yaml(path: Path, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    return Problem(str(path), mark.line + 1 if mark else None, f"not YAML: {exc}")


def check_yaml(path: Path, model: type[BaseModel]) -> Iterator[Problem]:
    if not path.is_file():
        yield Problem(str(path), None, "missing")
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree, data = yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        yield _not_yaml(path, exc)
        return
    try:
        model.model_validate(data)
    except ValidationError as invalid:
        for error in invalid.errors():
            line = _node_line(tree, error["loc"]) if tree is not None else None
            yield Problem(str(path), line, f"{field_path(error['loc'])}: {error['msg']}")


def check_templates(root: Path) -> Iterator[Problem]:
    for path in sorted((root / "templates").glob("*.yaml")):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
        except yaml.YAMLError as exc:
            yield _not_yaml(path, exc)


def check_orders(root: Path) -> Iterator[Problem]:
    """The sample orders, if the shop has them (a shop with an order database needs none)."""
    path = root / ORDERS_FILE
    if path.is_file():
        for line, problem in order_problems(path):
            yield Problem(str(path), line, problem)


def check_shop(root: Path, *, backend: str = "xgrammar") -> list[Problem]:
    """Every problem of the shop folder `root`, in file order."""
    if not root.is_dir():
        return [Problem(str(root), None, "no such folder")]
    return [
        *check_catalogue(root),
        *check_schemas(root, backend),
        *check_yaml(root / POLICY, PolicyFile),
        *check_yaml(root / STYLE_GUIDE, StyleGuideFile),
        *check_templates(root),
        *check_yaml(root / ORDER_PHRASING, OrderPhrasingFile),
        *(check_yaml(root / SCRIPT_FILE, DemoScript) if (root / SCRIPT_FILE).is_file() else []),
        *check_orders(root),
    ]


SHOP_README = """\
# {name}: a shoptune shop

`shoptune shop check {name}` validates everything here; `--set shop.dir={name}` (or `shop: {{dir: {name}}}`
in a config) makes every stage work on it. Started from shoptune's example shop: edit each file.

- `catalogue/products.jsonl`: one product per line (sku, category, brand/noun/name in zh and en,
  price, colors [{{zh, en}}], sizes, stock, specs). The storefront recommends and quotes only these.
  Or `catalogue/products.csv` with the same columns (the zh ones may be left out: they then read the
  en ones; colors and sizes `;`-separated, a colour `黑色/black` or one name; specs a JSON object), or
  a database table (`shop.catalogue_url`, `shoptune shop catalogue-db`).
- `schemas/<name>.schema.json`: one JSON Schema (draft 2020-12, `"type": "object"`) per extraction
  form, any number. `<name>` is what `/v1/extract` takes as `schema` and what records name in their
  `schema` field; each property's `description` tells the model what the field holds.
- `policy/store_policy.yaml`: the policy topics answers are grounded in (facts, text, shoppers'
  questions, a reference answer in the brand voice), in zh and en.
- `brand/style_guide.yaml`: the brand voice (address form, greeting, sign-off, banned phrases, emoji,
  length) that generated answers follow and the tone metrics score.
- `templates/*.yaml`: the phrasings the data generator writes shoppers' messages from, and
  `templates/orders.yaml`, the replies to order questions, filled from the order system.
- `eval/demo_script.yaml`: the conversation and sentences `shoptune demo` plays on this shop, each
  with what a right answer does (products in a budget, policy phrases, an order's tracking number):
  edit it with the catalogue, policy and orders.
- `orders/orders.jsonl`: sample orders (one per line: order_id, customer_id, status, local times,
  carrier, tracking_no, items [{{sku, quantity, unit_price}}]) the chat answers from when no order
  database is configured (`shop.orders_url`). `order_id_pattern` in `templates/orders.yaml` says what
  your order numbers look like.
"""


def init_shop(target: Path, *, source: Path = DATASETS_DIR) -> Path:
    """A new shop folder at `target` from the example shop; refuses a folder that has files."""
    if target.exists() and any(target.iterdir()):
        raise BadInputError(f"{target}: exists and is not empty; shop init writes a new folder")
    if not (source / "catalogue").is_dir():
        raise BadInputError(
            f"{source}: the example shop is not here (it ships in a shoptune checkout's datasets/, not in an "
            "installed wheel); start from a checkout, or copy a shop folder such as shops/voltedge"
        )
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for part in SHOP_PARTS:
        shutil.copytree(source / part, staging / part)
    if (source / SCRIPT_FILE).is_file():  # the demo's script, to edit with the shop (its test sets stay)
        (staging / SCRIPT_FILE).parent.mkdir()
        shutil.copy2(source / SCRIPT_FILE, staging / SCRIPT_FILE)
    (staging / "README.md").write_text(SHOP_README.format(name=target.name), encoding="utf-8")
    if target.exists():
        target.rmdir()
    staging.rename(target)
    return target


def schema_summary(root: Path) -> list[str]:
    """One line per schema: its name and fields (what `shop check` prints when all is well)."""
    return [f"{name}: {', '.join(schema['properties'])}" for name, schema in Shop(root).schemas.items()]
