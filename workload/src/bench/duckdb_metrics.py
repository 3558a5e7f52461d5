"""DuckDB's side of `vigil bench metrics`: the embedded store's metric SQL over the same Parquet files.

Reads a JSON spec on stdin: {"store": dir, "threads": n, "repetitions": n,
"queries": [{"name": ..., "sql": [statement, ...]}]}; prints the median milliseconds of each
query (all its statements), after one warm-up, as a JSON list.

The statements are the ones Vigil gives DataFusion, with three adaptations to DuckDB: the exact
percentile aggregates `exact_pN(x)` become macros with the same definition (the element at index
min(floor(N * n / 100), n - 1) of the sorted values), integer division `/` is written `//`, and
the ordered aggregate `first_value(x ORDER BY …)` (the newest version of a row) is DuckDB's
`first(x ORDER BY …)`.
"""

import json
import statistics
import sys
import time

import duckdb

spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute(f"SET threads = {int(spec['threads'])}")
for table in ("runs", "spans", "scores"):
    pattern = f"{spec['store']}/{table}/*/*.parquet"
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true)"
    )
for percent in (50, 90, 99):
    con.execute(
        f"CREATE MACRO exact_p{percent}(x) AS "
        f"list_sort(list(x))[least(floor(count(x) * {percent} / 100), count(x) - 1)::BIGINT + 1]"
    )

medians = []
for query in spec["queries"]:
    statements = [
        sql.replace(" / ", " // ").replace("first_value(", "first(") for sql in query["sql"]
    ]

    def run():
        for sql in statements:
            con.execute(sql).fetchall()

    run()
    times = []
    for _ in range(spec["repetitions"]):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    medians.append(statistics.median(times))
json.dump(medians, sys.stdout)
