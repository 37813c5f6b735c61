"""Starting `nas serve` on a free loopback port for the benchmarks that talk to it."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, *, tries: int = 600, hint: str = "") -> tuple[subprocess.Popen, str]:
    """(proc, url) once `url`/healthz answers 200; the server killed and RuntimeError if it exits or never does."""
    for _ in range(tries):
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nas serve did not start" + (f"; see {hint}" if hint else ""))
