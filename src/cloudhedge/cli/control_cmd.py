"""``cloudhedge up | down | launch | serve | status | ... | chaos``: the control plane.

    cloudhedge up FLEET.yaml [--plan plan.json] [--gateway gateway.yaml] [--host]
                  [--port 8700] [--gateway-port 8701] [--state-dir .cloudhedge]
                  [--database-url URL] [--interval 1] [--provider-timeout 60]
                  [--launch-timeout 900] [--block-for 600] [--aws-image AMI]
    cloudhedge down [--state-dir .cloudhedge]
    cloudhedge launch job.yaml            cloudhedge serve service.yaml
    cloudhedge status                     cloudhedge cancel NAME
    cloudhedge explain NAME               cloudhedge logs NAME [--replica N] [--tail 200]
    cloudhedge key [TENANT]               the gateway key generated for a tenant
    cloudhedge chaos outage SCOPE [--for 10m]     cloudhedge chaos restore SCOPE
    cloudhedge chaos preempt TARGET               cloudhedge chaos capacity POOL CHIPS

``up`` serves in the foreground (the API, with the reconciler loop) and writes
``STATE_DIR/server.json`` with its pid, url and bearer token; the other commands read
that file to reach it. Exit codes: 0 ok, 1 the server failed or cannot be reached,
2 invalid input (the located issues are printed).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cloudhedge.control.client import ApiError, ControlClient, ServerState, read_state

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
                                            help="Seconds between reconciler steps.")] = 1.0,
    gateway: Annotated[Path | None, typer.Option(
        "--gateway", help="gateway.yaml: tenants, classes and keys (default: from the "
        "fleet's policies, with generated keys).", exists=True, dir_okay=False)] = None,
    gateway_port: Annotated[int, typer.Option("--gateway-port", min=0, max=65535,
                                              help="Gateway port (0: any free one).")] = 8701,
    provider_timeout: Annotated[float, typer.Option(
        "--provider-timeout", min=1.0,
        help="Seconds a provider may stay silent before its instances are declared lost."),
    ] = 60.0,
    launch_timeout: Annotated[float, typer.Option(
        "--launch-timeout", min=1.0,
        help="Seconds an instance may stay pending before it is given up.")] = 900.0,
    block_for: Annotated[float, typer.Option(
        "--block-for", min=1.0,
        help="Seconds a failed scope stays blocked (a restored signal lifts it).")] = 600.0,
    aws_image: Annotated[str | None, typer.Option(
        "--aws-image", help="Run the fleet's aws pools on EC2 (credentials and region "
        "endpoints from the usual AWS environment) with this machine image: AMI, or "
        "REGION=AMI,REGION=AMI.")] = None,
) -> None:
    """Run the control plane in the foreground: API, reconciler and gateway over
    emulated clouds."""
    from cloudhedge.cli.stress_cmd import _read_plan
    from cloudhedge.control.server import ControlPlane
    from cloudhedge.core.errors import CatalogError, SpecError
    from cloudhedge.gateway.config_schema import load_gateway_config
    from cloudhedge.spec import load_fleet

    try:
        fleet = load_fleet(file)
        chosen = None if plan is None else _read_plan(plan)
        routes = None if gateway is None else load_gateway_config(gateway)
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
    real = {}
    if aws_image is not None:
        from cloudhedge.control.providers import AwsProvider, SystemClock

        images: str | dict[str, str] = aws_image
        if "=" in aws_image:
            images = dict(part.split("=", 1) for part in aws_image.split(","))
        try:
            real["aws"] = AwsProvider(fleet.pools, clock=SystemClock(), image_id=images)
        except (ValueError, CatalogError) as exc:
            _print_error(exc)
            raise typer.Exit(EXIT_INVALID) from None
    control = ControlPlane(fleet, plan=chosen, state_dir=state_dir, database_url=database_url,
                           interval_s=interval, gateway=routes,
                           heartbeat_timeout_s=provider_timeout,
                           launch_timeout_s=launch_timeout, block_for_s=block_for,
                           providers=real)
    token = control.take_token()

    def announce(api_url: str, gateway_url: str) -> None:
        emulated = [p for p in control.cloud.provider_names if p not in control.real]
        err.print(f"[green]cloudhedge up[/]: {len(fleet.pools)} pools; emulated: "
                  f"{', '.join(emulated) or '-'}; real: {', '.join(control.real) or '-'}; "
                  f"state in {state_dir}", highlight=False)
        err.print(f"  API      {api_url}   (token in {state_dir}/server.json, mode 0600)",
                  highlight=False)
        err.print(f"  gateway  {gateway_url}   (OpenAI-compatible; `cloudhedge key TENANT` "
                  "prints a key)", markup=False, highlight=False)

    control.serve(host=host, port=port, gateway_port=gateway_port, token=token,
                  announce=announce)


def down(
    state_dir: StateDirOpt = _DEFAULT_STATE,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait.")] = 30.0,
) -> None:
    """Stop the server started by `cloudhedge up` (SIGTERM, then wait)."""
    state = _server(state_dir)
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
    files: Annotated[list[Path], typer.Argument(help="Job files (job.yaml ...).", exists=True,
                                                dir_okay=False)],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Submit training or batch jobs to the running control plane (several: all or none)."""
    if len(files) == 1:
        _submit("jobs", files[0], state_dir)
        return
    body = {"jobs": [{"yaml": f.read_text(encoding="utf-8"), "filename": str(f)}
                     for f in files]}
    for result in _call(state_dir, lambda c: c.request("POST", "/v1/jobs/batch", body)):
        _submitted(result)


