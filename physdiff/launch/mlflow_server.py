"""Start, inspect and stop a local MLflow tracking server with a database backend and proxied artifacts.

One machine (default): the server serves the same SQLite store the trainers write by default
(``<data>/mlflow.db``, artifacts in ``<data>/mlartifacts``), bound to 127.0.0.1::

    physdiff mlflow start              # prints http://127.0.0.1:PORT (also: python cluster/mlflow_server.py start)
    physdiff mlflow status
    physdiff mlflow stop

Many nodes: a database server as the backend and a shared artifact root, reachable by the nodes
(binding beyond 127.0.0.1 must be asked for; MLflow then also needs ``--allowed-hosts``)::

    physdiff mlflow start --host 0.0.0.0 --port 5000 \\
        --backend-store-uri postgresql://mlflow@dbhost/mlflow \\
        --artifacts-destination /shared/physdiff/mlartifacts --allowed-hosts 'node*,10.*'
    physdiff launch --stage prior --gpus 8 --tracking-uri http://HEADNODE:5000

With a server, trainers talk REST only: runs and metrics go through the server to the database,
and artifacts are uploaded through the server's proxy (``--serve-artifacts``), so no training
process ever opens the store itself.

The server runs in its own process group (``start_new_session``), so ``stop`` ends MLflow and its
gunicorn/uvicorn workers together. Its pid, group, URI and log live in ``--state`` (default
``<data>/mlflow-server/``), with the process's identity: its command line and its start time (field 22
of ``/proc/<pid>/stat``, clock ticks since boot). ``stop``, ``status`` and a second ``start`` act on the
recorded pid only while the live process still has both; a stale ``server.json`` whose pid now belongs
to another process (pids are reused) is reported and removed, and that process is never signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from physdiff.errors import PhysdiffError, run_cli
from physdiff.extras import require_distribution
from physdiff.fileio import atomic_write_json
from physdiff.paths import data_root

STATE_FILE = "server.json"
LOG_FILE = "server.log"


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when ``host:port`` cannot be bound now (another server holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _last_error_line(log_text: str) -> str:
    """The most telling line of a failed server's log: its last ERROR line, else its last line."""
    lines = [l.strip() for l in log_text.splitlines() if l.strip()]
    errors = [l for l in lines if "ERROR" in l or "Error" in l]
    return (errors or lines or ["(empty log)"])[-1]


def health(uri: str, timeout: float = 2.0) -> bool:
    """True when the server answers ``GET /health`` with 200."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (PID 1 here does not reap) still answers kill(0); look at its state.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def proc_start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # field 2 (comm) is in parentheses and may hold spaces: split after its closing one (fields 3...)
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[22 - 3])


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def is_recorded_server(st: dict[str, Any]) -> tuple[bool, str]:
    """(True, "") when the live process ``st["pid"]`` is the server ``st`` recorded, else (False, why not).

    Both must hold: the same start time (a reused pid has a later one) and a command line ending with the
    recorded one (the ``mlflow`` script runs under the interpreter of its ``#!`` line, which comes first).
    """
    pid = int(st["pid"])
    if not _pid_alive(pid):
        return False, f"pid {pid} is not running"
    ticks, cmd = st.get("start_ticks"), st.get("cmdline")
    if ticks is None or not cmd:
        return False, (f"{STATE_FILE} has no process identity (written by an older physdiff); check pid {pid} "
                       f"yourself and remove the file")
    live_ticks, live_cmd = proc_start_ticks(pid), proc_cmdline(pid) or []
    if live_ticks != int(ticks):
        return False, f"pid {pid} started at tick {live_ticks}, the server at tick {ticks}: {' '.join(live_cmd)[:200]!r}"
    if live_cmd[-len(cmd):] != list(cmd):
        return False, f"pid {pid} runs {' '.join(live_cmd)[:200]!r}, not {' '.join(cmd)[:200]!r}"
    return True, ""


def check_address(host: str, port: int) -> None:
    """One-line errors for a port outside 0-65535 or a host that does not resolve or is not this machine's."""
    if not 0 <= int(port) <= 65535:
        raise PhysdiffError(f"--port {port}: a TCP port is 0-65535 (0 = a free one)")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise PhysdiffError(f"--host {host!r} does not resolve ({e}); use 127.0.0.1 (this machine) or an address of it") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr[0], 0))
        except OSError as e:
            raise PhysdiffError(f"--host {host!r} ({addr[0]}) is not an address of this machine ({e.strerror}); "
                                "use 127.0.0.1, 0.0.0.0 or one of this machine's addresses") from None


