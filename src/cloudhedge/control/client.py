"""A small client of the control-plane API (stdlib only), and the server's state file.

``cloudhedge up`` writes ``STATE_DIR/server.json`` (mode 0600): pid, API url and bearer
token, the gateway's url and the keys it generated. The other commands
(``launch | serve | status | cancel | explain | logs | chaos | down``) read it.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cloudhedge.core.errors import CloudhedgeError

__all__ = ["ApiError", "ControlClient", "ServerState", "read_state", "state_path", "write_state"]

STATE_FILE = "server.json"


class ApiError(CloudhedgeError):
    """The server answered with an error status (or could not be reached: status 0)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")


@dataclass(frozen=True)
class ServerState:
    pid: int
    url: str  # the API
    token: str  # the API's bearer token
    gateway_url: str | None = None  # the OpenAI-compatible base URL (ends in /v1)
    gateway_keys: dict[str, str] = field(default_factory=dict)  # tenant -> key, generated


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, state: ServerState) -> Path:
    """Write the state file readable by its owner only."""
    path = state_path(state_dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(state), f)
    tmp.replace(path)
    return path


def read_state(state_dir: Path) -> ServerState:
    path = state_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: is `cloudhedge up` running with --state-dir {state_dir}?"
        ) from None
    return ServerState(pid=int(data["pid"]), url=str(data["url"]), token=str(data["token"]),
                       gateway_url=data.get("gateway_url"),
                       gateway_keys=dict(data.get("gateway_keys") or {}))


class ControlClient:
    """Calls the API with the bearer token; raises :class:`ApiError` on 4xx/5xx."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    @classmethod
    def from_state(cls, state_dir: Path) -> ControlClient:
        state = read_state(state_dir)
        return cls(state.url, state.token)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            raise ApiError(e.code, payload) from None
        except urllib.error.URLError as e:
            raise ApiError(0, f"cannot reach {self.url}: {e.reason}") from None
        except (http.client.HTTPException, OSError) as e:  # e.g. the server died mid-answer
            raise ApiError(0, f"connection to {self.url} failed: {type(e).__name__}: {e}") \
                from None

    def submit(self, kind: str, path: Path) -> Any:
        """POST a job (``kind='jobs'``) or service (``'services'``) file."""
        text = path.read_text(encoding="utf-8")
        return self.request("POST", f"/v1/{kind}", {"yaml": text, "filename": str(path)})

    def workloads(self) -> Any:
        return self.request("GET", "/v1/workloads")

    def workload(self, name: str) -> Any:
        return self.request("GET", f"/v1/workloads/{name}")

    def explain(self, name: str) -> Any:
        return self.request("GET", f"/v1/workloads/{name}/explain")

    def cancel(self, name: str) -> Any:
        return self.request("DELETE", f"/v1/workloads/{name}")
