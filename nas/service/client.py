"""A small HTTP client of the REST API, for scripts, notebooks and `nas predict|search|export --server URL`.

    from nas.service.client import Client
    c = Client("http://127.0.0.1:8000", token="...")       # default: $NAS_API_TOKEN, or $NAS_API_TOKEN_FILE's
    rows = c.predict("tiny-mbv3", ["stm32f746"], [arch.to_dict()])
    exp = c.wait_experiment(c.create_experiment(spec))
    c.download_export(c.wait_export(c.create_export(device="stm32f746", experiment=exp["id"]))["id"], "out.zip")

Errors come back as `ApiClientError` (a `NasError`, so the CLI prints one line and exits 2), with the HTTP status
and the server's detail; a 422 names the field's path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import httpx

from supernet.errors import NasError

FINAL = ("succeeded", "failed", "cancelled", "interrupted")


class ApiClientError(NasError):
    """The server answered with an error (or could not be reached); `loc`: the first 422 item's field path."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        first = detail[0] if isinstance(detail, list) and detail and isinstance(detail[0], dict) else {}
        super().__init__(message, loc=first.get("loc") or ())
        self.status, self.detail = status, detail


def _message(status: int, detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            loc = ".".join(str(x) for x in item.get("loc", []) if x not in ("body",))
            allowed = (item.get("ctx") or {}).get("allowed")
            parts.append(f"{loc or 'body'}: {item.get('msg')}" + (f" (allowed: {allowed})" if allowed else ""))
        return f"server said {status}: " + "; ".join(parts)
    return f"server said {status}: {detail}"


class Client:
    """Calls one server; every method returns the JSON the server sent (dicts and lists)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0) -> None:
        if token is None and os.environ.get("NAS_API_TOKEN_FILE"):
            from nas.service.settings import read_token_file

            try:
                token = read_token_file(os.environ["NAS_API_TOKEN_FILE"])
            except ValueError as exc:
                raise ApiClientError(str(exc)) from None
        token = token if token is not None else os.environ.get("NAS_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiClientError(f"cannot reach {self.url}: {exc}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:500]
            raise ApiClientError(_message(r.status_code, detail), r.status_code, detail)
        return r

    # ------------------------------------------------------------------ read
    def health(self) -> dict:
        return self._call("GET", "/healthz").json()

    def spaces(self) -> list[dict]:
        return self._call("GET", "/spaces").json()

    def devices(self) -> list[dict]:
        return self._call("GET", "/devices").json()

    def device(self, name: str) -> dict:
        return self._call("GET", f"/devices/{name}").json()

    def runs(self) -> list[dict]:
        return self._call("GET", "/runs").json()

    def predict(self, space: str, devices: Sequence[str], archs: Sequence[dict], run: str | None = None) -> dict:
        """Per arch × device: latency_ms, macs, params, sram_bytes, flash_bytes, fits (+ accuracy with a run)."""
        body: dict[str, Any] = {"space": space, "devices": list(devices), "archs": list(archs)}
        if run is not None:
            body["run"] = run
        return self._call("POST", "/predict", json=body).json()

    # ------------------------------------------------------------------ experiments
    def create_experiment(self, spec: dict) -> str:
        """Start a search experiment from a spec (as `nas search` reads it); returns its id."""
        return self._call("POST", "/experiments", json=spec).json()["id"]

    def experiments(self) -> list[dict]:
        return self._call("GET", "/experiments").json()

    def experiment(self, exp_id: str) -> dict:
        return self._call("GET", f"/experiments/{exp_id}").json()

    def pareto(self, exp_id: str, device: str) -> dict:
        return self._call("GET", f"/experiments/{exp_id}/pareto", params={"device": device}).json()

    def cancel(self, exp_id: str) -> dict:
        return self._call("POST", f"/experiments/{exp_id}/cancel").json()

    def resume(self, exp_id: str) -> dict:
        return self._call("POST", f"/experiments/{exp_id}/resume").json()

    def wait_experiment(self, exp_id: str, poll_s: float = 0.5, timeout_s: float | None = None,
                        on_update: Any = None) -> dict:
        return self._wait(lambda: self.experiment(exp_id), poll_s, timeout_s, on_update)

    # ------------------------------------------------------------------ exports
    def create_export(self, device: str, *, run: str | None = None, arch: dict | None = None,
                      experiment: str | None = None, formats: Sequence[str] | None = None,
                      finetune: int | str = 0) -> str:
        body: dict[str, Any] = {"device": device, "finetune": finetune}
        for key, value in (("run", run), ("arch", arch), ("experiment", experiment),
                           ("formats", list(formats) if formats else None)):
            if value is not None:
                body[key] = value
        return self._call("POST", "/exports", json=body).json()["id"]

    def export(self, export_id: str) -> dict:
        return self._call("GET", f"/exports/{export_id}").json()

    def wait_export(self, export_id: str, poll_s: float = 0.5, timeout_s: float | None = None,
                    on_update: Any = None) -> dict:
        return self._wait(lambda: self.export(export_id), poll_s, timeout_s, on_update)

    def download_export(self, export_id: str, dest: str | Path) -> Path:
        """Save the export's zip to `dest` (written whole: a temp name, then renamed)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        with self._http.stream("GET", f"/exports/{export_id}/download") as r:
            if r.status_code >= 400:
                r.read()
                raise ApiClientError(_message(r.status_code, r.json().get("detail")), r.status_code)
            with open(tmp, "wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
        os.replace(tmp, dest)
        return dest

    # ------------------------------------------------------------------
    @staticmethod
    def _wait(get: Any, poll_s: float, timeout_s: float | None, on_update: Any) -> dict:
        start = time.monotonic()
        while True:
            state = get()
            if on_update is not None:
                on_update(state)
            if state["status"] in FINAL:
                return state
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise ApiClientError(f"still {state['status']} after {timeout_s:.0f} s")
            time.sleep(poll_s)


# ---------------------------------------------------------------------- the CLI's `--server URL`
def _read_json_items(path: str) -> list[dict]:
    """Objects from a JSON file (one object or a list) or a JSON-lines file (the server validates them)."""
    import json

    p = Path(path)
    if not p.is_file():
        raise ApiClientError(f"file '{path}' does not exist")
    text = p.read_text().strip()
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ApiClientError(f"'{path}' is neither JSON nor JSON lines: {exc.msg}") from None


def remote_predict(server: str, space: str, device: str, archs_path: str, run: str | None = None) -> list[dict]:
    """`nas predict --server URL`: one dict per arch (arch, device, latency_source and the predicted figures)."""
    archs = _read_json_items(archs_path)
    with Client(server) as c:
        body = c.predict(space, [device], archs, run=run)
    source = body["latency_source"].get(device)
    return [{"arch": archs[row.pop("arch_index")], "latency_source": source, **row} for row in body["predictions"]]


def remote_search(server: str, spec_path: str, progress: Any = None) -> dict:
    """`nas search --server URL`: post the spec (its `run`, if any, names a run on the server by its folder name),
    follow it until it ends; returns the experiment as the server shows it."""
    from supernet._io import read_yaml

    spec = read_yaml(spec_path, ApiClientError, "experiment spec")
    if isinstance(spec, dict) and spec.get("run"):
        spec["run"] = Path(str(spec["run"])).name
    with Client(server) as c:
        exp_id = c.create_experiment(spec)
        return c.wait_experiment(exp_id, on_update=progress)


def remote_export(server: str, run: str, devices: Sequence[str], out: str | Path, *, arch_path: str | None = None,
                  experiment: str | None = None, formats: Sequence[str] | None = None, finetune: int | str = 0,
                  progress: Any = None) -> list[dict]:
    """`nas export --server URL`: one export per (arch, device) on the server; each bundle is downloaded and
    unpacked into `out/<export id>-<device>/`. `run` is the server's run id; `experiment` its experiment id."""
    import zipfile

    archs = _read_json_items(arch_path) if arch_path else [None]
    out = Path(out)
    results = []
    with Client(server) as c:
        for device in devices:
            for arch in archs:
                ex_id = c.create_export(device, run=Path(run).name, arch=arch, experiment=experiment,
                                        formats=formats, finetune=finetune)
                state = c.wait_export(ex_id, on_update=progress)
                if state["status"] != "succeeded":
                    raise ApiClientError(f"export {ex_id} {state['status']}: {state.get('error')}")
                archive = c.download_export(ex_id, out / f".{ex_id}.zip")
                folder = out / f"{ex_id}-{device}"
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(folder)  # member names are sanitised by zipfile (no absolute or .. paths)
                archive.unlink()
                results.append({"bundle": str(folder), "export": ex_id, "device": device, "arch": state["arch"],
                                "files": state["files"]})
    return results


__all__ = ["Client", "ApiClientError", "remote_predict", "remote_search", "remote_export"]
