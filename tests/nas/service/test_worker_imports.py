"""A worker process loads nothing of the web app: no FastAPI, no Starlette, no `nas.api`."""

from __future__ import annotations

import json
import subprocess
import sys

# imports the worker and every module its job handlers import when they run (found in their source, so a handler
# that starts importing the web app fails here), then lists the web modules loaded
PROBE = """
import ast, importlib, inspect, json, sys, textwrap
import nas.service.worker as worker
for handler in worker.HANDLERS.values():
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(handler)))):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            importlib.import_module(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette")
                        or m == "nas.api" or m.startswith("nas.api."))))
"""


def test_worker_and_its_handlers_import_nothing_of_the_web_app():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_probe_sees_web_modules_when_they_are_loaded():
    # the same probe, with the web app imported first: it must report it (so an empty list above means something)
    probe = "import nas.api.app\n" + PROBE
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "fastapi" in loaded and "nas.api.app" in loaded