def read_state(state_dir: Path) -> dict[str, Any] | None:
    f = state_dir / STATE_FILE
    if not f.exists():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise PhysdiffError(f"{f}: not valid JSON ({e}); remove it if no server is running") from None


def start_server(
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    backend_store_uri: str = "",
    artifacts_destination: str = "",
    workers: int = 1,
    allowed_hosts: str = "",
    wait_s: float = 90.0,
) -> dict[str, Any]:
    """Start ``mlflow server`` detached in its own process group; wait for /health; return its state.

    ``port=0`` picks a free port. Empty ``backend_store_uri`` / ``artifacts_destination`` mean the
    data folder's SQLite store and artifact folder (the trainers' embedded default).
    """
    # [extras] the core's mlflow-skinny tracks into SQLite but cannot serve: the server is the 'server' extra.
    require_distribution("mlflow", extra="server", feature="physdiff mlflow start (the MLflow tracking server)")
    state_dir = Path(state_dir)
    check_address(host, port)
    if workers < 1:
        raise PhysdiffError(f"--workers must be >= 1, got {workers}")
    if state_dir.exists() and not state_dir.is_dir():
        raise PhysdiffError(f"--state {state_dir} exists and is not a folder")
    state_dir.mkdir(parents=True, exist_ok=True)
    old = read_state(state_dir)
    if old and is_recorded_server(old)[0]:
        if health(old["uri"]):
            return old | {"reused": True}
        raise PhysdiffError(f"an MLflow server (pid {old['pid']}) from {state_dir} is running but unhealthy; "
                            f"run `physdiff mlflow stop --state {state_dir}` first")
    root = data_root()
    if not backend_store_uri:
        root.mkdir(parents=True, exist_ok=True)
        backend_store_uri = f"sqlite:///{root / 'mlflow.db'}"
    if not artifacts_destination:
        artifacts_destination = str(root / "mlartifacts")
    if "://" not in artifacts_destination:
        Path(artifacts_destination).mkdir(parents=True, exist_ok=True)
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if mlflow_bin is None:
        raise PhysdiffError("the `mlflow` command is not installed in this environment (pip install 'physdiff[server]')")
    bind_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    # uvicorn reports a taken port in its log and then exits 0: check first, and say so plainly.
    if port and port_in_use(host, port):
        raise PhysdiffError(f"port {port} on {bind_host} is already in use; pick another --port or omit it")
    port = port or free_port(bind_host)
    cmd = [
        mlflow_bin, "server",
        "--backend-store-uri", backend_store_uri,
        "--serve-artifacts", "--artifacts-destination", artifacts_destination,
        "--host", host, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    log = (state_dir / LOG_FILE).open("ab")
    # Own session = own process group: `stop` signals the group, reaching every server worker.
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    uri = f"http://{shown_host}:{port}"
    state = {
        "pid": proc.pid, "pgid": proc.pid, "uri": uri, "host": host, "port": port,
        "backend_store_uri": backend_store_uri, "artifacts_destination": artifacts_destination,
        "log": str(state_dir / LOG_FILE), "started": time.time(),
        # the identity stop/status check before acting on the pid (set at fork, unchanged by exec)
        "start_ticks": proc_start_ticks(proc.pid), "cmdline": cmd,
    }  # fmt: skip
    atomic_write_json(state_dir / STATE_FILE, state)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = _last_error_line((state_dir / LOG_FILE).read_text(errors="replace")[-4000:])
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            raise PhysdiffError(f"mlflow server exited with code {proc.returncode} before answering /health "
                                f"({why}); full log {state_dir / LOG_FILE}")
        if health(uri):
            return state
        time.sleep(0.5)
    stop_server(state_dir)
    raise PhysdiffError(f"mlflow server did not answer {uri}/health within {wait_s:.0f} s; see {state_dir / LOG_FILE}")


def direct_artifact_experiments(uri: str) -> list[tuple[str, str]]:
    """(name, location) of the store's experiments whose artifacts bypass the server's proxy.

    An experiment created by the embedded store (a trainer without a server) keeps the local
    ``file://`` artifact location it was given; served later, its clients still write artifacts
    there directly instead of through the proxy. Harmless on one machine (the same folder), wrong
    for nodes without that filesystem. Experiments created through a server get ``mlflow-artifacts:``.
    """
    from mlflow.tracking import MlflowClient

    exps = MlflowClient(uri).search_experiments()
    return [(e.name, e.artifact_location) for e in exps
            if e.artifact_location.startswith("file:") or e.artifact_location.startswith("/")]


def stop_server(state_dir: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the server's process group, SIGKILL after ``timeout``; returns False if none was running.

    Only the process ``server.json`` recorded is signalled (see the module docstring): a dead server's
    state file is removed (False); one whose pid another process now holds is removed and refused with a
    PhysdiffError naming that process.
    """
    state_dir = Path(state_dir)
    st = read_state(state_dir)
    if st is None:
        return False
    ours, why = is_recorded_server(st)
    if not ours:
        if not _pid_alive(int(st["pid"])):
            (state_dir / STATE_FILE).unlink(missing_ok=True)
            return False
        if st.get("start_ticks") is not None and st.get("cmdline"):
            (state_dir / STATE_FILE).unlink(missing_ok=True)  # its server is gone: the pid was reused
            raise PhysdiffError(f"not signalling: {state_dir / STATE_FILE} was stale ({why}); "
                                "the server it recorded is gone, the stale file was removed")
        raise PhysdiffError(f"not signalling pid {st['pid']}: {why}")
    pgid = int(st["pgid"])
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(int(st["pid"])):
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)  # stragglers (workers that ignored SIGTERM)
    except ProcessLookupError:
        pass
    try:  # reap it if we are its parent (tests start and stop in one process)
        os.waitpid(int(st["pid"]), os.WNOHANG)
    except ChildProcessError:
        pass
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    from physdiff.cli.common import parser

    p = parser("physdiff mlflow", __doc__)
    p.add_argument("action", choices=("start", "stop", "status", "uri"), help="what to do with the server")
    p.add_argument("--state", default="", help="folder for pid/URI/log (default: <data>/mlflow-server)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="the data folder whose SQLite store and artifacts are served (default: $PHYSDIFF_DATA or ./data)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--backend-store-uri", default="", help="database URI (default: sqlite:///<data>/mlflow.db; "
                   "postgresql://user@host/db on a cluster)")
    p.add_argument("--artifacts-destination", default="", help="where proxied artifacts are stored (default <data>/mlartifacts)")
    p.add_argument("--workers", type=int, default=1, help="server worker processes (default: 1)")
    p.add_argument("--allowed-hosts", default="", help="MLflow's Host-header allow list, needed when binding beyond localhost")
    p.add_argument("--wait", type=float, default=90.0, help="seconds to wait for /health")
    a = p.parse_args(argv)
    if a.data_root:
        os.environ["PHYSDIFF_DATA"] = str(Path(a.data_root).expanduser().resolve())
    state_dir = Path(a.state) if a.state else data_root() / "mlflow-server"
    if a.action == "start":
        check_address(a.host, a.port)
        if a.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: binding the MLflow server to {a.host}: anyone who reaches this port can read and "
                  "write runs; use it inside a trusted cluster network only", file=sys.stderr)
        st = start_server(state_dir, host=a.host, port=a.port, backend_store_uri=a.backend_store_uri,
                          artifacts_destination=a.artifacts_destination, workers=a.workers,
                          allowed_hosts=a.allowed_hosts, wait_s=a.wait)
        what = "already running" if st.get("reused") else "started"
        print(f"mlflow server {what} (pid {st['pid']}, backend {st['backend_store_uri']}, log {st['log']})", file=sys.stderr)
        print(f"  UI: open {st['uri']} ; trainers: tracking.tracking_uri={st['uri']} (or MLFLOW_TRACKING_URI)", file=sys.stderr)
        direct = direct_artifact_experiments(st["uri"])
        if direct:
            names = ", ".join(f"{n!r} ({loc})" for n, loc in direct)
            print(f"  note: {len(direct)} experiment(s) made by the embedded store write artifacts directly, not through "
                  f"this server's proxy: {names}. Fine on this machine; for many nodes use a fresh "
                  "--backend-store-uri or another tracking.experiment.", file=sys.stderr)
        print(st["uri"])
        return 0
    if a.action == "stop":
        ok = stop_server(state_dir)
        print("stopped" if ok else f"no server recorded in {state_dir}")
        return 0
    st = read_state(state_dir)
    if st is None or not is_recorded_server(st)[0]:
        why = "" if st is None else f": {is_recorded_server(st)[1]}"
        print(f"no server running (state folder {state_dir}){why}", file=sys.stderr)
        return 1
    if a.action == "uri":
        print(st["uri"])
        return 0
    print(json.dumps(st | {"healthy": health(st["uri"])}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
