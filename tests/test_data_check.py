"""`shoptune data check`: one test per rule, a mixed file, and arbitrary bytes without a traceback."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import invoke_shoptune

from shoptune.shop import resources
from shoptune.shop.check import MAX_LINE_BYTES, check_file
from shoptune.shop.records import RecordValidator

VALIDATOR = RecordValidator(resources.schemas())
GOOD_CHAT = {
    "id": "c1",
    "task": "faq",
    "lang": "en",
    "messages": [
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "Is shipping free?"},
        {"role": "assistant", "content": "Orders of 99 yuan or more ship free."},
    ],
}
GOOD_EXTRACT = {
    "id": "e1",
    "task": "extract",
    "lang": "zh",
    "schema": "product_query",
    "messages": [
        {"role": "user", "content": "我想找一款红色的小米手机，价格在2000到3000之间"},
        {
            "role": "assistant",
            "content": '{"product": "小米手机", "price_range": [2000, 3000], "color": "红色", "size": null}',
        },
    ],
    "meta": {"source": "seed"},
}


def _line(record: object) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def _problems(tmp_path: Path, *lines: bytes, name: str = "data.jsonl") -> list[str]:
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return [str(p) for p in check_file(path, VALIDATOR)]


def _with(base: dict, **changes: object) -> dict:
    record = json.loads(json.dumps(base))
    for key, value in changes.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    return record


def test_good_records_pass(tmp_path: Path) -> None:
    assert _problems(tmp_path, _line(GOOD_CHAT), _line(GOOD_EXTRACT)) == []


def _messages(*pairs: tuple[str, object]) -> list[dict]:
    return [{"role": role, "content": content} for role, content in pairs]


RULES = [
    ("not JSON", b'{"id": "x", "task": ', "invalid JSON"),
    ("NaN", b'{"id": NaN}', "invalid JSON: NaN is not valid JSON"),
    ("duplicate key", b'{"id": "a", "id": "b"}', "duplicate key 'id'"),
    ("array", b"[1, 2]", "record: expected a JSON object, got array"),
    ("missing id", _line(_with(GOOD_CHAT, id=None)), "id: missing required key"),
    ("empty id", _line(_with(GOOD_CHAT, id=" ")), "id: must be a non-empty string"),
    ("numeric id", _line(_with(GOOD_CHAT, id=7)), "id: must be a non-empty string"),
    ("unknown task", _line(_with(GOOD_CHAT, task="poem")), "task: must be one of"),
    ("unknown lang", _line(_with(GOOD_CHAT, lang="fr")), "lang: must be one of"),
    ("unknown key", _line(_with(GOOD_CHAT, extra=1)), "extra: unknown key"),
    ("meta not object", _line(_with(GOOD_CHAT, meta=[1])), "meta: must be a JSON object"),
    ("extract without schema", _line(_with(GOOD_EXTRACT, schema=None)), "schema: required when task is extract"),
    ("unknown schema", _line(_with(GOOD_EXTRACT, schema="invoice")), "schema: unknown schema 'invoice'"),
    ("schema on faq", _line(_with(GOOD_CHAT, schema="product_query")), "schema: only extract records"),
    ("messages not list", _line(_with(GOOD_CHAT, messages="hi")), "messages: must be a list"),
    ("no messages", _line(_with(GOOD_CHAT, messages=[])), "messages: must not be empty"),
    ("message not object", _line(_with(GOOD_CHAT, messages=["hi"])), "messages[0]: expected an object"),
    (
        "bad role",
        _line(_with(GOOD_CHAT, messages=_messages(("human", "hi"), ("assistant", "yo")))),
        "messages[0].role: must be one of",
    ),
    (
        "message key",
        _line(
            _with(
                GOOD_CHAT,
                messages=[{"role": "user", "content": "a", "name": "x"}, {"role": "assistant", "content": "b"}],
            )
        ),
        "messages[0].name: unknown key",
    ),
    (
        "empty content",
        _line(_with(GOOD_CHAT, messages=_messages(("user", "  "), ("assistant", "b")))),
        "messages[0].content: must not be empty",
    ),
    (
        "content not string",
        _line(_with(GOOD_CHAT, messages=_messages(("user", ["a"]), ("assistant", "b")))),
        "messages[0].content: must be a string",
    ),
    (
        "assistant first",
        _line(_with(GOOD_CHAT, messages=_messages(("assistant", "a"), ("user", "b")))),
        "messages[0].role: expected user, got assistant",
    ),
    (
        "two users",
        _line(_with(GOOD_CHAT, messages=_messages(("user", "a"), ("user", "b"), ("assistant", "c")))),
        "messages[1].role: expected assistant, got user",
    ),
    (
        "late system",
        _line(_with(GOOD_CHAT, messages=_messages(("user", "a"), ("assistant", "b"), ("system", "c")))),
        "system is only allowed as the first message",
    ),
    (
        "ends with user",
        _line(_with(GOOD_CHAT, messages=_messages(("user", "a"), ("assistant", "b"), ("user", "c")))),
        "the last message must be the assistant's answer",
    ),
    ("only system", _line(_with(GOOD_CHAT, messages=_messages(("system", "a")))), "need at least one user message"),
    (
        "target not JSON",
        _line(_with(GOOD_EXTRACT, messages=_messages(("user", "a"), ("assistant", "not json")))),
        "extraction target is not JSON",
    ),
    (
        "target array",
        _line(_with(GOOD_EXTRACT, messages=_messages(("user", "a"), ("assistant", "[1]")))),
        "extraction target must be a JSON object, got array",
    ),
    (
        "target breaks schema",
        _line(
            _with(
                GOOD_EXTRACT,
                messages=_messages(
                    ("user", "a"), ("assistant", '{"product": "x", "price_range": [1], "color": null, "size": null}')
                ),
            )
        ),
        "breaks schema product_query at price_range",
    ),
    (
        "target missing key",
        _line(
            _with(
                GOOD_EXTRACT,
                messages=_messages(
                    ("user", "a"), ("assistant", '{"product": "x", "price_range": null, "color": null}')
                ),
            )
        ),
        "'size' is a required property",
    ),
    ("invalid UTF-8", b'{"id": "\xff\xfe"}', "not valid UTF-8: byte 0xff at position 9"),
    ("blank line", b"   ", "blank line"),
    ("too long", b'{"id": "' + b"x" * MAX_LINE_BYTES + b'"}', "over the 1,048,576-byte limit"),
    ("deep nesting", b"[" * 100000 + b"]" * 100000, "invalid JSON"),
]


@pytest.mark.parametrize(("name", "line", "fragment"), RULES, ids=[r[0] for r in RULES])
def test_each_rule(tmp_path: Path, name: str, line: bytes, fragment: str) -> None:
    problems = _problems(tmp_path, _line(GOOD_CHAT), line)
    assert problems, name
    assert all(p.startswith(f"{tmp_path / 'data.jsonl'}:2: ") for p in problems), problems
    assert any(fragment in p for p in problems), problems


def test_duplicate_ids_name_the_first_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, _line(GOOD_CHAT), _line(GOOD_EXTRACT), _line(GOOD_CHAT))
    assert problems == [f"{tmp_path / 'data.jsonl'}:3: id: duplicate id 'c1' (first on line 1)"]


def test_bom_is_reported_and_the_record_still_checked(tmp_path: Path) -> None:
    problems = _problems(tmp_path, b"\xef\xbb\xbf" + _line(GOOD_CHAT), _line(GOOD_EXTRACT))
    assert problems == [
        f"{tmp_path / 'data.jsonl'}:1: file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM"
    ]


def test_file_level_problems(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert [str(p) for p in check_file(tmp_path / "empty.jsonl", VALIDATOR)] == [
        f"{tmp_path / 'empty.jsonl'}: file is empty: expected one JSON record per line"
    ]
    assert "file not found" in str(next(iter(check_file(tmp_path / "nope.jsonl", VALIDATOR))))
    assert "is a directory" in str(next(iter(check_file(tmp_path, VALIDATOR))))


def test_mixed_file_reports_every_bad_line_and_no_good_line(tmp_path: Path) -> None:
    lines, bad_lines = [], set()
    rng = random.Random(0)
    for index in range(60):
        if rng.random() < 0.4:
            lines.append(RULES[index % len(RULES)][1] if RULES[index % len(RULES)][0] != "too long" else b"{")
            bad_lines.add(index + 1)
        else:
            lines.append(_line(_with(GOOD_CHAT, id=f"good-{index}")))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = invoke_shoptune("data", "check", str(path))
    assert done.returncode == 1
    reported = {int(line.split(":")[1]) for line in done.stdout.splitlines()}
    assert reported == bad_lines
    assert "Traceback" not in done.stderr


def test_clean_file_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    path.write_bytes(_line(GOOD_CHAT) + b"\n" + _line(GOOD_EXTRACT) + b"\n")
    done = invoke_shoptune("data", "check", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_random_bytes_never_crash(tmp_path: Path) -> None:
    rng = random.Random(1234)
    alphabet = b'{}[]":,\\ \n\r\t0123456789abcdefnulltrue\xff\xfe\xef\xbb\xbf\x00' + "消息".encode()
    for round_number in range(300):
        size = rng.randint(0, 400)
        data = bytes(rng.choice(alphabet) if rng.random() < 0.7 else rng.randint(0, 255) for _ in range(size))
        path = tmp_path / f"junk-{round_number}.jsonl"
        path.write_bytes(data)
        for problem in check_file(path, VALIDATOR):
            assert str(problem).startswith(str(path))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(random.Random(5).randint(0, 255) for _ in range(5000)))
    done = invoke_shoptune("data", "check", str(junk), str(tmp_path / "missing.jsonl"), str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{tmp_path / 'missing.jsonl'}: file not found" in done.stdout
    assert f"{tmp_path}: is a directory" in done.stdout


def test_token_limit_with_a_model(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    path = tmp_path / "long.jsonl"
    long_chat = _with(GOOD_CHAT, id="c2", messages=_messages(("user", "hello " * 300), ("assistant", "ok")))
    path.write_bytes(_line(GOOD_CHAT) + b"\n" + _line(long_chat) + b"\n")
    done = invoke_shoptune("data", "check", str(path), "--model", "tiny-qwen2.5", "--max-tokens", "100")
    assert done.returncode == 1
    (line,) = done.stdout.splitlines()
    assert line.startswith(f"{path}:2: messages: ") and "tokens after the chat template, over the limit of 100" in line
