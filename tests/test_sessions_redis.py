"""Sessions in a real Redis server (started here, stopped by PID): two storefront replicas share them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from shoptune.serve.sessions import RedisSessionStore, open_store


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("redis-server")
    assert binary, "Debian's redis-server is needed (scripts/test.sh installs it)"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if RedisSessionStore(url).ping():
                break
        except Exception:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_two_replicas_share_sessions(redis_url: str, tmp_path: Path) -> None:
    first = open_store("redis", sqlite_path=str(tmp_path / "unused.sqlite3"), redis_url=redis_url)
    second = RedisSessionStore(redis_url)

    def talk(store: RedisSessionStore, session: int) -> None:
        for turn in range(10):
            store.append(
                f"r{session}", [{"role": "user", "content": f"q{turn}"}, {"role": "assistant", "content": f"a{turn}"}]
            )

    threads = [threading.Thread(target=talk, args=(first if i % 2 else second, i)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for session in range(16):
        history = (second if session % 2 else first).history(f"r{session}")
        assert [t["content"] for t in history] == [x for i in range(10) for x in (f"q{i}", f"a{i}")]
    first.set_state("r1", {"filters": {"product": "手机"}})
    assert second.get_state("r1") == {"filters": {"product": "手机"}} and second.get_state("none") == {}
