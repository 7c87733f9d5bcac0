"""Running the real ``python -m physdiff.listen`` command in tests: create, serve (a subprocess on a free
loopback port), report; and Debian's chromium for the browser test."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def listen(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m physdiff.listen ARGS`` in the repo; its CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "physdiff.listen", *args], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def create(study: Path, runs: dict[str, Path], *extra: str) -> Path:
    args = ["create", "--study", str(study)]
    for name, run in runs.items():
        args += ["--run", f"{name}={run}"]
    p = listen(*args, *extra)
    assert p.returncode == 0, p.stderr
    return study


class Server:
    """``listen serve --port 0`` as a subprocess; ``url`` from its first stdout line. Stopped by its own pid."""

    def __init__(self, study: Path, *extra: str, log: Path | None = None):
        self.log = log or study.parent / f"serve-{study.name}.log"
        self._err = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "physdiff.listen", "serve", "--study", str(study),
                                      "--port", "0", *extra], cwd=REPO, env=env(), stdout=subprocess.PIPE,
                                     stderr=self._err, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on http://"):
            self.stop()
            raise AssertionError(f"serve did not start: {line!r}\n{self.log.read_text()[-3000:]}")
        self.url = line.split(" ", 2)[2].rstrip("/")
        self.host, port = self.url.removeprefix("http://").split("/")[0].rsplit(":", 1)
        self.port = int(port)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        import urllib.request

        import urllib.error

        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as e:
                raise AssertionError(f"serve answers /healthz with {e.code}") from None
            except OSError:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.1)
        raise AssertionError(f"serve not answering after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._err.close()


def db_rows(study: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from the study's answers database, opened read-only (the oracle the tests check against)."""
    con = sqlite3.connect(f"file:{study / 'answers.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def ensure_chromium() -> str:
    """Debian's chromium: present, or installed with apt-get (root, ≈ 10 s, ≈ 400 MB); else a clear failure."""
    exe = shutil.which("chromium")
    if exe:
        return exe
    if os.geteuid() != 0:
        pytest.fail("the listening-study browser test needs Debian's `chromium`: "
                    "`sudo apt-get install -y --no-install-recommends chromium` (not root here, so the test cannot)")
    e = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], env=e, capture_output=True, text=True, timeout=600)
        p = subprocess.run(cmd, env=e, capture_output=True, text=True, timeout=600)
    exe = shutil.which("chromium")
    if not exe:
        pytest.fail(f"could not install chromium with apt-get (exit {p.returncode}):\n{p.stderr[-2000:]}")
    return exe
