"""Conversation history per session: SQLite by default (embedded, survives restarts), Redis when
configured (several storefront replicas share sessions). Both store the same thing: the ordered
user/assistant turns of a session and the product filters last extracted for it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol


class SessionStore(Protocol):
    def history(self, session_id: str) -> list[dict[str, str]]: ...
    def append(self, session_id: str, turns: list[dict[str, str]]) -> None: ...
    def get_state(self, session_id: str) -> dict[str, Any]: ...
    def set_state(self, session_id: str, state: dict[str, Any]) -> None: ...
    def ping(self) -> bool: ...


class SqliteSessionStore:
    """One SQLite file; WAL mode so reads do not block the writer; a lock per process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS turns (session_id TEXT NOT NULL, position INTEGER NOT NULL, role TEXT NOT NULL,"
            " content TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (session_id, position))"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS session_state (session_id TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def history(self, session_id: str) -> list[dict[str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content FROM turns WHERE session_id = ? ORDER BY position", (session_id,)
            ).fetchall()
        return [{"role": role, "content": content} for role, content in rows]

    def append(self, session_id: str, turns: list[dict[str, str]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (start,) = self._db.execute(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM turns WHERE session_id = ?", (session_id,)
                ).fetchone()
                now = time.time()
                self._db.executemany(
                    "INSERT INTO turns VALUES (?, ?, ?, ?, ?)",
                    [(session_id, start + i, t["role"], t["content"], now) for i, t in enumerate(turns)],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_state(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT state FROM session_state WHERE session_id = ?", (session_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def set_state(self, session_id: str, state: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO session_state VALUES (?, ?) ON CONFLICT(session_id) DO UPDATE SET state = excluded.state",
                (session_id, json.dumps(state, ensure_ascii=False)),
            )

    def ping(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1").fetchone() == (1,)


class RedisSessionStore:
    """Turns in a Redis list per session (RPUSH is atomic, so concurrent replicas never interleave
    half a turn); state as a JSON string."""

    def __init__(self, url: str, prefix: str = "shoptune") -> None:
        import redis

        self.client = redis.Redis.from_url(url, decode_responses=True)
        self.prefix = prefix

    def _key(self, kind: str, session_id: str) -> str:
        return f"{self.prefix}:{kind}:{session_id}"

    def history(self, session_id: str) -> list[dict[str, str]]:
        return [json.loads(item) for item in self.client.lrange(self._key("turns", session_id), 0, -1)]

    def append(self, session_id: str, turns: list[dict[str, str]]) -> None:
        self.client.rpush(self._key("turns", session_id), *(json.dumps(t, ensure_ascii=False) for t in turns))

    def get_state(self, session_id: str) -> dict[str, Any]:
        raw = self.client.get(self._key("state", session_id))
        return json.loads(raw) if raw else {}

    def set_state(self, session_id: str, state: dict[str, Any]) -> None:
        self.client.set(self._key("state", session_id), json.dumps(state, ensure_ascii=False))

    def ping(self) -> bool:
        return bool(self.client.ping())


def open_store(kind: str, *, sqlite_path: str, redis_url: str | None) -> SessionStore:
    if kind == "redis":
        assert redis_url, "serve.redis_url is required for the redis session store"
        return RedisSessionStore(redis_url)
    return SqliteSessionStore(Path(sqlite_path))
