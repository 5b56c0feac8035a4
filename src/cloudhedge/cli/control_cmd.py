"""``cloudhedge up | down | launch | serve | status | cancel | explain``: the control plane.

    cloudhedge up FLEET.yaml [--plan plan.json] [--host] [--port 8700]
                  [--state-dir .cloudhedge] [--database-url URL] [--interval 2]
    cloudhedge down [--state-dir .cloudhedge]
    cloudhedge launch job.yaml            cloudhedge serve service.yaml
    cloudhedge status                     cloudhedge cancel NAME
    cloudhedge explain NAME

``up`` serves in the foreground (the API, with the reconciler loop) and writes
``STATE_DIR/server.json`` with its pid, url and bearer token; the other commands read
that file to reach it. Exit codes: 0 ok, 1 the server failed or cannot be reached,
2 invalid input (the located issues are printed).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cloudhedge.control.client import ApiError, ControlClient, read_state

out = Console()
err = Console(stderr=True)

EXIT_ERROR, EXIT_INVALID = 1, 2

StateDirOpt = Annotated[
    Path, typer.Option("--state-dir", help="Where `cloudhedge up` keeps its state file.")]
_DEFAULT_STATE = Path(".cloudhedge")


def up(
    file: Annotated[Path, typer.Argument(help="Fleet spec (YAML).")],
    plan: Annotated[Path | None, typer.Option("--plan", help="plan.json to place by.",
                                              exists=True, dir_okay=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535,
                                      help="Port (0: any free one).")] = 8700,
    state_dir: StateDirOpt = _DEFAULT_STATE,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Control store URL (default sqlite:///STATE_DIR/control.db).",
    )] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1,
                                            help="Seconds between reconciler steps.")] = 2.0,
) -> None:
    """Run the control plane in the foreground: API + reconciler over emulated clouds."""
    from cloudhedge.cli.stress_cmd import _read_plan
    from cloudhedge.control.server import ControlPlane
    from cloudhedge.core.errors import CatalogError, SpecError
    from cloudhedge.spec import load_fleet

    try:
        fleet = load_fleet(file)
        chosen = None if plan is None else _read_plan(plan)
    except (SpecError, CatalogError, FileNotFoundError, ValueError) as exc:
        _print_error(exc)
        raise typer.Exit(EXIT_INVALID) from None
    try:
        existing = read_state(state_dir)
    except FileNotFoundError:
        existing = None
    if existing is not None and _alive(existing.pid):
        err.print(f"[red]already running[/]: pid {existing.pid} at {existing.url} "
                  f"(state dir {state_dir}); `cloudhedge down` first")
        raise typer.Exit(EXIT_ERROR)
    control = ControlPlane(fleet, plan=chosen, state_dir=state_dir, database_url=database_url,
                           interval_s=interval)
    token = control.take_token()
    err.print(f"[green]cloudhedge up[/]: {len(fleet.pools)} pools, state in {state_dir}, "
              f"listening on {host}:{port}")
    err.print(f"API token (shown once; also in {state_dir}/server.json, mode 0600): {token}",
              markup=False, highlight=False)
    control.serve(host=host, port=port, token=token)


def down(
    state_dir: StateDirOpt = _DEFAULT_STATE,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 30.0,
) -> None:
    """Stop the server started by `cloudhedge up` (SIGTERM, then wait)."""
    try:
        state = read_state(state_dir)
    except FileNotFoundError as exc:
        err.print(f"[red]not running[/]: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    if not _alive(state.pid):
        err.print(f"pid {state.pid} is gone; removing the stale state file")
        (state_dir / "server.json").unlink(missing_ok=True)
        return
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state.pid):
        if time.monotonic() > deadline:
            err.print(f"[red]pid {state.pid} still running after {timeout:.0f} s[/]")
            raise typer.Exit(EXIT_ERROR)
        time.sleep(0.1)
    out.print(f"stopped pid {state.pid}")


def launch(
    file: Annotated[Path, typer.Argument(help="Job file (job.yaml).", exists=True,
                                         dir_okay=False)],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Submit a training or batch job to the running control plane."""
    _submit("jobs", file, state_dir)


def serve(
    file: Annotated[Path, typer.Argument(help="Service file (service.yaml).", exists=True,
                                         dir_okay=False)],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Submit an inference service to the running control plane."""
    _submit("services", file, state_dir)


def status(state_dir: StateDirOpt = _DEFAULT_STATE) -> None:
    """Workloads: desired state, attempts by state, pools in use."""
    rows = _call(state_dir, lambda c: c.workloads())
    table = Table(title="workloads")
    for col in ("name", "kind", "desired", "attempts", "pools", "chips", "updated"):
        table.add_column(col)
    for w in rows:
        attempts = ", ".join(f"{state} {n}" for state, n in sorted(w["attempts"].items()))
        table.add_row(w["name"], w["kind"], w["desired"], attempts or "-",
                      ", ".join(w["pools"]) or "-", str(w["live_chips"]),
                      _when(w["updated_unix_s"]))
    out.print(table if rows else "no workloads")


def cancel(
    name: Annotated[str, typer.Argument(help="Workload name.")],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Cancel a workload; its instances end on the next reconciler step."""
    result = _call(state_dir, lambda c: c.cancel(name))
    out.print(f"cancelled {name}" if result["cancelled"] else f"{name} was already cancelled")


def explain(
    name: Annotated[str, typer.Argument(help="Workload name.")],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Why a workload runs where it does: its events and the last placement."""
    result = _call(state_dir, lambda c: c.explain(name))
    table = Table(title=f"events of {name}")
    for col in ("at", "kind", "reason"):
        table.add_column(col)
    for e in result["events"]:
        table.add_row(_when(e["at_unix_s"]), e["kind"], e["reason"])
    out.print(table)
    if result["placement"]:
        out.print("[bold]last placement[/]")
        for line in result["placement"]:
            out.print(line, markup=False, highlight=False)


# --- helpers -----------------------------------------------------------------------------


def _submit(kind: str, file: Path, state_dir: Path) -> None:
    result = _call(state_dir, lambda c: c.submit(kind, file))
    out.print(f"[green]submitted[/] {result['kind']} {result['name']} "
              f"(id {result['id']}, version {result['version']})")


def _call(state_dir: Path, fn: Any) -> Any:
    try:
        return fn(ControlClient.from_state(state_dir))
    except FileNotFoundError as exc:
        err.print(f"[red]not running[/]: {exc}")
        raise typer.Exit(EXIT_ERROR) from None
    except ApiError as exc:
        body = exc.body
        if isinstance(body, dict) and body.get("issues"):
            err.print(f"[bold red]invalid input[/]: {len(body['issues'])} problem(s)")
            for issue in body["issues"]:
                err.print(f"  {issue['text']}", markup=False, highlight=False)
            raise typer.Exit(EXIT_INVALID) from None
        err.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(EXIT_ERROR if exc.status in (0, 401) or exc.status >= 500
                         else EXIT_INVALID) from None


def _print_error(exc: Exception) -> None:
    from cloudhedge.core.errors import SpecError

    if isinstance(exc, SpecError):
        err.print(f"[bold red]invalid input[/]: {len(exc.issues)} problem(s)")
        for issue in exc.issues:
            err.print(f"  {issue}", markup=False, highlight=False)
    else:
        err.print(f"[bold red]invalid input[/]: {exc}", highlight=False)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        pass  # no procfs: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _when(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
