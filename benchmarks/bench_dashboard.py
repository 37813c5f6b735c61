"""The dashboard in a headless browser: time to first paint of the experiment page, and to the Pareto chart drawn
with all of a device's trials, for 2,000 and 100,000 trials (Debian's chromium through Playwright, `nas serve`
on loopback, both on this machine).

    python benchmarks/bench_dashboard.py [--sizes 2000,100000] [--repeats 3] [--no-write]

Each page load is a fresh browser context (no cache), signed in with the server's token. Figures: first
contentful paint (the page's shell), trials fetched (GET /experiments/{id}/trials, as the page receives it), the
chart drawn (all points on the canvas, from navigation start) and the canvas draw alone; the median of the
repeats. The experiments are finished random searches on the predictors, recorded in the store beforehand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._dashboard import (BROWSER_ARGS, chromium, seed_experiment, signed_in_context,  # noqa: E402
                                   start_server, stop_server)
from benchmarks._report import table, write_section  # noqa: E402

TOKEN = "bench"


def measure(browser, url: str, exp_id: str) -> dict[str, float]:
    ctx = signed_in_context(browser, TOKEN, viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.goto(f"{url}/ui/experiments/{exp_id}")
    page.wait_for_selector("canvas[data-points]", timeout=600_000)
    got = page.evaluate("""() => {
      const fcp = performance.getEntriesByName('first-contentful-paint')[0];
      const drawn = performance.getEntriesByName('nas:chart-drawn')[0];
      return {fcp: fcp ? fcp.startTime : null, drawn: drawn.startTime, fetch: window.__nas.fetchMs,
              draw: window.__nas.chartMs, points: Number(document.querySelector('canvas').dataset.points)};
    }""")
    # a hover on the busiest part of the chart: the nearest-point lookup and the tooltip
    box = page.locator("canvas").bounding_box()
    t0 = time.perf_counter()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_selector(".tooltip:not([hidden])", timeout=10_000)
    got["hover"] = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()  # the trials table sorted by another column: every row's index reordered
    page.click("#trials th button:text('latency_ms')")
    page.wait_for_selector("#trials th[aria-sort='ascending'] button:text('latency_ms')")
    got["sort"] = (time.perf_counter() - t0) * 1000
    ctx.close()
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="2000,100000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="nas-bench-dashboard-"))
    runs = work / "runs"
    seeded = {}
    for n in sizes:
        t0 = time.perf_counter()
        seeded[n] = seed_experiment(runs, n)
        print(f"seeded {n} trials in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    proc, url = start_server(runs, token=TOKEN)
    rows, load = [], os.getloadavg()[0]
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as c, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=BROWSER_ARGS)
            for n in sizes:
                api_ms, size = [], 0
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    r = c.get(f"/experiments/{seeded[n]}/trials", params={"device": "cpu-host"})
                    api_ms.append((time.perf_counter() - t0) * 1000)
                    size = len(r.content)
                runs_ = [measure(browser, url, seeded[n]) for _ in range(args.repeats)]
                assert all(m["points"] == n for m in runs_), runs_
                med = {k: statistics.median(m[k] for m in runs_) for k in ("fcp", "fetch", "drawn", "draw", "hover", "sort")}
                rows.append({"trials": n, "first paint ms": med["fcp"], "API answer ms": statistics.median(api_ms),
                             "payload MB": size / 1e6, "trials fetched ms": med["fetch"],
                             "chart drawn ms (from navigation)": med["drawn"], "canvas draw ms": med["draw"],
                             "hover to tooltip ms": med["hover"], "table re-sorted ms": med["sort"]})
                print(rows[-1], file=sys.stderr)
            browser.close()
    finally:
        stop_server(proc)
    body = table(rows) + f"""

Median of {args.repeats} page loads per size, each in a fresh browser context, chromium headless (software
rendering, `--disable-gpu`) and `nas serve` on the same machine, which was shared with other jobs while this
ran (load average {load:.1f} when it started). "chart drawn" is from navigation start to every point on the canvas (page shell, token check, experiment,
trials fetched and parsed, chart and the first table page); "canvas draw" is the chart's own drawing; "hover"
is a mouse move over the busiest part of the chart until the tooltip shows (it includes Playwright's round
trip), as is "table re-sorted" (a click on a column heading until the table shows the new order: every trial's
index sorted, 50 rows drawn). No
anchor was run beside it: optuna-dashboard and NNI's web UI are not installed here.
"""
    print(body)
    if not args.no_write:
        write_section("dashboard", "Dashboard: experiment page in a headless browser", body)


if __name__ == "__main__":
    main()