def serve(
    file: Annotated[Path, typer.Argument(help="Service file (service.yaml).", exists=True,
                                         dir_okay=False)],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Submit an inference service to the running control plane."""
    _submit("services", file, state_dir)


def status(state_dir: StateDirOpt = _DEFAULT_STATE) -> None:
    """Workloads (desired state, attempts by state, pools, ready replicas) and blocks."""
    rows = _call(state_dir, lambda c: c.workloads())
    blocks = _call(state_dir, lambda c: c.request("GET", "/v1/blocklist"))
    state = read_state(state_dir)
    out.print(f"API {state.url}   gateway {state.gateway_url or '-'}")
    table = Table(title="workloads")
    for col in ("name", "kind", "desired", "attempts", "pools", "chips", "ready", "updated"):
        table.add_column(col)
    for w in rows:
        attempts = ", ".join(f"{s} {n}" for s, n in sorted(w["attempts"].items()))
        table.add_row(w["name"], w["kind"], w["desired"], attempts or "-",
                      ", ".join(w["pools"]) or "-", str(w["live_chips"]),
                      "-" if w["ready"] is None else str(w["ready"]),
                      _when(w["updated_unix_s"]))
    out.print(table if rows else "no workloads")
    if blocks:
        blocked = Table(title="blocked failure scopes")
        for col in ("scope", "until", "reason"):
            blocked.add_column(col)
        for b in blocks:
            until = "-" if b["until_unix_s"] is None else _when(b["until_unix_s"])
            blocked.add_row(b["scope"], until, b["reason"])
        out.print(blocked)


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


def logs(
    name: Annotated[str, typer.Argument(help="Workload name.")],
    replica: Annotated[int, typer.Option("--replica", min=0, help="Replica number.")] = 0,
    tail: Annotated[int, typer.Option("--tail", min=1, help="Lines from the end.")] = 200,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new output.")] = False,
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """The output of a workload's replica (its newest launched attempt)."""
    path = f"/v1/workloads/{name}/logs?replica={replica}&tail={tail}"
    shown = _call(state_dir, lambda c: c.request("GET", path))
    err.print(f"[dim]{shown['attempt']} on instance {shown['instance_id']}[/]")
    sys.stdout.write(shown["text"])
    sys.stdout.flush()
    while follow:
        time.sleep(1.0)
        now = _call(state_dir, lambda c: c.request("GET", path))
        text = now["text"]
        if now["instance_id"] != shown["instance_id"]:
            err.print(f"[dim]-- now {now['attempt']} on instance {now['instance_id']}[/]")
            sys.stdout.write(text)
        elif text != shown["text"]:
            # print what follows the last line seen
            last = shown["text"].splitlines(keepends=True)[-1:] or [""]
            at = text.rfind(last[0]) + len(last[0]) if last[0] else 0
            sys.stdout.write(text[at:])
        sys.stdout.flush()
        shown = now


def key(
    tenant: Annotated[str, typer.Argument(help="Tenant (a tenant class of the fleet, or "
                                          "default).")] = "default",
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Print the gateway key `cloudhedge up` generated for a tenant (for OPENAI_API_KEY)."""
    state = _server(state_dir)
    found = state.gateway_keys.get(tenant)
    if found is None:
        known = ", ".join(sorted(state.gateway_keys)) or "none: keys come from --gateway"
        err.print(f"[red]no generated key for tenant {tenant!r}[/] (tenants: {known})")
        raise typer.Exit(EXIT_INVALID)
    print(found)


# --- chaos ---------------------------------------------------------------------------------

chaos_app = typer.Typer(help="Inject faults into the emulated clouds (recorded as events).",
                        no_args_is_help=True)

_SCOPE_HELP = ("aws | aws/us-east-1 | aws/us-east-1/us-east-1a | h100 | a pool name "
               "| kind:name")


@chaos_app.command("outage")
def chaos_outage(
    scope: Annotated[str, typer.Argument(help=_SCOPE_HELP)],
    duration: Annotated[str | None, typer.Option(
        "--for", help="How long: 90s, 10m, 1h30m (default: until `chaos restore`).")] = None,
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Take a provider, region, zone, accelerator family or pool down."""
    from cloudhedge.control.chaos import ChaosError, parse_duration

    try:
        seconds = None if duration is None else parse_duration(duration)
    except ChaosError as exc:
        err.print(f"[red]invalid input[/]: --for: {exc}", highlight=False)
        raise typer.Exit(EXIT_INVALID) from None
    done = _call(state_dir, lambda c: c.request("POST", "/v1/chaos/outage",
                                                {"scope": scope, "duration_s": seconds}))
    until = "until restored" if done["until_unix_s"] is None else \
        f"until {_when(done['until_unix_s'])}"
    out.print(f"outage of {done['target']} {until}: {len(done['instances'])} instance(s) "
              "failed", highlight=False)


@chaos_app.command("restore")
def chaos_restore(scope: Annotated[str, typer.Argument(help=_SCOPE_HELP)],
                  state_dir: StateDirOpt = _DEFAULT_STATE) -> None:
    """End the outages of a scope now."""
    done = _call(state_dir, lambda c: c.request("POST", "/v1/chaos/restore", {"scope": scope}))
    out.print(f"{scope} restored" if done["restored"] else f"{scope} had no outage")


@chaos_app.command("preempt")
def chaos_preempt(
    target: Annotated[str, typer.Argument(help="An instance id, a pool or a workload name.")],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Preempt an instance, every instance of a pool, or a workload's instances."""
    done = _call(state_dir, lambda c: c.request("POST", "/v1/chaos/preempt",
                                                {"target": target}))
    out.print(f"preempted {len(done['instances'])} instance(s): "
              f"{', '.join(done['instances']) or '-'}", highlight=False)


@chaos_app.command("capacity")
def chaos_capacity(
    pool: Annotated[str, typer.Argument(help="Pool name.")],
    chips: Annotated[int, typer.Argument(min=0, help="New capacity in chips.")],
    state_dir: StateDirOpt = _DEFAULT_STATE,
) -> None:
    """Set a pool's capacity (a supply shock); running instances are not evicted."""
    done = _call(state_dir, lambda c: c.request("POST", "/v1/chaos/capacity",
                                                {"pool": pool, "chips": chips}))
    out.print(f"capacity of {done['pool']} set to {done['chips']} chips")


# --- helpers -----------------------------------------------------------------------------


def _submit(kind: str, file: Path, state_dir: Path) -> None:
    _submitted(_call(state_dir, lambda c: c.submit(kind, file)))


def _submitted(result: dict[str, Any]) -> None:
    out.print(f"[green]submitted[/] {result['kind']} {result['name']} "
              f"(id {result['id']}, version {result['version']})")


def _server(state_dir: Path) -> ServerState:
    """The running server's state file, or exit 1 saying it is not running."""
    try:
        return read_state(state_dir)
    except FileNotFoundError as exc:
        err.print(f"[red]not running[/]: {exc}")
        raise typer.Exit(EXIT_ERROR) from None


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
