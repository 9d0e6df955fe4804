"""Safety and data integrity: a read-only console that is read-only, stores that are busy,
foreign or not databases at all, and reports that say where they cannot be written."""

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from conftest import rows

WRITER = """
import sys, time
from phenorank.core.store import open_store
store = open_store(sys.argv[1])
store.con.execute("INSERT INTO runs (run_id, command, status) VALUES ('held', 'holding', 'running')")
store.con.execute("CHECKPOINT")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
store.close()
"""


@pytest.fixture
def other_db(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE accounts AS SELECT 1 AS id, 'alice' AS name")
    con.close()
    return path


ESCAPES = {
    "copy-to": "COPY (SELECT 1) TO '{tmp}/out.csv'",
    "export": "EXPORT DATABASE '{tmp}/exported'",
    "attach-read-write": "ATTACH '{other}' AS other (READ_ONLY false); DELETE FROM other.accounts",
    "attach": "ATTACH '{other}' AS other",
    "read-text": "SELECT * FROM read_text('/etc/hostname')",
    "glob": "SELECT * FROM glob('/root/*')",
    "read-csv": "SELECT * FROM read_csv('{tmp}/secret.csv')",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET enable_external_access = true",
    "delete": "DELETE FROM images",
    "create": "CREATE TABLE stolen AS SELECT 1",
    "pragma-in-select": "SELECT * FROM read_blob('{other}')",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_read_only_sql_can_neither_write_nor_read_other_files(escape, tmp_path, invoke, tiny_plate, other_db):
    invoke("ingest", tiny_plate)
    (tmp_path / "secret.csv").write_text("a\n1\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    query = ESCAPES[escape].format(tmp=tmp_path, other=other_db)
    result = invoke("sql", query, ok=False)
    assert result.exit_code == 1 and "read-only" in result.output, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no file appeared
    assert rows(str(other_db), "SELECT count(*) FROM accounts") == [(1,)]
    assert rows(invoke.db, "SELECT count(*) FROM images") == [(120,)]


def test_allow_files_reads_other_files_but_writes_none(tmp_path, invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    (tmp_path / "secret.csv").write_text("a\n41\n")
    out = invoke("sql", f"SELECT a + 1 AS b FROM read_csv('{tmp_path}/secret.csv')", "--allow-files",
                 "--format", "csv").stdout
    assert out.splitlines() == ["b", "42"]
    result = invoke("sql", f"COPY (SELECT 1) TO '{tmp_path}/out.csv'", "--allow-files", ok=False)
    assert result.exit_code == 1 and "COPY statements need --write" in result.output
    assert not (tmp_path / "out.csv").exists()
    invoke("sql", f"COPY (SELECT 1 AS one) TO '{tmp_path}/out.csv'", "--write")  # asked for: allowed
    assert (tmp_path / "out.csv").read_text().splitlines() == ["one", "1"]


def test_a_busy_store_is_read_from_a_snapshot_and_a_second_writer_waits(tmp_path, invoke, tiny_plate, monkeypatch):
    invoke("ingest", tiny_plate)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, invoke.db, "6"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "holding"
        started = time.monotonic()
        result = invoke("sql", "SELECT count(*) AS n FROM images", "--format", "csv")
        assert result.stdout.splitlines() == ["n", "120"]  # the reader works while the writer holds the file
        assert f"store busy: {invoke.db} is being written by PID {writer.pid}" in result.stderr
        assert "Traceback" not in result.output
        from phenorank.core import store_access

        monkeypatch.setattr(store_access, "SNAPSHOT_LIMIT", 1000)  # a store too large to copy: the reader is told
        large = invoke("compare", ok=False)
        assert large.exit_code == 1 and "too large to copy for reading" in large.output
        monkeypatch.undo()
        blocked = invoke("ingest", tiny_plate, ok=False)
        assert blocked.exit_code == 1 and f"store busy: {invoke.db} is being written by PID {writer.pid}" \
            in blocked.output and "--wait SECONDS" in blocked.output
        assert time.monotonic() - started < 5
        waited = invoke("--wait", "30", "ingest", tiny_plate)  # the second writer waits its turn
        assert "unchanged 120" in waited.output
    finally:
        writer.wait(timeout=60)
    assert not Path(invoke.db + ".writer").exists()
    assert rows(invoke.db, "SELECT status FROM runs WHERE run_id = 'held'") == [("interrupted",)]


def test_a_foreign_database_is_never_taken_over(invoke, tiny_plate, other_db):
    before = other_db.read_bytes()
    for args in (("ingest", tiny_plate), ("sql", "select 1"), ("compare",)):
        result = invoke("--db", other_db, *args, ok=False)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "another application" in result.output or "not a phenorank store" in result.output
    assert other_db.read_bytes() == before
    assert rows(str(other_db), "SELECT table_name FROM information_schema.tables") == [("accounts",)]
    empty = other_db.parent / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    invoke("--db", empty, "ingest", tiny_plate)  # an empty database is fine to start a store in


def test_a_file_that_is_not_a_database_gets_one_line(tmp_path, invoke):
    text = tmp_path / "notes.duckdb"
    text.write_text("my notes\n")
    for args in (("sql", "select 1"), ("compare",), ("report",), ("run",)):
        result = invoke("--db", text, *args, ok=False)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"{text} is not a DuckDB database" in result.output
    assert text.read_text() == "my notes\n"


def test_report_out_is_checked_before_the_report_is_built(tmp_path, invoke, tiny_plate):
    invoke("ingest", tiny_plate)
    invoke("run", "--encoders", "morphometrics", "--metrics", "cosine")
    result = invoke("report", "--out", tmp_path / "missing" / "r.html", ok=False)
    assert result.exit_code == 1 and "folder" in result.output and "does not exist" in result.output
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = invoke("report", "--out", a_file / "r.html", ok=False)
    assert result.exit_code == 1 and f"folder {a_file} does not exist" in result.output
    assert not any(tmp_path.glob("**/r.html"))


def test_ctrl_c_marks_the_run_interrupted_not_failed(monkeypatch, invoke, tiny_plate):
    import phenorank.cli.data as data

    invoke("ingest", tiny_plate)

    def pressed_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "run_ingest", pressed_ctrl_c)
    result = invoke("ingest", tiny_plate, ok=False)
    assert result.exit_code == 1 and "Aborted" in result.output and "Traceback" not in result.output
    assert rows(invoke.db, "select status from runs where command = 'ingest' order by started_at") == [
        ("ok",), ("interrupted",)]
    assert rows(invoke.db, "select count(*) from images") == [(120,)]
