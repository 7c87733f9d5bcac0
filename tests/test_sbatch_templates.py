"""The sbatch templates in ``slurm/``, submitted for real with ``sbatch`` on the local one-node SLURM.

* ``slurm/train_cpu.sbatch``: a 2-rank gloo prior run (torchrun under srun) in a temporary data folder.
* ``slurm/ray_sweep.sbatch``: a Ray head inside the allocation (srun step), the sweep driver joining it
  with ``--address``, and a 2-trial Fig. 5a sweep writing its results table.
* ``slurm/train.sbatch`` (GPUs, many nodes) and the multi-node path of ``ray_sweep.sbatch`` cannot run
  here: they are rendered under fake SLURM variables for 2 nodes x 8 GPUs with ``srun`` (and Ray, the
  interpreter) replaced by stubs on PATH that record their arguments; the real ``scontrol`` expands
  the node list.

No sacct here (no slurmdbd): a job is done when ``squeue -h -j ID`` no longer lists it, and its state
and exit code come from ``scontrol show job`` (kept for MinJobAge = 300 s after the end).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from physdiff.launch.slurm import RENDEZVOUS_PORT_BASE, RENDEZVOUS_PORT_SPAN, rendezvous_port
from tests.sweeps.world import build_debug_shards, clean_env

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slurm]


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated debug world's shards (shards/synth.py + shards/build.py), once for this module."""
    return build_debug_shards(tmp_path_factory.mktemp("sbatch-world"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _has_ray_client() -> bool:
    try:
        from ray._private.utils import get_ray_client_dependency_error
    except ImportError:
        return False
    return get_ray_client_dependency_error() is None


def _sbatch(args: list[str], env: dict[str, str]) -> str:
    p = subprocess.run(["sbatch", "--parsable", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"sbatch failed: {p.stdout}\n{p.stderr}"
    return p.stdout.strip().split(";")[0]


def _job_info(job: str) -> dict[str, str]:
    p = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w+)=(\S+)", p.stdout))


def _wait_job(job: str, log: Path, timeout: float) -> dict[str, str]:
    """Poll until the job leaves the queue; scancel it (ours) on timeout. Returns ``scontrol show job``."""
    deadline = time.time() + timeout
    while True:
        q = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, timeout=30)
        if q.returncode == 0 and not q.stdout.strip():
            break
        if time.time() > deadline:
            subprocess.run(["scancel", job], capture_output=True, timeout=30)
            tail = log.read_text()[-4000:] if log.exists() else "(no log)"
            pytest.fail(f"job {job} still queued/running after {timeout:.0f} s; log tail:\n{tail}")
        time.sleep(1)
    return _job_info(job)


def _assert_ok(job: str, info: dict[str, str], log: Path) -> str:
    text = log.read_text() if log.exists() else ""
    assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", (
        f"job {job}: {info.get('JobState')} exit {info.get('ExitCode')}; log tail:\n{text[-6000:]}")
    return text


# ----------------------------------------------------------------------------- real jobs


@pytest.mark.timeout(600)
def test_train_cpu_sbatch_runs_two_gloo_ranks(slurm_cluster: dict, shards: Path, tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "train.out"
    # LOGLEVEL=INFO: torchrun logs its rendezvous result (ranks and world sizes) into the job log.
    env = clean_env(data, PYTHON=sys.executable, LOGLEVEL="INFO")
    export = f"ALL,PHYSDIFF_DATA={data},PYTHON={sys.executable},LOGLEVEL=INFO"
    t0 = time.time()
    job = _sbatch(["-p", slurm_cluster["partition"], "--cpus-per-task=2", "--time=15", "-o", str(log),
                   f"--export={export}", "slurm/train_cpu.sbatch", "2",
                   "--stage", "prior", "--preset", "debug", f"train.shards={shards}", "train.epochs=2",
                   "train.batches_per_epoch=3", "train.checkpoint_every=2", "loader.batch_size=2",
                   "tracking.enabled=false", "train.progress=false"], env)
    text = _assert_ok(job, _wait_job(job, log, timeout=400), log)
    print(f"train_cpu.sbatch job {job}: {time.time() - t0:.1f} s from submit to end")

    assert f"job {job}: 2 gloo process(es)" in text, text[-3000:]
    assert "global_ranks=[0, 1]" in text and "global_world_sizes=[2, 2]" in text, text[-6000:]
    res = json.loads(text.split("PHYSDIFF_RESULT ", 1)[1].splitlines()[0])
    assert res["status"] == "finished" and res["epoch"] == 2
    run_dir = Path(res["run_dir"])
    assert run_dir.parent == data / "runs" and run_dir.name.startswith("prior-")
    assert json.loads((run_dir / "config.json").read_text())["train"]["epochs"] == 2
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["world_size"] == 2 and done["step"] == res["step"]

    from physdiff.training import checkpoint as ck

    last = ck.latest_checkpoint(run_dir / "checkpoints")
    assert last is not None and last.path.name == f"step_{res['step']:08d}"
    meta = json.loads((last.path / "meta.json").read_text())  # the JSON sidecar
    assert meta["world_size"] == 2 and meta["step"] == res["step"]
    assert (last.path / "COMPLETE").exists()
    assert {p.name for p in last.path.glob("rng_rank*.pt")} == {"rng_rank0.pt", "rng_rank1.pt"}


@pytest.mark.timeout(900)
def test_ray_sweep_sbatch_runs_the_driver_on_the_allocations_ray(
    slurm_cluster: dict, shards: Path, tmp_path: Path
) -> None:
    data, log = tmp_path / "data", tmp_path / "sweep.out"
    port = _free_port()
    name = "sbatch-sweep"
    extra = {"PYTHON": sys.executable, "RAY_PORT": str(port), "SWEEP_NAME": name}
    if _has_ray_client():  # the head would take Ray Client's default port 10001: give it a free one
        extra["RAY_CLIENT_PORT"] = str(_free_port())
    env = clean_env(data, **extra)
    export = ",".join(["ALL", f"PHYSDIFF_DATA={data}", "RAY_AUTH_MODE=disabled", "OMP_NUM_THREADS=1",
                       *(f"{k}={v}" for k, v in extra.items())])
    t0 = time.time()
    # One node, no GPUs, the node's 2 CPUs (the template asks for 2 nodes x 8 GPUs x 64 CPUs).
    job = _sbatch(["-p", slurm_cluster["partition"], "--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2",
                   "--time=30", "-o", str(log), f"--export={export}", "slurm/ray_sweep.sbatch",
                   "--preset", "debug", "--dims", "0,25", "--lr", "1e-3", "--max-concurrent", "2",
                   "--grace-period", "1", f"train.shards={shards}", "train.epochs=2", "train.batches_per_epoch=3",
                   "loader.batch_size=2"], env)
    info = _wait_job(job, log, timeout=800)
    text = _assert_ok(job, info, log)
    print(f"ray_sweep.sbatch job {job}: {time.time() - t0:.1f} s from submit to end")

    header = rf"\[ray_sweep\] job {job} \(restart 0\): 1 node\(s\) \S+, head \S+:{port}, 2 CPUs \+ 0 GPUs"
    assert re.search(header, text), text[-4000:]
    assert "Ray runtime started" in text, text[-4000:]          # `ray start --head` in the srun step
    assert "[ray_sweep] 1 of 1 node(s) joined" in text, text[-4000:]
    # The driver joins the job's cluster through --address (Ray answers with the head's node IP: on
    # Linux it replaces 127.0.0.1 with the outbound interface's address).
    assert re.search(rf"Connecting to existing Ray cluster at address: \S+:{port}\.\.\.", text), text[-6000:]
    assert "Connected to Ray cluster." in text, text[-6000:]
    assert "Started a local Ray instance" not in text, text[-6000:]
    assert "[ray_sweep] driver exited with 0" in text, text[-4000:]

    sweep = data / "sweeps" / name
    setup = json.loads((sweep / "sweep.json").read_text())
    assert setup["gpus_per_trial"] == 0 and setup["cpus_per_trial"] == 1
    for f in ("results.csv", "results.md", "fig5a.png"):
        assert (sweep / f).stat().st_size > 0, f
    assert (sweep / "tune").is_dir()
    with (sweep / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(int(r["M"]) for r in rows) == [0, 25], rows
    for r in rows:
        assert r["status"] == "finished" and int(r["epochs"]) == 2 and float(r["best_loss"]) > 0, r
        assert r["mlflow_run_id"] and (Path(r["run_dir"]) / "DONE.json").exists(), r
    from mlflow.tracking import MlflowClient  # each trial a child run of the sweep's parent run

    client = MlflowClient(setup["tracking_uri"])
    exp = client.get_experiment_by_name(setup["experiment"])
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{setup['parent_run_id']}'")
    assert {c.info.run_id for c in children} == {r["mlflow_run_id"] for r in rows}

    # The EXIT trap stopped the Ray step and removed the job's Ray temp folder; nothing of it is left.
    tmp = Path(f"/tmp/ray-{job}")
    deadline = time.time() + 30
    while time.time() < deadline:
        left = subprocess.run(["pgrep", "-f", f"{tmp}/"], capture_output=True, text=True).stdout.split()
        if not left and not tmp.exists():
            break
        time.sleep(1)
    assert not tmp.exists(), f"{tmp} left behind"
    assert not left, f"Ray processes of job {job} left behind: {left}"


# ----------------------------------------------------------------------------- rendered (stubs)

STUB = """#!/bin/bash
# record the call (a header line, then one argument per line) in one write: steps run concurrently
rec="== $(basename "$0")"$'\\n'
for a in "$@"; do rec+="$a"$'\\n'; done
printf '%s' "$rec" >> "$STUB_LOG"
"""


def _stub(bin_dir: Path, name: str, body: str = "") -> None:
    p = bin_dir / name
    p.write_text(STUB + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _calls(log: Path) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for block in log.read_text().split("== ")[1:]:
        lines = block.rstrip("\n").split("\n")
        out.append((lines[0], lines[1:]))
    return out


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def _render_env(tmp_path: Path, bin_dir: Path, **slurm: str) -> dict[str, str]:
    keep = ("HOME", "LANG", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", STUB_LOG=str(tmp_path / "calls.log"), **slurm)
    return env


TWO_BY_EIGHT = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]",
                "SLURM_GPUS_ON_NODE": "8", "SLURM_CPUS_PER_TASK": "64", "SLURM_RESTART_COUNT": "0"}


@pytest.fixture
def scontrol() -> str:
    path = shutil.which("scontrol")
    if path is None:
        pytest.skip("scontrol not installed (it expands the node list)")
    return path


@pytest.mark.timeout(120)
def test_train_sbatch_renders_one_torchrun_per_node_with_rendezvous_on_the_first(tmp_path: Path, scontrol: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # srun stands in for the job step: it records its command and runs until SIGTERM (scancel).
    _stub(bin_dir, "srun", 'echo $$ > "$STUB_LOG.srun.pid"\nexec sleep 60\n')
    _stub(bin_dir, "scancel", 'kill -TERM "$(cat "$STUB_LOG.srun.pid")"\n')
    _stub(bin_dir, "scontrol", f'if [ "$1" = show ]; then exec {scontrol} "$@"; fi\n')
    (tmp_path / ".venv" / "bin").mkdir(parents=True)  # the submit folder's venv is the default interpreter
    _stub(tmp_path / ".venv" / "bin", "python")
    env = _render_env(tmp_path, bin_dir, **TWO_BY_EIGHT)
    cmd = ["bash", str(REPO / "slurm/train.sbatch"), "--stage", "prior", "--preset", "paper", "train.epochs=20"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "calls.log"
    deadline = time.time() + 30
    while not Path(f"{log}.srun.pid").exists():
        assert time.time() < deadline and proc.poll() is None, "train.sbatch never called srun"
        time.sleep(0.1)
    while not _catches(proc.pid, signal.SIGUSR2):  # the trap is installed right after srun starts
        assert time.time() < deadline and proc.poll() is None, "train.sbatch never trapped USR2"
        time.sleep(0.05)
    try:
        proc.send_signal(signal.SIGUSR2)  # the time-limit warning: checkpoint (TERM to the steps), then requeue
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    calls = _calls(log)
    assert calls[0] == ("scontrol", ["show", "hostnames", "gpu[07-08]"]), calls
    calls = calls[1:]
    assert [c[0] for c in calls] == ["srun", "scancel", "scontrol"], (calls, out)
    srun = calls[0][1]
    assert srun[:3] == ["--kill-on-bad-exit=1", "--cpus-per-task=64", ".venv/bin/python"], srun
    assert srun[3:5] == ["-m", "torch.distributed.run"], srun
    assert "--nnodes=2" in srun and "--nproc_per_node=8" in srun, srun
    assert "--rdzv_backend=c10d" in srun and "--rdzv_id=4242" in srun, srun
    assert f"--rdzv_endpoint=gpu07:{rendezvous_port(4242)}" in srun, srun  # the launcher's own rule
    i = srun.index("physdiff.launch.worker")
    assert srun[i - 1] == "-m" and srun[i + 1:] == ["--stage", "prior", "--preset", "paper", "train.epochs=20"], srun
    assert "2 node(s) x 8 GPU(s), rendezvous gpu07:24242" in out, out
    assert calls[1][1] == ["--signal=TERM", "4242"] and calls[2][1] == ["requeue", "4242"], calls
    assert "caught USR2" in out, out


@pytest.mark.timeout(120)
def test_train_sbatch_reads_typed_and_annotated_gpu_counts(tmp_path: Path, scontrol: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "srun")
    _stub(bin_dir, "scontrol", f'if [ "$1" = show ]; then exec {scontrol} "$@"; fi\n')
    for name, value, expect in (("SLURM_GPUS_PER_NODE", "h100:4", "4"), ("SLURM_GPUS_ON_NODE", "8(IDX:0-7)", "8")):
        slurm = {k: v for k, v in TWO_BY_EIGHT.items() if k != "SLURM_GPUS_ON_NODE"}
        env = _render_env(tmp_path, bin_dir, PYTHON="/opt/env/bin/python", **slurm, **{name: value})
        (tmp_path / "calls.log").unlink(missing_ok=True)
        p = subprocess.run(["bash", str(REPO / "slurm/train.sbatch")], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 0, p.stdout + p.stderr
        (call,) = [c for c in _calls(tmp_path / "calls.log") if c[0] == "srun"]
        assert "/opt/env/bin/python" in call[1] and f"--nproc_per_node={expect}" in call[1], call


@pytest.mark.timeout(120)
def test_ray_sweep_sbatch_renders_head_worker_and_driver_for_two_nodes(tmp_path: Path, scontrol: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # srun: `hostname --ip-address` answers the head's address; `ray start --block` runs until killed.
    _stub(bin_dir, "srun", 'case " $* " in *" hostname "*) echo "10.1.2.7 fe80::1";; '
                           '*" --block "*) exec sleep 60;; esac\n')
    _stub(bin_dir, "scontrol", f'if [ "$1" = show ]; then exec {scontrol} "$@"; fi\n')
    # The interpreter: its own path for sys.executable, 2 alive nodes for the join check, else the driver.
    _stub(bin_dir, "python", 'case "$2" in *sys.executable*) echo "$0";; *ray.nodes*) echo 2;; esac\n')
    _stub(bin_dir, "ray")
    env = _render_env(tmp_path, bin_dir, PYTHON="python", RAY_PORT="6390", SWEEP_NAME="fig5a-test",
                      PHYSDIFF_DATA=str(tmp_path / "data"), RAY_TMPDIR=str(tmp_path / "raytmp"), **TWO_BY_EIGHT)
    p = subprocess.run(["bash", str(REPO / "slurm/ray_sweep.sbatch"), "--preset", "tiny", "--dims", "0,10"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 node(s) gpu07 gpu08, head 10.1.2.7:6390, 64 CPUs + 8 GPUs each" in p.stdout, p.stdout
    assert "[ray_sweep] 2 of 2 node(s) joined" in p.stdout, p.stdout

    calls = [(n, a) for n, a in _calls(tmp_path / "calls.log") if not (n == "python" and a[0] == "-c")]
    steps = [a for n, a in calls if n == "srun"]
    ray = str(bin_dir / "ray")
    # The head and worker steps run concurrently (their records may come in either order).
    assert len(steps) == 4, steps
    assert steps[0][:4] == ["--nodes=1", "--ntasks=1", "-w", "gpu07"] and steps[0][4:] == ["hostname", "--ip-address"]
    (head,) = [a for a in steps if "--head" in a]
    (worker,) = [a for a in steps if "start" in a and "--head" not in a]
    assert head[:5] == ["--nodes=1", "--ntasks=1", "-w", "gpu07", "--cpus-per-task=64"]
    assert head[5:8] == [ray, "start", "--head"], head
    for flag in ("--node-ip-address=10.1.2.7", "--port=6390", "--num-cpus=64", "--num-gpus=8",
                 f"--temp-dir={tmp_path / 'raytmp'}", "--block"):
        assert flag in head, (flag, head)
    assert not any(a.startswith("--ray-client-server-port") for a in head), head  # Ray's default unless RAY_CLIENT_PORT
    assert worker[:5] == ["--nodes=1", "--ntasks=1", "-w", "gpu08", "--cpus-per-task=64"]
    assert worker[5:7] == [ray, "start"], worker
    for flag in ("--address=10.1.2.7:6390", "--num-cpus=64", "--num-gpus=8", f"--temp-dir={tmp_path / 'raytmp'}",
                 "--block"):
        assert flag in worker, (flag, worker)
    # cleanup: the workers' temp folders, one task per node
    assert steps[-1] == ["--nodes=2", "--ntasks-per-node=1", "rm", "-rf", str(tmp_path / "raytmp")], steps
    assert ("ray", ["status", "--address", "10.1.2.7:6390"]) in calls
    (driver,) = [a for n, a in calls if n == "python"]
    assert driver == ["-m", "physdiff", "sweep", "residual-dims", "--address", "10.1.2.7:6390", "--name", "fig5a-test",
                      "--gpus-per-trial", "1", "--cpus-per-trial", "8", "--preset", "tiny", "--dims", "0,10"], driver


@pytest.mark.timeout(120)
def test_ray_sweep_sbatch_fails_fast_when_the_head_dies(tmp_path: Path, scontrol: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(bin_dir, "srun", 'case " $* " in *" hostname "*) echo 10.1.2.7;; *" --head "*) exit 1;; esac\n')
    _stub(bin_dir, "scontrol", f'if [ "$1" = show ]; then exec {scontrol} "$@"; fi\n')
    _stub(bin_dir, "python", 'case "$2" in *sys.executable*) echo "$0";; esac\n')
    _stub(bin_dir, "ray", 'sleep 1; exit 1\n')  # `ray status`: nothing serves the address
    env = _render_env(tmp_path, bin_dir, PYTHON="python", PHYSDIFF_DATA=str(tmp_path / "data"),
                      RAY_TMPDIR=str(tmp_path / "raytmp"), **TWO_BY_EIGHT)
    t0 = time.time()
    p = subprocess.run(["bash", str(REPO / "slurm/ray_sweep.sbatch")], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 1 and "the Ray head exited before serving 10.1.2.7:6379" in p.stderr, p.stdout + p.stderr
    assert time.time() - t0 < 30
    assert not [a for n, a in _calls(tmp_path / "calls.log") if n == "python" and a[0] != "-c"]  # no driver


def test_rendezvous_ports_stay_below_the_ephemeral_range() -> None:
    """A job's MASTER_PORT never lands where an outgoing connection on the node may hold it (32768-60999)."""
    ports = [rendezvous_port(j) for j in (0, 1, 4242, 11999, 12000, 32767, 10**6 + 7)]
    assert all(20000 <= p < 32768 for p in ports), ports
    assert RENDEZVOUS_PORT_BASE + RENDEZVOUS_PORT_SPAN <= 32768
    assert rendezvous_port(9) != rendezvous_port(10)  # two jobs of one pipeline on a shared node
