"""REST API speed on loopback: /predict latency (p50/p99) for 1 and 500 archs, and requests per second.

Starts a real `nas serve` (uvicorn, one process) on 127.0.0.1 with a throw-away store, sends requests with
httpx, and writes its section of BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_api.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import table, write_section  # noqa: E402
from benchmarks._serve import free_port, wait_healthy  # noqa: E402
from supernet import SearchSpace  # noqa: E402

SPACE = "tiny-mbv3"


def start(runs: Path, tree: Path = ROOT, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """`nas serve` from the source tree `tree` on a free loopback port, with `env` added: (process, URL)."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("NAS_")}, **(env or {})}
    env["PYTHONPATH"] = str(tree)
    proc = subprocess.Popen([sys.executable, "-m", "nas", "serve", "--port", str(port), "--runs-dir", str(runs),
                             "--log-level", "warning"], env=env, cwd=runs.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_healthy(proc, f"http://127.0.0.1:{port}")


def latencies(client: httpx.Client, body: dict, n: int) -> list[float]:
    for _ in range(3):
        client.post("/predict", json=body).raise_for_status()  # warm the predictor cache
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.post("/predict", json=body).raise_for_status()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def throughput(url: str, method: str, path: str, body: dict | None, clients: int, seconds: float) -> float:
    count = [0] * clients
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.perf_counter() < stop:
                r = c.request(method, path, json=body)
                r.raise_for_status()
                count[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(count) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    args = ap.parse_args()
    n_small, n_big, secs = (50, 10, 2.0) if args.quick else (400, 60, 6.0)
    space = SearchSpace.preset(SPACE)
    one = [a.to_dict() for a in space.sample_many(1, 0)]
    many = [a.to_dict() for a in space.sample_many(500, 1)]
    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start(Path(tmp) / "runs")
        try:
            with httpx.Client(base_url=url, timeout=60) as c:
                for devices in (["stm32f746"], ["stm32f746", "nvidia-t4", "cpu-host"]):
                    for label, archs, n in (("1", one, n_small), ("500", many, n_big)):
                        ms = latencies(c, {"space": SPACE, "devices": devices, "archs": archs}, n)
                        rows.append({"archs": label, "devices": len(devices), "requests": n,
                                     "p50 ms": float(np.percentile(ms, 50)), "p99 ms": float(np.percentile(ms, 99)),
                                     "mean ms": statistics.fmean(ms)})
                        print(rows[-1], file=sys.stderr)
            rps = []
            for name, method, path, body in (("GET /healthz", "GET", "/healthz", None),
                                              ("POST /predict (1 arch, 1 device)", "POST", "/predict",
                                               {"space": SPACE, "devices": ["stm32f746"], "archs": one})):
                for clients in (1, 4):
                    rps.append({"request": name, "clients": clients,
                                "requests/s": throughput(url, method, path, body, clients, secs)})
                    print(rps[-1], file=sys.stderr)
        finally:
            proc.terminate()
            proc.wait(30)
    load = f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"
    body = (f"`nas serve` (uvicorn, one process) on 127.0.0.1, space `{SPACE}`, httpx clients on the same machine "
            f"(1-minute load average {load} on {os.cpu_count()} cores: shared, so read the figures as upper bounds); "
            "latency is the client's wall time per request (JSON encode, HTTP, validation, prediction, response), "
            "with the `Predictors` objects cached after the first request.\n\n"
            + table(rows, ["archs", "devices", "requests", "p50 ms", "p99 ms", "mean ms"])
            + "\n\nRequests per second on loopback (closed loop, each client one request at a time):\n\n"
            + table(rps, ["request", "clients", "requests/s"]))
    write_section("api", "REST API: /predict latency and requests per second", body)


if __name__ == "__main__":
    main()
