"""Applies Vigil's ClickHouse migrations (the SQL of `vigil migrate --print-sql`, on stdin) to a
current ClickHouse release, embedded by chDB (from PyPI), twice: every statement must be valid
there and idempotent (an `ADD COLUMN` the second time fails as `vigil migrate`
expects: the column exists). Then inserts one row per table and reads it back. Prints the server
version and the tables' column counts as JSON."""

import json
import sys
import tempfile

from chdb import session


def statements(script):
    for chunk in script.split(";\n"):
        lines = [l for l in chunk.strip().splitlines() if not l.startswith("--")]
        if lines:
            yield "\n".join(lines)


def main():
    script = sys.stdin.read()
    database = sys.argv[1]
    with tempfile.TemporaryDirectory() as path:
        db = session.Session(path)
        version = db.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        db.query(f"CREATE DATABASE IF NOT EXISTS {database}")
        for attempt in range(2):
            for statement in statements(script):
                try:
                    db.query(statement)
                except Exception as e:
                    # ADD COLUMN has no IF NOT EXISTS on 18.16: the second time, the column
                    # exists, which `vigil migrate` takes as applied.
                    if not (attempt == 1 and " ADD COLUMN " in statement and "already exists" in str(e)):
                        raise
        columns = {}
        for table in ("runs", "spans", "scores"):
            db.query(f"INSERT INTO {database}.{table} (project_id, trace_id) VALUES ('p', 't')")
            rows = db.query(f"SELECT count() FROM {database}.{table}", "CSV").bytes().decode().strip()
            assert rows == "1", f"{table}: {rows} rows"
            count = db.query(
                f"SELECT count() FROM system.columns WHERE database = '{database}' AND table = '{table}'",
                "CSV",
            )
            columns[table] = int(count.bytes().decode().strip())
        indexes = db.query(
            f"SELECT count() FROM system.data_skipping_indices WHERE database = '{database}'", "CSV"
        )
        print(json.dumps({
            "version": version,
            "columns": columns,
            "skip_indexes": int(indexes.bytes().decode().strip()),
        }))


if __name__ == "__main__":
    main()
