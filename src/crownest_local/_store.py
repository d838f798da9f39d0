"""State in SQLite: sandboxes, commands, artifacts, previews and idempotency records.

Every object is kept as its wire form (the generated model's `to_dict()`)
in one `objects` table, ordered by an insertion sequence that also serves as
the list cursor. Only the event-loop thread touches the connection, and each
write commits at once, so a killed server loses nothing it answered.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._errors import ApiProblem
from ._spec import digits, invalid

IDEMPOTENCY_TTL_S = 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    sandbox_id TEXT,
    status TEXT,
    expires_at REAL,
    body TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS objects_kind ON objects (kind, sandbox_id, seq);
CREATE INDEX IF NOT EXISTS objects_expiry ON objects (kind, status, expires_at);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created REAL NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


def _timestamp(body: dict[str, Any]) -> float | None:
    """`expiresAt` as seconds since the epoch, kept in a column so that expiry is one indexed query."""
    expires_at = body.get("expiresAt")
    return datetime.datetime.fromisoformat(expires_at).timestamp() if expires_at else None


class Store:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # Objects

    def insert(self, kind: str, body: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        self._db.execute(
            "INSERT INTO objects (kind, id, sandbox_id, status, expires_at, body, extra) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                body["id"],
                body.get("sandboxId"),
                body.get("status"),
                _timestamp(body),
                json.dumps(body),
                json.dumps(extra or {}),
            ),
        )

    def update(self, body: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """Replace an object's wire form (and, if given, what the server keeps beside it)."""
        self._db.execute(
            "UPDATE objects SET status = ?, expires_at = ?, body = ? WHERE id = ?",
            (body.get("status"), _timestamp(body), json.dumps(body), body["id"]),
        )
        if extra is not None:
            self._db.execute("UPDATE objects SET extra = ? WHERE id = ?", (json.dumps(extra), body["id"]))

    def count(self, kind: str, status: str) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM objects WHERE kind = ? AND status = ?", (kind, status)).fetchone()
        return int(row[0])

    def due(self, kind: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """The objects of `kind` (in `status`, if given) whose `expiresAt` has passed."""
        sql = "SELECT body FROM objects WHERE kind = ? AND expires_at <= ?"
        args: list[Any] = [kind, time.time()]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return [json.loads(body) for (body,) in self._db.execute(sql, args)]

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT body FROM objects WHERE kind = ? AND id = ?", (kind, object_id)).fetchone()
        return json.loads(row[0]) if row else None

    def extra(self, object_id: str) -> dict[str, Any]:
        row = self._db.execute("SELECT extra FROM objects WHERE id = ?", (object_id,)).fetchone()
        return json.loads(row[0]) if row else {}

    def delete(self, object_id: str) -> None:
        self._db.execute("DELETE FROM objects WHERE id = ?", (object_id,))

    def delete_sandbox(self, sandbox_id: str) -> list[str]:
        """Forget a sandbox with its commands, terminals and previews (not its artifacts, which outlive it);
        the IDs of the commands and terminals forgotten (whose output logs go with them)."""
        where = "sandbox_id = ? AND kind IN ('command', 'pty', 'preview')"
        commands = [
            row[0]
            for row in self._db.execute(
                f"SELECT id FROM objects WHERE {where} AND kind IN ('command', 'pty')", (sandbox_id,)
            )
        ]
        self._db.execute(f"DELETE FROM objects WHERE {where}", (sandbox_id,))
        self._db.execute("DELETE FROM objects WHERE id = ?", (sandbox_id,))
        return commands

    def all(self, kind: str, *, sandbox_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        return [body for _, body in self._rows(kind, sandbox_id, status, None)]

    def page(
        self,
        kind: str,
        *,
        limit: int,
        cursor: str | None,
        sandbox_id: str | None = None,
        status: str | None = None,
        keep: Callable[[dict[str, Any]], bool] = lambda _: True,
        ascending: bool = False,
    ) -> dict[str, Any]:
        """One page, newest first (oldest first if `ascending`): `{"data": [...], "nextCursor": ...}`."""
        past = None if cursor is None else digits(cursor)
        if cursor is not None and past is None:
            invalid("cursor", "is not one this server gave")
        data: list[dict[str, Any]] = []
        last_seq = 0
        for seq, body in self._rows(kind, sandbox_id, status, past, ascending):
            if not keep(body):
                continue
            if len(data) == limit:
                return {"data": data, "nextCursor": str(last_seq)}
            data.append(body)
            last_seq = seq
        return {"data": data, "nextCursor": None}

    def _rows(
        self, kind: str, sandbox_id: str | None, status: str | None, past: int | None, ascending: bool = False
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """The rows in insertion order (newest first unless `ascending`), from after the cursor `past`."""
        sql = "SELECT seq, body FROM objects WHERE kind = ?"
        args: list[Any] = [kind]
        for column, value in (("sandbox_id", sandbox_id), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if past is not None:
            sql += " AND seq > ?" if ascending else " AND seq < ?"
            args.append(past)
        for seq, body in self._db.execute(sql + (" ORDER BY seq ASC" if ascending else " ORDER BY seq DESC"), args):
            yield seq, json.loads(body)

    # Idempotency records

    def claim_key(self, scope: str, key: str, fingerprint: str) -> tuple[int, bytes] | None:
        """Start a request under `key`, or return the stored answer to replay.

        Raises 409 `idempotency_key_reused` for another request under the
        same key, and 409 `idempotency_key_in_use` while the first still runs.
        """
        self._db.execute("DELETE FROM idempotency WHERE created < ?", (time.time() - IDEMPOTENCY_TTL_S,))
        row = self._db.execute(
            "SELECT fingerprint, state, status, body FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        if row is None:
            self._db.execute(
                "INSERT INTO idempotency (scope, key, fingerprint, state, created) VALUES (?, ?, ?, 'running', ?)",
                (scope, key, fingerprint, time.time()),
            )
            return None
        stored_fingerprint, state, status, body = row
        if stored_fingerprint != fingerprint:
            raise ApiProblem(
                409,
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request.",
                {"idempotencyKey": key},
            )
        if state == "running":
            raise ApiProblem(
                409,
                "idempotency_key_in_use",
                "The first request with this Idempotency-Key is still running; retry later.",
                {"idempotencyKey": key},
            )
        return int(status), bytes(body)

    def finish_key(self, scope: str, key: str, status: int, body: bytes) -> None:
        """Keep the answer for replays; a 5xx is forgotten so that a retry runs again."""
        if status >= 500:
            self.release_key(scope, key)
            return
        self._db.execute(
            "UPDATE idempotency SET state = 'done', status = ?, body = ? WHERE scope = ? AND key = ?",
            (status, body, scope, key),
        )

    def release_key(self, scope: str, key: str) -> None:
        self._db.execute("DELETE FROM idempotency WHERE scope = ? AND key = ?", (scope, key))

    def release_running_keys(self) -> None:
        """At start: requests that were running when the server stopped never answered."""
        self._db.execute("DELETE FROM idempotency WHERE state = 'running'")
