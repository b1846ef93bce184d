"""Results store: one SQLite row per cell, keyed by the cell's hash; WAL so readers never block.

A cell is `running` while a process holds its claim (owner = host:pid, refreshed heartbeat),
`done` with its metrics, or `failed` with a one-line reason. Finished cells are never retrained
unless forced; a claim whose owner died is taken over.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    metrics TEXT,
    env TEXT,
    error TEXT,
    created REAL,
    started REAL,
    finished REAL,
    owner TEXT,
    heartbeat REAL
)"""
RECORD_FIELDS = ("key", "spec", "status", "metrics", "env", "error", "created", "started", "finished")
STALE_AFTER_S = 600  # a claim not refreshed for this long is taken over even on another host


class StoreError(ValueError):
    """The store path is not a SQLite database of this suite (one line, exit code 2 from the CLI)."""


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str | None, heartbeat: float | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
            return True
        except (ProcessLookupError, ValueError):
            return False
        except PermissionError:
            return True
    return heartbeat is not None and time.time() - heartbeat < STALE_AFTER_S


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        deadline = time.time() + 60
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self._connect() as db:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute(SCHEMA)
                    db.execute("SELECT key, spec, status, metrics, env FROM cells LIMIT 1")
                return
            except sqlite3.OperationalError as exc:  # another process is creating it at this moment: wait
                if "locked" not in str(exc) or time.time() > deadline:
                    raise StoreError(f"--store {self.path} is not a usable SQLite results store ({exc})") from None
                time.sleep(0.1)
            except (sqlite3.DatabaseError, OSError) as exc:
                raise StoreError(f"--store {self.path} is not a usable SQLite results store ({exc})") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    @staticmethod
    def _row(r: sqlite3.Row | None) -> dict[str, Any] | None:
        if r is None:
            return None
        d = dict(r)
        for k in ("spec", "metrics", "env"):
            d[k] = json.loads(d[k]) if d[k] else None
        return d

    def get(self, key: str) -> dict[str, Any] | None:
        with self._connect() as db:
            return self._row(db.execute("SELECT * FROM cells WHERE key=?", (key,)).fetchone())

    def rows(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            return [self._row(r) for r in db.execute("SELECT * FROM cells ORDER BY created")]

    def claim(self, key: str, spec: dict, force: bool = False) -> str:
        """Atomically claim a cell: returns 'claimed', 'done' (already finished) or 'busy' (held elsewhere)."""
        me, now = owner_id(), time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                r = db.execute("SELECT status, owner, heartbeat FROM cells WHERE key=?", (key,)).fetchone()
                if r is not None:
                    if r["status"] == "done" and not force:
                        db.execute("COMMIT")
                        return "done"
                    if r["status"] == "running" and r["owner"] != me and _owner_alive(r["owner"], r["heartbeat"]):
                        db.execute("COMMIT")
                        return "busy"
                db.execute(
                    "INSERT INTO cells(key, spec, status, created, started, owner, heartbeat) VALUES (?,?,?,?,?,?,?) "
                    "ON CONFLICT(key) DO UPDATE SET status='running', error=NULL, started=excluded.started, "
                    "owner=excluded.owner, heartbeat=excluded.heartbeat",
                    (key, json.dumps(spec, sort_keys=True), "running", now, now, me, now))
                db.execute("COMMIT")
                return "claimed"
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def heartbeat(self, key: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE cells SET heartbeat=? WHERE key=? AND owner=?", (time.time(), key, owner_id()))

    def finish(self, key: str, metrics: dict, env: dict) -> None:
        with self._connect() as db:
            db.execute("UPDATE cells SET status='done', metrics=?, env=?, error=NULL, finished=?, owner=NULL WHERE key=?",
                       (json.dumps(metrics, sort_keys=True), json.dumps(env, sort_keys=True), time.time(), key))

    def fail(self, key: str, spec: dict, error: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO cells(key, spec, status, error, created, finished) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET status='failed', error=excluded.error, finished=excluded.finished, owner=NULL",
                (key, json.dumps(spec, sort_keys=True), "failed", error, time.time(), time.time()))

    def records(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """The finished rows among `keys`, as plain dicts in key order (what is published beside a table)."""
        rows = (self.get(k) for k in sorted(set(keys)))
        return [{f: r[f] for f in RECORD_FIELDS} for r in rows if r and r["status"] == "done"]

    def add_records(self, records: Iterable[dict[str, Any]]) -> int:
        """Insert finished records this store lacks (a row it holds is never overwritten); returns how many."""
        added = 0
        with self._connect() as db:
            for r in records:
                if r.get("status") != "done":
                    continue
                cur = db.execute(
                    "INSERT OR IGNORE INTO cells(key, spec, status, metrics, env, error, created, started, finished) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (r["key"], json.dumps(r["spec"], sort_keys=True), "done", json.dumps(r["metrics"], sort_keys=True),
                     json.dumps(r.get("env"), sort_keys=True), None, r.get("created"), r.get("started"), r.get("finished")))
                added += cur.rowcount
        return added
