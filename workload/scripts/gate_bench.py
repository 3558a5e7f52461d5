"""Times `vigil eval gate` on two experiments of N items against a fresh `vigil serve`.

Usage: python3 workload/scripts/gate_bench.py target/release/vigil 1000

Starts the binary on ports 48317/48318 over a scratch data directory (/tmp/gate-bench), creates a
dataset of N items and two experiments with an exact-match evaluator (90 % and 85 % of runs
completing, seeded), sends each item's run over OTLP/HTTP, links it, waits until every run is
readable, then runs the gate six times (the first a warm-up) and prints the times.
"""
import json, os, random, shutil, subprocess, sys, time, urllib.request

BIN, N = sys.argv[1], int(sys.argv[2])
DIR = "/tmp/gate-bench"
shutil.rmtree(DIR, ignore_errors=True)
os.makedirs(DIR)
env = dict(os.environ, VIGIL_SERVER__HTTP_LISTEN="127.0.0.1:48318", VIGIL_SERVER__GRPC_LISTEN="127.0.0.1:48317")
server = subprocess.Popen([BIN, "serve", "--data-dir", DIR], env=env, stdout=open(DIR + "/log", "w"), stderr=subprocess.STDOUT)
URL = "http://127.0.0.1:48318"
for _ in range(300):
    try:
        urllib.request.urlopen(URL + "/readyz"); break
    except Exception:
        time.sleep(0.1)
TOKEN = open(DIR + "/bootstrap.key").read().strip()

def call(method, path, body=None):
    req = urllib.request.Request(URL + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")

call("POST", "/api/v1/datasets", {"name": "bench"})
call("POST", "/api/v1/datasets/bench/items", {"items": [{"id": f"i{i:04}", "input": {"q": i}, "expected_output": "ok"} for i in range(N)]})
rng = random.Random(7)
now = time.time_ns()
exps = []
for e, rate in enumerate([0.9, 0.85]):
    exp = call("POST", "/api/v1/experiments", {"name": f"e{e}", "dataset": "bench", "evaluators": [{"type": "exact_match", "name": "exact"}]})["id"]
    spans, links = [], []
    for i in range(N):
        tid = f"{(e + 1) << 20 | i:032x}"
        ok = rng.random() < rate
        start = now - 3_600_000_000_000 + i * 1_000_000
        attrs = [{"key": "gen_ai.agent.name", "value": {"stringValue": "bench"}},
                 {"key": "vigil.run.outcome", "value": {"stringValue": "success" if ok else "failure"}},
                 {"key": "output.value", "value": {"stringValue": "ok" if ok else "no"}}]
        spans.append({"traceId": tid, "spanId": f"{i + 1:016x}", "name": "run", "kind": 1,
                      "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + rng.randint(500, 5000) * 1_000_000),
                      "attributes": attrs})
        links.append({"item_id": f"i{i:04}", "trace_id": tid})
    for at in range(0, N, 500):
        call("POST", "/v1/traces", {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans[at:at + 500]}]}]})
    for at in range(0, N, 1000):
        call("POST", f"/api/v1/experiments/{exp}/items", {"items": links[at:at + 1000]})
    exps.append(exp)
time.sleep(40)  # the assembler's orphan window and the batcher: every run readable
for _ in range(60):
    s = call("GET", f"/api/v1/experiments/{exps[1]}")["summary"]
    if s["done"] == N: break
    time.sleep(2)
print("done", call("GET", f"/api/v1/experiments/{exps[0]}")["summary"]["done"], s["done"])
times = []
for r in range(6):
    t = time.perf_counter()
    p = subprocess.run([BIN, "eval", "gate", "--url", URL, "--token", TOKEN, "--baseline", exps[0], "--candidate", exps[1]], capture_output=True, text=True)
    times.append(time.perf_counter() - t)
print("exit", p.returncode); print(p.stdout)
print("gate seconds (first is a warm-up):", ["%.3f" % x for x in times], "median of the rest %.3f" % sorted(times[1:])[2])
server.terminate(); server.wait()
