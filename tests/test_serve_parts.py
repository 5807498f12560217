"""Storefront parts that need no model: masking, session stores, retrieval, policy lookup, vLLM args."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from shoptune.config import ServeConfig, load_config
from shoptune.core.errors import BadInputError
from shoptune.serve.masking import mask
from shoptune.serve.retrieval import CatalogueIndex, Filters, terms
from shoptune.serve.routing import PolicyIndex, merge_filters
from shoptune.serve.sessions import SqliteSessionStore
from shoptune.serve.storefront import Storefront
from shoptune.serve.vllm_server import VllmServer, max_lora_rank, on_gpu, parse_lora


@pytest.mark.parametrize(
    ("text", "hidden", "label"),
    [
        ("我的手机号是13812345678，麻烦回电", "13812345678", "PHONE"),
        ("call me at +86 138 1234 5678", "138 1234 5678", "PHONE"),
        ("座机 010-62345678", "010-62345678", "PHONE"),
        ("订单YX202611250001还没到", "YX202611250001", "ORDER_ID"),
        ("寄到北京市海淀区中关村大街27号3号楼201室", "中关村大街27号", "ADDRESS"),
        ("ship to 1600 Amphitheatre Parkway? no: 221 Baker Street, Apt 2B", "221 Baker Street", "ADDRESS"),
    ],
)
def test_masking(text: str, hidden: str, label: str) -> None:
    masked = mask(text)
    assert hidden not in masked and f"[{label}]" in masked


def test_masking_keeps_ordinary_text() -> None:
    text = "I want a 2000 yuan phone in size 42, red, 12GB+256GB"
    assert mask(text) == text


def test_sqlite_sessions_survive_reopening_and_concurrency(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    store = SqliteSessionStore(path)

    def talk(session: int) -> None:
        for turn in range(10):
            store.append(
                f"s{session}", [{"role": "user", "content": f"q{turn}"}, {"role": "assistant", "content": f"a{turn}"}]
            )

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.set_state("s3", {"filters": {"product": "手机"}})
    reopened = SqliteSessionStore(path)
    for session in range(16):
        history = reopened.history(f"s{session}")
        assert [t["content"] for t in history] == [x for i in range(10) for x in (f"q{i}", f"a{i}")]
    assert reopened.get_state("s3") == {"filters": {"product": "手机"}} and reopened.get_state("new") == {}
    assert reopened.ping()


def test_retrieval_in_both_languages() -> None:
    index = CatalogueIndex()
    assert "小米" in terms("小米手机") and "#pho" in terms("Phone")
    zh = index.search("红色的小米手机", Filters((2000, 3000), "红色", None))
    assert zh and zh[0].noun_zh == "手机" and "小米" in zh[0].name_zh
    en = index.search("a Xiaomi phone", Filters())
    assert en[0].brand_en == "Xiaomi" and en[0].noun_en == "phone"
    # filters put matching products first; near misses follow so the model can say nothing fits
    filtered = index.search("手机", Filters((None, 1500), None, None), k=5)
    prices = [p.price for p in filtered]
    assert any(p <= 1500 for p in prices) and prices[0] <= 1500
    assert index.search("小米手鸡")[0].brand_zh == "小米"  # typo-tolerant through n-grams


def test_policy_lookup() -> None:
    index, serve = PolicyIndex(), ServeConfig()

    def search(text: str) -> list:
        return index.search(text, serve.policy_topics_per_turn, serve.policy_match_share)

    assert search("退货政策是怎样的？")[0].id == "returns"
    assert [t.id for t in search("Can I get an invoice for my company?")][:1] == ["invoices"]
    assert search("hello") == []
    assert search("What about black?") == []  # function words overlap every policy text


def test_follow_up_filters_keep_the_product() -> None:
    previous = {"product": "小米手机", "price_range": [None, 3000], "color": None, "size": None}
    follow_up = {"product": None, "price_range": None, "color": "黑色", "size": None}
    merged = merge_filters(previous, follow_up)
    assert merged == {"product": "小米手机", "price_range": [None, 3000], "color": "黑色", "size": None}
    fresh = {"product": "耐克运动鞋", "price_range": None, "color": None, "size": "42"}
    assert merge_filters(previous, fresh) == fresh


@pytest.mark.parametrize(
    ("message", "extracted_color", "gets_products"),
    [
        ("我想买一部3000元以内的手机", None, True),  # names the catalogue strongly
        ("那黑色的呢？", "黑色", True),  # a follow-up naming a colour
        ("What about black?", None, True),  # a follow-up that asks no policy question
        ("衣服尺码不合适，怎么退货？", None, False),  # a policy question later in the conversation
        ("How do I return an item?", None, False),
        ("我的订单YX202611250001到哪了？", None, False),  # about an order, not the catalogue
    ],
)
def test_which_turns_get_catalogue_context(message: str, extracted_color: str | None, gets_products: bool) -> None:
    """Serving must give a turn the context its training task had: a return question in a phone
    conversation gets the returns policy, not the phone cards again."""
    from shoptune.serve.storefront import StorefrontSettings

    storefront = Storefront(StorefrontSettings(model_name="shop", system_prompt="sys"), store=None, llm=None)
    conversation = {"product": "手机", "price_range": [None, 3000], "color": None, "size": None}
    extracted = {"product": None, "price_range": None, "color": extracted_color, "size": None}
    topics = storefront.policy_topics(message)
    assert storefront.router.asks_about_products(message, extracted, conversation, topics) is gets_products
    unnamed = {"product": None}  # the extraction missed the product; the last turn was still about one
    assert storefront.router.asks_about_products(message, extracted, unnamed, topics, True) is gets_products
    assert not storefront.router.asks_about_products("What about black?", extracted, unnamed, [], False)


@pytest.mark.parametrize(
    ("text", "budget", "colour"),
    [
        ("我想买一部3000元以内的手机", [None, 3000], None),
        ("我想买一部红色的小米手机，价格在2000到3000之间", [2000, 3000], "红色"),
        ("a red Xiaomi phone between 2000 and 3000", [2000, 3000], "red"),
        ("I need a phone under 3000 yuan", [None, 3000], None),
        ("1000-2000元的耳机", [1000, 2000], None),
        ("那黑色的呢？", None, "黑色"),
        ("What about black?", None, "black"),
        ("我的订单YX202611250001到哪了？", None, None),  # an order id is not a budget
        ("电话138-1234-5678", None, None),  # nor is a phone number
        ("Is it blackberry flavoured?", None, None),  # whole words only in English
    ],
)
def test_budget_and_colour_stated_in_words(text: str, budget: list | None, colour: str | None) -> None:
    from shoptune.serve.stated_filters import fill_stated, stated_budget, stated_colour

    assert stated_budget(text) == budget and stated_colour(text) == colour
    found = {"product": None, "price_range": [1, 2], "color": "蓝色", "size": None}
    assert fill_stated(found, text) == found  # what the extraction found is never overridden


def test_vllm_command_comes_from_config(tmp_path: Path) -> None:
    adapter = tmp_path / "a"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 12}))
    (adapter / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(BadInputError, match="pickled weights are not loaded"):
        max_lora_rank([parse_lora(f"x={adapter}")])
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    config = load_config(Path("configs/tiny-qwen.yaml"))
    server = VllmServer(
        model_dir=tmp_path,
        config=config.serve,
        served_name="shop",
        port=8123,
        loras=[parse_lora(f"shop-lora={adapter}")],
    )
    command = server.command()
    assert command[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--max-model-len") + 1] == str(config.serve.max_model_len)
    assert command[command.index("--max-lora-rank") + 1] == "16"  # 12 rounded up to a rank vLLM supports
    structured = json.loads(command[command.index("--structured-outputs-config") + 1])
    assert structured == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert command[command.index("--load-format") + 1] == "safetensors" and "--trust-remote-code" not in command
    assert server.environment()["VLLM_CPU_KVCACHE_SPACE"] == str(config.serve.cpu_kvcache_space_gib)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in server.environment()
    if not on_gpu():  # vllm-cpu runs the model in the engine's process, where it may use every core
        assert command[command.index("--distributed-executor-backend") + 1] == "uni"
        assert server.environment()["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"
        own_worker = VllmServer(tmp_path, config.serve.replace(cpu_executor="mp"), "shop", 8123)
        assert "--distributed-executor-backend" not in own_worker.command()
        assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in own_worker.environment()
    assert max_lora_rank([parse_lora(f"x={adapter}")]) == 16
    with pytest.raises(BadInputError):
        parse_lora("no-equals-sign")


def test_history_is_trimmed_to_the_token_budget(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    from transformers import AutoTokenizer

    from shoptune.serve.storefront import StorefrontSettings

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    store = SqliteSessionStore(tmp_path / "s.sqlite3")
    storefront = Storefront(
        StorefrontSettings(model_name="shop", system_prompt="sys", serve=ServeConfig(history_token_budget=120)),
        store,
        llm=None,
        tokenizer=tokenizer,
    )
    history = [
        m
        for i in range(10)
        for m in (
            {"role": "user", "content": f"question number {i} " * 3},
            {"role": "assistant", "content": f"answer number {i} " * 3},
        )
    ]
    system, user = {"role": "system", "content": "sys"}, {"role": "user", "content": "latest"}
    kept = storefront.history.trim(system, history, user)
    assert kept == history[len(history) - len(kept) :]  # the most recent exchanges, whole
    assert len(kept) % 2 == 0 and 0 < len(kept) < len(history)
    assert (
        storefront.history.tokens([system, *kept, user])
        <= 120
        < storefront.history.tokens([system, *history[-len(kept) - 2 :], user])
    )
