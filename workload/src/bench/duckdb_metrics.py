"""DuckDB's side of `vigil bench metrics`: the embedded store's metric SQL over the same Parquet files.

Reads a JSON spec on stdin: {"store": dir, "threads": n, "repetitions": n,
"queries": [{"name": ..., "sql": [statement, ...], "plain": statement}]}; prints, for each
query, the median milliseconds of Vigil's statements (all of them) and of the plain aggregate
(DuckDB SQL over the sealed files), each after one warm-up, and the plain aggregate's rows:
[{"vigil_ms": ..., "plain_ms": ..., "plain_rows": ...}, ...].

The statements are the ones Vigil gives DataFusion, over the same relations: each table raw
(every file, with its `day` partition column), `<table>_sealed` (each partition's sealed file:
the one named `sealed-…` that sorts last) and `<table>_fresh` (the `part-…` files). Three
adaptations to DuckDB: the exact
percentile aggregate `exact_percentiles(x)` becomes a macro with the same definition (for N in 50,
90 and 99, the element at index min(floor(N * n / 100), n - 1) of the sorted values), integer division `/` is written `//`, and
the ordered aggregate `first_value(x ORDER BY …)` (the newest version of a row) is DuckDB's
`first(x ORDER BY …)`.
"""

import glob
import json
import os
import statistics
import sys
import time

import duckdb

spec = json.load(sys.stdin)
con = duckdb.connect()
con.execute(f"SET threads = {int(spec['threads'])}")
def files_view(name, table, files):
    if files:
        listed = ", ".join(f"'{f}'" for f in files)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}])")
    else:
        con.execute(f"CREATE VIEW {name} AS SELECT * EXCLUDE (day) FROM {table} WHERE false")


for table in ("runs", "spans", "scores"):
    pattern = f"{spec['store']}/{table}/*/*.parquet"
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', hive_partitioning = true)"
    )
    sealed, fresh = [], []
    for partition in sorted(glob.glob(f"{spec['store']}/{table}/day=*")):
        names = sorted(n for n in os.listdir(partition) if n.endswith(".parquet"))
        seals = [n for n in names if n.startswith("sealed-")]
        sealed += [os.path.join(partition, n) for n in seals[-1:]]
        fresh += [os.path.join(partition, n) for n in names if n.startswith("part-")]
    files_view(f"{table}_sealed", table, sealed)
    files_view(f"{table}_fresh", table, fresh)
con.execute(
    "CREATE MACRO exact_percentiles(x) AS ["
    + ", ".join(
        f"list_sort(list(x))[least(floor(count(x) * {percent} / 100), count(x) - 1)::BIGINT + 1]"
        for percent in (50, 90, 99)
    )
    + "]"
)

def median_ms(statements):
    def run():
        rows = 0
        for sql in statements:
            rows += len(con.execute(sql).fetchall())
        return rows

    rows = run()
    times = []
    for _ in range(spec["repetitions"]):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), rows


answers = []
for query in spec["queries"]:
    statements = [
        sql.replace(" / ", " // ").replace("first_value(", "first(") for sql in query["sql"]
    ]
    vigil_ms, _ = median_ms(statements)
    plain_ms, plain_rows = median_ms([query["plain"]])
    answers.append({"vigil_ms": vigil_ms, "plain_ms": plain_ms, "plain_rows": plain_rows})
json.dump(answers, sys.stdout)
