"""The serving commands as an operator runs them: `shoptune serve up` (which runs `shoptune serve
vllm`, `serve app` and `serve ui`), started as a process, used with real clients, stopped by
signal, leaving nothing running."""

from __future__ import annotations

import configparser
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.shop import resources

API_KEY = "serve-cli-key"


def _wait_for_line(process: subprocess.Popen, pattern: str, timeout_s: float) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        line = process.stdout.readline()
        if line:
            if re.search(pattern, line):
                return line
        elif process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before printing {pattern!r}")
    raise AssertionError(f"no {pattern!r} within {timeout_s} s")


def _wait_for_log_line(log: Path, pattern: str, timeout_s: float = 30) -> re.Match | None:
    """The first match of `pattern` in `log`, which a child writes on its own schedule: `serve vllm`
    says where its server runs after its own readiness poll, which may end after the parent's."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        found = re.search(pattern, log.read_text()) if log.is_file() else None
        if found:
            return found
        time.sleep(0.2)
    return None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _ask_vllm_directly(port: int) -> None:
    """The `serve vllm` child as any OpenAI client sees it: a chat answer and schema-valid guided JSON."""
    from jsonschema import Draft202012Validator
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="EMPTY", timeout=120)
    reply = client.chat.completions.create(
        model="shop", messages=[{"role": "user", "content": "你好"}], max_tokens=4, temperature=0
    )
    assert reply.choices[0].message.content is not None
    schema = resources.schemas()["order_request"]
    value = client.chat.completions.create(
        model="shop",
        messages=[{"role": "user", "content": "cancel order YX202611250001"}],
        max_tokens=300,
        temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "o", "schema": schema}},
    )
    assert Draft202012Validator(schema).is_valid(json.loads(value.choices[0].message.content))


def test_serve_up_runs_all_three_and_stops_them(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    """`serve up` starts `serve vllm`, `serve app` and `serve ui` as children; each answers, and
    SIGINT stops them all (the children by SIGTERM), leaving no port served and no vLLM process."""
    vllm_port, app_port, ui_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shoptune",
            "serve",
            "up",
            "--config",
            "configs/tiny-qwen.yaml",
            "--model",
            "tiny-qwen2.5",
            "--set",
            f"serve.vllm_port={vllm_port}",
            "--set",
            f"serve.app_port={app_port}",
            "--set",
            f"serve.ui_port={ui_port}",
            "--set",
            f"serve.log_dir={tmp_path}",
            "--set",
            f"serve.sqlite_path={tmp_path / 's.sqlite3'}",
            "--set",
            "serve.max_new_tokens=16",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "SHOPTUNE_API_KEY": API_KEY},
    )
    try:
        _wait_for_line(process, r"all services up", 900)
        ready = _wait_for_log_line(tmp_path / "up-vllm.log", r"vLLM ready at .* \(pid (\d+), log (\S+)\)")
        assert ready, "serve vllm did not say where its server runs"
        vllm_pid = int(ready.group(1))
        assert Path(ready.group(2)).is_file()
        _ask_vllm_directly(vllm_port)
        app = f"http://127.0.0.1:{app_port}"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        for session, messages in (
            ("zh", ["我想买一部3000元以内的手机", "那黑色的呢？"]),
            ("en", ["I need a phone under 3000 yuan", "What about black?"]),
        ):
            for message in messages:
                response = httpx.post(
                    f"{app}/v1/chat", json={"session_id": session, "message": message}, headers=headers, timeout=180
                )
                assert response.status_code == 200, response.text
            turns = httpx.get(f"{app}/v1/sessions/{session}", headers=headers, timeout=30).json()["turns"]
            assert [t["content"] for t in turns if t["role"] == "user"] == messages
        extract = httpx.post(
            f"{app}/v1/extract",
            json={"text": "我想找一款红色的小米手机，价格在2000到3000之间", "schema": "product_query"},
            headers=headers,
            timeout=180,
        )
        assert extract.status_code == 200, extract.text
        assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=30).status_code == 200
        metrics = httpx.get(f"{app}/metrics", headers=headers, timeout=30).text
        assert 'storefront_requests_total{endpoint="/v1/chat",status="200"} 4.0' in metrics
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
        for port in (vllm_port, app_port, ui_port):
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served after stop"
        assert _gone(vllm_pid), "the vLLM server outlived `serve vllm`"
    finally:
        if process.poll() is None:
            process.kill()


def test_the_app_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHOPTUNE_API_KEY"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shoptune",
            "serve",
            "app",
            "--config",
            "configs/tiny-qwen.yaml",
            "--set",
            f"serve.log_dir={tmp_path}",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3 and "SHOPTUNE_API_KEY" in done.stderr


@pytest.mark.parametrize("unit", sorted((REPO_ROOT / "deploy" / "systemd").glob("*.service")), ids=lambda p: p.name)
def test_systemd_units_run_real_commands(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(unit)
    command = parser["Service"]["ExecStart"].split()
    assert command[1:3] == ["serve", unit.stem.removeprefix("shoptune-")]
    assert parser["Service"]["KillSignal"] == "SIGTERM"


def test_supervisord_programs_run_real_commands() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(REPO_ROOT / "deploy" / "supervisord" / "shoptune.conf")
    programs = [s for s in parser.sections() if s.startswith("program:")]
    assert programs == ["program:shoptune-vllm", "program:shoptune-app", "program:shoptune-ui"]
    for section in programs:
        assert f"serve {section.split('-')[-1]}" in parser[section]["command"]
        assert parser[section]["stopsignal"] == "TERM" and parser[section]["stopasgroup"] == "true"
