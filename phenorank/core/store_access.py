"""Opening a store file safely: one writer at a time, readers while it writes, nobody else's
database taken over, and a read-only SQL console that can touch no other file.

DuckDB lets one process hold a file for writing, and then no other process may open it, not even
to read. So:
- a writer leaves a note beside the file (``<store>.writer``: its PID, command and start) for as
  long as it holds it, and commits a checkpoint to the file at least every ``CHECKPOINT_EVERY``
  seconds of writing;
- a reader that finds the file held reads a snapshot copy of it: what the writer had
  checkpointed, said in one line with who is writing;
- a second writer waits up to ``wait`` seconds, then says who holds the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb

CHECKPOINT_EVERY = 10.0  # seconds: how stale a reader's snapshot of a busy store can be, at most about
SNAPSHOT_LIMIT = 2 << 30  # bytes: a larger busy store is not copied for a reader (it is told to --wait)
WRITER_SUFFIX = ".writer"
_RETRY = 0.25  # seconds between tries while waiting for a writer


class StoreError(RuntimeError):
    pass


@dataclass
class Connection:
    con: duckdb.DuckDBPyConnection
    notice: str = ""  # said to the user: e.g. reading a snapshot of a busy store
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        self.con.close()
        for cleanup in self.cleanups:
            cleanup()


def connect(path: str, read_only: bool, wait: float = 0.0, config: dict | None = None) -> Connection:
    """A connection to the store at ``path`` (see the module's notes on busy stores)."""
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only, config=config or {})
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StoreError(_not_a_database(path, exc)) from None
            if time.monotonic() < deadline:
                time.sleep(_RETRY)
                continue
            holder = writer_of(path, str(exc))
            if read_only:
                return _snapshot(path, config, holder)
            waited = f" (waited {wait:g} s)" if wait > 0 else " (--wait SECONDS waits for it)"
            raise StoreError(f"store busy: {path} is being written by {holder}{waited}") from None
        except duckdb.Error as exc:
            raise StoreError(_not_a_database(path, exc)) from None
    connection = Connection(con)
    if not read_only:
        connection.cleanups.append(_leave_writer_note(path))
    return connection


def refuse_foreign(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """A database with tables but no phenorank migrations belongs to someone else: never add ours."""
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
        "ORDER BY table_name").fetchall()]
    if tables and "schema_migrations" not in tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise StoreError(f"{path} is a DuckDB database of another application (tables: {shown}), not a phenorank "
                         "store; phenorank leaves it untouched. Give --db a new file name")


def writer_of(path: str, message: str = "") -> str:
    """Who holds the store for writing, as far as anyone can tell."""
    try:
        note = json.loads(Path(path + WRITER_SUFFIX).read_text())
        if _alive(int(note["pid"])):
            return f"PID {note['pid']} (`{note['command']}`) since {note['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = re.search(r"PID (\d+)", message)
    return f"PID {found.group(1)}" if found else "another process"


def _leave_writer_note(path: str) -> Callable[[], None]:
    note = Path(path + WRITER_SUFFIX)
    command = " ".join(["phenorank", *sys.argv[1:]]) if Path(sys.argv[0]).name == "phenorank" else \
        " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))
    try:
        note.write_text(json.dumps({"pid": os.getpid(), "command": command[:300],
                                    "since": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")}))
    except OSError:  # a read-only folder: the store itself would have failed first
        return lambda: None

    def remove() -> None:
        try:
            if json.loads(note.read_text()).get("pid") == os.getpid():
                note.unlink()
        except (OSError, ValueError):
            pass

    return remove


def _snapshot(path: str, config: dict | None, holder: str) -> Connection:
    """Open a copy of a store that a writer holds: its last checkpoint."""
    size = os.path.getsize(path)
    if size > SNAPSHOT_LIMIT:
        raise StoreError(f"store busy: {path} is being written by {holder}, and at {size / 2 ** 30:.1f} GiB it is too "
                         "large to copy for reading; try again when it is done, or with --wait SECONDS")
    folder = tempfile.mkdtemp(prefix="phenorank-snapshot-")
    copy = os.path.join(folder, Path(path).name)
    try:
        shutil.copyfile(path, copy)
        con = duckdb.connect(copy, read_only=True, config=config or {})
    except (OSError, duckdb.Error) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise StoreError(f"store busy: {path} is being written by {holder}, and a snapshot of it could not be read "
                         f"({exc}); try again when it is done, or with --wait SECONDS") from None
    return Connection(con, notice=f"store busy: {path} is being written by {holder}; showing what it had saved "
                                  f"by {datetime.now(timezone.utc):%H:%M:%S} UTC (at most ~{CHECKPOINT_EVERY:g} s "
                                  "behind)",
                      cleanups=[lambda: shutil.rmtree(folder, ignore_errors=True)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _not_a_database(path: str, exc: Exception) -> str:
    text = str(exc)
    if "not a valid DuckDB database" in text:
        return f"{path} is not a DuckDB database (is it the right file? give --db a phenorank store)"
    return f"cannot open {path}: {text}"
