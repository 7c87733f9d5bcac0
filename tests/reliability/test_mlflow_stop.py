"""``physdiff mlflow stop`` signals only the server it started: a reused pid in a stale ``server.json`` is left alone.

A stranger process (``sleep`` in its own session, so it leads its own process group like the server did)
stands in for whatever got the dead server's pid. The stale state file names its pid and group with the
server's recorded identity (another start time, the ``mlflow server`` command line): ``stop`` must refuse
in one line, remove the stale file, and the stranger must live on. With the identity of the live process
itself (what ``start`` records), ``stop`` ends its whole process group. ``status`` says the same.
The real server's start / stop is tests/tracking/test_mlflow_server.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.conftest import REPO, env1

STATE_FILE = "server.json"


def proc_start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (read here, independently of the code under test)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def proc_cmdline(pid: int) -> list[str]:
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]


def _stranger() -> subprocess.Popen:
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    for _ in range(100):  # until the exec happened (the command line is sleep's)
        if (proc_cmdline(p.pid) or [""])[0] == "sleep":
            break
        time.sleep(0.02)
    return p


def _state(folder: Path, pid: int, ticks: int, cmdline: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    st = {"pid": pid, "pgid": pid, "uri": "http://127.0.0.1:1", "host": "127.0.0.1", "port": 1, "started": 0,
          "backend_store_uri": "sqlite:///x.db", "artifacts_destination": "x", "log": str(folder / "server.log"),
          "start_ticks": ticks, "cmdline": cmdline}
    (folder / STATE_FILE).write_text(json.dumps(st))
    return folder / STATE_FILE


def _mlflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "cluster/mlflow_server.py", *args], cwd=REPO, env=env1(), capture_output=True,
                          text=True, timeout=120)


def test_stop_does_not_kill_a_process_that_reused_the_servers_pid(tmp_path: Path) -> None:
    stranger = _stranger()
    try:
        server_cmd = ["/venv/bin/mlflow", "server", "--host", "127.0.0.1", "--port", "5000"]
        state = _state(tmp_path / "srv", stranger.pid, proc_start_ticks(stranger.pid) - 500, server_cmd)
        st = _mlflow("status", "--state", str(tmp_path / "srv"))
        assert st.returncode == 1 and "no server running" in st.stderr, st.stderr
        p = _mlflow("stop", "--state", str(tmp_path / "srv"))
        time.sleep(0.3)
        assert stranger.poll() is None, "stop killed a process that was not its server"
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        line = p.stderr.strip().splitlines()[-1]
        assert line.startswith("error: not signalling") and "stale" in line and str(stranger.pid) in line, line
        assert not state.exists()  # the stale file is gone: the next start is not confused by it
        # Same start time but another command line (e.g. a pid namespace reused differently): refused as well.
        _state(tmp_path / "srv2", stranger.pid, proc_start_ticks(stranger.pid), server_cmd)
        p2 = _mlflow("stop", "--state", str(tmp_path / "srv2"))
        assert p2.returncode == 2 and "not signalling" in p2.stderr and stranger.poll() is None, p2.stderr
        # A state file from before identities were recorded: refused, the process is not signalled.
        legacy = json.loads(_state(tmp_path / "srv3", stranger.pid, 0, []).read_text())
        legacy.pop("start_ticks"), legacy.pop("cmdline")
        (tmp_path / "srv3" / STATE_FILE).write_text(json.dumps(legacy))
        p3 = _mlflow("stop", "--state", str(tmp_path / "srv3"))
        assert p3.returncode == 2 and "no process identity" in p3.stderr and stranger.poll() is None, p3.stderr
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_ends_the_recorded_process_group(tmp_path: Path) -> None:
    """The identity check accepts the process ``start`` recorded (here a stand-in with its real identity)."""
    proc = _stranger()
    child = subprocess.run(["bash", "-c", f"ps -o pid= -g {proc.pid}"], capture_output=True, text=True).stdout.split()
    assert str(proc.pid) in child
    _state(tmp_path / "srv", proc.pid, proc_start_ticks(proc.pid), proc_cmdline(proc.pid))
    p = _mlflow("stop", "--state", str(tmp_path / "srv"))
    assert p.returncode == 0 and p.stdout.strip() == "stopped", p.stderr
    assert proc.wait(timeout=30) is not None  # SIGTERM reached it
    assert not (tmp_path / "srv" / STATE_FILE).exists()
