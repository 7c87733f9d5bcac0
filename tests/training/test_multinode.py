"""Two "nodes" on loopback: ``slurm/train.sbatch`` run once per node, one rank each, as SLURM runs it.

What runs is the real multi-node entry: the template's own line ``srun python -m torch.distributed.run
--nnodes=2 --nproc_per_node=1 --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT --rdzv_id=JOB -m
physdiff.launch.worker ...`` (the file shipped as ``physdiff/launch/sbatch/train.sbatch``), started twice
as two node launches under fake SLURM variables. Only the SLURM client commands are stand-ins on PATH:
``srun`` runs its command in place (one job step on this "node"), ``scontrol show hostnames`` names
127.0.0.1 (the first node, where c10d rendezvous), ``scancel --signal=TERM`` signals this node's step
(what slurmstepd does on each node), ``scontrol requeue`` records the requeue.

* the 2 x 1 run's final weights equal a 1 node x 2 process run (``physdiff launch --cpu --procs 2``) of
  the same config: same global batch (2 ranks x loader.batch_size) and seed. Tolerance 0: on CPU in
  deterministic mode with one intra-op thread they are bitwise equal (a 2-rank gradient all-reduce
  adds the same two numbers in either order);
* the shards are split by node (``loader.train_shards=split``): a reader script under the same
  two-node rendezvous records what each rank read, and each node reads only its own shards, each
  once per epoch;
* preemption: USR2 to both batch shells mid-run (SLURM's ``--signal=B:USR2@120``); the template's trap
  sends SIGTERM to the node launchers (torchrun), whose workers agree on a step, checkpoint and exit;
  the template requeues; the relaunched nodes resume from the checkpoint and end bitwise equal to the
  uninterrupted run.

Time on the 2-core CI box: see docs/scaling.md ("Multi-node on one machine"); about 3-4 minutes for the
module, most of it process start-up (each launch imports torch in 2-3 processes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from physdiff.training import checkpoint as ck

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "physdiff" / "launch" / "sbatch" / "train.sbatch"

# The shards these tests read (part of the run hash) and the training settings: 3 epochs of 6 steps.
SHARDS = ["shards.samples_per_shard=3", "shards.shards_per_task=1"]
TRAIN = [*SHARDS, "loader.batch_size=2", "loader.num_workers=0", "loader.train_shards=split", "train.epochs=3",
         "train.log_every=1", "train.checkpoint_every=4", "tracking.enabled=false", "tracking.audio_examples=1",
         "train.progress=false"]
MATERIALS = ["wood", "metal", "glass", "ceramic", "rock", "plastic", "cloth", "drywall", "gravel", "leaf"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    # One intra-op thread in every run: another count changes float reduction order (last-bit differences).
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("PHYSDIFF_DATA", None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """7 training videos of 5 hits -> 10 training shards of 1-3 clips (unequal, as the writer's are), a
    validation and a test split; built once with the real shard builder."""
    from physdiff.config import resolve_config
    from physdiff.data.build import build_shards
    from physdiff.stages import shards_dir
    from tests.data.fixtures import VideoSpec, make_folder

    root = tmp_path_factory.mktemp("multinode")
    specs = [VideoSpec(f"2015-03-0{k}-10-00-00", [f"{0.25 + 0.3 * j:.6f} {MATERIALS[(k + j) % 10]} hit static"
                                                   for j in range(5)]) for k in range(1, 8)]
    specs.append(VideoSpec("2015-04-01-10-00-00", ["0.300000 wood hit static", "0.900000 metal hit static"], split="test"))
    cfg = resolve_config("debug", [f"paths.data_root={root}", *SHARDS])
    shards = shards_dir(cfg)
    build_shards(make_folder(root / "source", specs), shards, cfg, workers=1)
    man = json.loads((shards / "train" / "manifest.json").read_text())
    counts = [s["count"] for s in man["shards"]]
    assert len(counts) >= 8 and len(set(counts)) > 1, counts
    return {"shards": shards, "manifest": man, "common": [*TRAIN, f"train.shards={shards}"]}


def _fake_slurm(bin_dir: Path) -> Path:
    """Stand-ins for the SLURM client commands train.sbatch calls (see the module docstring)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    scripts = {
        # one job step on this node: drop srun's own options and become the command (the pid scancel signals)
        "srun": 'while [[ "$1" == --* ]]; do shift; done\n'
                'echo $$ > "$FAKE_SLURM_DIR/step-$FAKE_NODE.pid"\nexec "$@"\n',
        "scontrol": 'case "$1 $2" in\n'
                    # one write, as scontrol's: the template pipes it into head under pipefail
                    '  "show hostnames") printf "127.0.0.1\\n127.0.0.2\\n" ;;\n'
                    '  requeue*) echo "$FAKE_NODE $2" >> "$FAKE_SLURM_DIR/requeued" ;;\n'
                    '  *) echo "fake scontrol: $*" >&2; exit 1 ;;\nesac\n',
        "scancel": 'sig=KILL\nfor a in "$@"; do case "$a" in --signal=*) sig=${a#--signal=} ;; esac; done\n'
                   'echo "$FAKE_NODE $*" >> "$FAKE_SLURM_DIR/scancel"\n'
                   'kill -s "$sig" "$(cat "$FAKE_SLURM_DIR/step-$FAKE_NODE.pid")"\n',
    }
    for name, body in scripts.items():
        p = bin_dir / name
        p.write_text("#!/bin/bash\n" + body)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return bin_dir


class Nodes:
    """Two node launches of train.sbatch for one (fake) SLURM job: start, signal, wait."""

    def __init__(self, work: Path, job_id: int, port: int, args: list[str]) -> None:
        self.work, self.job_id, self.port, self.args = work, job_id, port, args
        self.bin = _fake_slurm(work / "bin")
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, restart: int = 0) -> None:
        self.procs, self.logs = [], []
        for node in range(2):
            log = self.work / f"node{node}-restart{restart}.out"
            env = _env(PATH=f"{self.bin}:{os.environ['PATH']}", PYTHON=sys.executable, FAKE_SLURM_DIR=str(self.work),
                       FAKE_NODE=str(node), SLURM_JOB_ID=str(self.job_id), SLURM_JOB_NODELIST="node[0-1]",
                       SLURM_JOB_NUM_NODES="2", SLURM_GPUS_ON_NODE="1", SLURM_CPUS_PER_TASK="1",
                       SLURM_NODEID=str(node), SLURM_RESTART_COUNT=str(restart), MASTER_PORT=str(self.port))
            with open(log, "w") as f:
                self.procs.append(subprocess.Popen(["bash", str(SBATCH), *self.args], cwd=REPO, env=env, stdout=f,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
            self.logs.append(log)

    def signal(self, sig: int) -> None:
        for p in self.procs:
            os.kill(p.pid, sig)

    def wait(self, timeout: float = 240) -> list[int]:
        deadline = time.time() + timeout
        try:
            return [p.wait(timeout=max(1.0, deadline - time.time())) for p in self.procs]
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("node launches still running after %.0f s:\n%s" % (timeout, self.tail()))

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def tail(self, n: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-n:]}" for log in self.logs if log.exists())

    def text(self) -> str:
        return "".join(log.read_text() for log in self.logs)


# ----------------------------------------------------------------------------- two nodes: training


def _worker_args(root: Path, common: list[str]) -> list[str]:
    return ["--stage", "prior", "--cpu", "--preset", "debug", f"paths.data_root={root}", *common]


def _result(text: str) -> dict:
    lines = [l for l in text.splitlines() if "PHYSDIFF_RESULT " in l]
    assert len(lines) == 1, text[-3000:]
    return json.loads(lines[0].split("PHYSDIFF_RESULT ", 1)[1])


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return ck.load_state(ck.latest_checkpoint(run_dir / "checkpoints").path)["model"]


def _assert_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and a
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k}: max |diff| {(a[k] - b[k]).abs().max():.3g}"


def _max_step(run_dir: Path) -> int:
    p = run_dir / "metrics.jsonl"
    rows = [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.exists() else []
    return max((r.get("step", 0) for r in rows), default=0)


@pytest.fixture(scope="module")
def reference(data: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """1 node x 2 processes through the front door: ``physdiff launch --stage prior --cpu --procs 2``."""
    root = tmp_path_factory.mktemp("ref")
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "physdiff", "launch", "--stage", "prior", "--cpu", "--procs", "2",
                        "--preset", "debug", "--data-root", str(root), *data["common"]],
                       capture_output=True, text=True, timeout=300, cwd=REPO, env=_env())
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = Path(next(l for l in p.stdout.splitlines() if l.startswith("run folder:")).split(":", 1)[1].strip())
    done = json.loads((run_dir / "DONE.json").read_text())
    print(f"1 x 2 reference: {time.time() - t0:.1f} s")
    return {"run_dir": run_dir, "done": done}


@pytest.mark.timeout(600)
def test_two_nodes_equal_one_node_two_processes(data: dict, reference: dict, tmp_path: Path) -> None:
    root = tmp_path / "data"
    nodes = Nodes(tmp_path, 4242, _free_port(), _worker_args(root, data["common"]))
    t0 = time.time()
    nodes.start()
    assert nodes.wait() == [0, 0], nodes.tail()
    print(f"2 x 1 run: {time.time() - t0:.1f} s")
    text = nodes.text()
    # The template's own line ran on each node: 2 nodes x 1 rank, c10d rendezvous on the first node's address.
    assert text.count("job 4242 restart 0: 2 node(s) x 1 GPU(s), rendezvous 127.0.0.1:") == 2, nodes.tail()
    res = _result(text)
    assert res["status"] == "finished" and res["epoch"] == 3
    run_dir = Path(res["run_dir"])
    assert run_dir.parent == root / "runs" and run_dir.name == reference["run_dir"].name  # same config, same hash
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["world_size"] == 2 == reference["done"]["world_size"]
    # split mode: the smallest rank's whole batches, not clips // (batch x ranks)
    from physdiff.data.reader import plan_split

    counts = [s["count"] for s in data["manifest"]["shards"] if s["count"] > 0]
    nb = plan_split(counts, 2, 2, 0, 0).batches
    assert done["step"] == reference["done"]["step"] == 3 * nb
    last = ck.latest_checkpoint(run_dir / "checkpoints")
    assert {p.name for p in last.path.glob("rng_rank*.pt")} == {"rng_rank0.pt", "rng_rank1.pt"}
    _assert_equal(_weights(reference["run_dir"]), _weights(run_dir))  # tolerance 0: bitwise
    from safetensors.torch import load_file

    _assert_equal(load_file(str(reference["run_dir"] / "export" / "model.safetensors")),
                  load_file(str(run_dir / "export" / "model.safetensors")))
    # The loss curves agree too (rank 0's all-reduced mean loss at every step).
    def losses(d: Path) -> list[float]:
        return [r["train/loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "train/loss" in r]
    assert losses(run_dir) == losses(reference["run_dir"]) and len(losses(run_dir)) == 3 * nb


# ----------------------------------------------------------------------------- the split plan, in process


@pytest.mark.parametrize("counts,ranks,workers,batch", [([64] * 156 + [16], 8, 4, 16), ([64] * 156 + [16], 32, 2, 16),
                                                        ([3, 2, 3, 2, 3, 2, 3, 1, 3, 3], 2, 0, 2), ([5, 1, 1, 1, 9], 3, 1, 1)])
def test_plan_split_partitions_and_balances(counts: list[int], ranks: int, workers: int, batch: int) -> None:
    from physdiff.data.reader import plan_split

    plan = plan_split(counts, batch, ranks, workers, seed=7)
    assert plan == plan_split(counts, batch, ranks, workers, seed=7)  # the same on every rank
    flat = sorted(i for r in plan.shards for w in r for i in w)
    assert flat == list(range(len(counts)))  # every shard to exactly one (rank, worker)
    loads = [sum(counts[i] for i in plan.rank_shards(r)) for r in range(ranks)]
    assert max(loads) - min(loads) <= max(counts)  # balanced by clips, within one shard
    for r in range(ranks):
        caps = [sum(counts[i] for i in w) // batch for w in plan.shards[r]]
        assert sum(plan.quotas[r]) == plan.batches and all(q <= c for q, c in zip(plan.quotas[r], caps))
    assert plan.batches == min(sum(sum(counts[i] for i in w) // batch for w in r) for r in plan.shards)
    assert plan.clips_per_epoch == plan.batches * batch * ranks <= sum(counts)


def test_plan_split_refuses_what_cannot_be_split() -> None:
    from physdiff.data.reader import plan_split, train_batches_per_epoch
    from physdiff.errors import DataError

    with pytest.raises(DataError, match=r"3 shard\(s\), 6 clips cannot give each of 4 rank\(s\).*samples_per_shard"):
        plan_split([2, 2, 2], 2, 4, 0, 0, where="split train under X")
    with pytest.raises(DataError, match="train.batches_per_epoch=9 .* holds 3 batch"):
        plan_split([2] * 6, 2, 2, 0, 0, batches=9)
    man = {"num_samples": 12, "shards": [{"count": 2}] * 6}
    assert train_batches_per_epoch(man, 2, 2) == 3 == train_batches_per_epoch(man, 2, 2, train_shards="split")
    assert train_batches_per_epoch(man, 2, 2, requested=9) == 9  # resample draws as many as asked


@pytest.mark.timeout(120)
def test_split_reader_rereads_its_own_shards_after_a_skipped_one(data: dict, tmp_path: Path) -> None:
    """A corrupt shard (skip_corrupt) leaves a rank short: it re-reads its own shards, never another's."""
    import shutil

    from physdiff.data.reader import make_loader

    bad = tmp_path / "bad"
    shutil.copytree(data["shards"], bad)
    ref = make_loader(bad, "train", batch_size=2, mode="train", train_shards="split", rank=0, world_size=2)
    mine = ref.shard_names()
    victim = bad / max(mine, key=lambda n: next(s["count"] for s in data["manifest"]["shards"] if s["name"] == n))
    victim.write_bytes(victim.read_bytes()[:5000])
    ld = make_loader(bad, "train", batch_size=2, mode="train", train_shards="split", rank=0, world_size=2,
                     skip_corrupt=True)
    batches = list(ld)
    assert len(batches) == len(ld) == ref.split_plan.batches  # full quota: DDP ranks stay in step
    where = _shard_keys(data["shards"], data["manifest"])  # the intact copy names every key
    assert {where[k] for b in batches for k in b["key"]} <= set(mine) - {victim.relative_to(bad).as_posix()}
    assert any(victim.name in s for s in ld.skipped) and any("re-reading the" in s for s in ld.skipped), ld.skipped
    with pytest.raises(TypeError, match="train_shards='split'"):
        make_loader(bad, "train", batch_size=2, mode="train").shard_names()


# ----------------------------------------------------------------------------- two nodes: what each read


def _shard_keys(shards: Path, manifest: dict) -> dict[str, str]:
    """key -> shard name, from the tar members themselves (the oracle does not use the reader)."""
    out = {}
    for s in manifest["shards"]:
        with tarfile.open(shards / s["name"]) as tf:
            for name in tf.getnames():
                out[name.split(".", 1)[0]] = s["name"]
    return out


@pytest.mark.timeout(300)
def test_each_node_reads_only_its_own_shards_each_once(data: dict, tmp_path: Path) -> None:
    out = tmp_path / "read"
    out.mkdir()
    port, epochs = _free_port(), 2
    # Two loader workers per rank: the split goes down to (rank, worker).
    over = [f"paths.data_root={tmp_path}", *data["common"], "loader.num_workers=2"]
    procs = []
    for node in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}",
               "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=read",
               str(REPO / "tests" / "training" / "multinode_reader.py"), str(out), str(epochs), *over]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=_env(PHYSDIFF_TEST_NODE=str(node)), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(l[-3000:] for l in logs)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert {r["node"] for r in ranks} == {"0", "1"}  # one rank on each node launch
    assert all(r["world"] == 2 and r["group_rank"] == str(r["rank"]) and r["local_rank"] == "0" for r in ranks)

    where = _shard_keys(data["shards"], data["manifest"])
    nonempty = {s["name"] for s in data["manifest"]["shards"] if s["count"] > 0}
    owned = [set(r["shards"]) for r in ranks]
    assert not owned[0] & owned[1] and owned[0] | owned[1] == nonempty  # a partition of the shards
    nb = ranks[0]["batches_per_epoch"]
    assert nb == ranks[1]["batches_per_epoch"] >= 2
    assert ranks[0]["all_counts"] == ranks[1]["all_counts"] == [epochs * nb * 2] * 2  # in step: no DDP hang
    for e in range(epochs):
        seen = [r["keys"][e] for r in ranks]
        for r, keys in enumerate(seen):
            assert len(keys) == nb * 2 == len(set(keys)), f"rank {r} epoch {e}: a clip read twice"
            assert {where[k] for k in keys} <= owned[r], f"rank {r} read another node's shard"
        assert not set(seen[0]) & set(seen[1])
        # What an epoch leaves out is only the remainder that does not fill a batch on a (rank, worker).
        from physdiff.data.reader import plan_split

        counts = [s["count"] for s in data["manifest"]["shards"] if s["count"] > 0]
        plan = plan_split(counts, 2, 2, 2, 0)
        assert plan.batches == nb and len(where) - len(set(seen[0]) | set(seen[1])) == len(where) - plan.clips_per_epoch
    assert ranks[0]["keys"][0] != ranks[0]["keys"][1]  # the order changes with the epoch
    assert sorted(ranks[0]["keys"][0]) != sorted(ranks[1]["keys"][0])


@pytest.mark.timeout(600)
def test_two_nodes_preempted_once_resume_to_the_same_weights(data: dict, reference: dict, tmp_path: Path) -> None:
    root = tmp_path / "data"
    port = _free_port()
    nodes = Nodes(tmp_path, 4343, port, _worker_args(root, data["common"]))
    run_dir = root / "runs" / reference["run_dir"].name
    total = reference["done"]["step"]
    t0 = time.time()
    nodes.start()
    try:
        deadline = time.time() + 180
        while _max_step(run_dir) < 2:  # mid-run: past the first steps, well before the last
            assert time.time() < deadline and all(p.poll() is None for p in nodes.procs), nodes.tail()
            time.sleep(0.05)
        nodes.signal(signal.SIGUSR2)  # SLURM's --signal=B:USR2@120 to the batch shell (here: each node's)
        codes = nodes.wait()
    finally:
        nodes.kill()
    text = nodes.text()
    assert text.count("caught USR2") == 2, nodes.tail()
    requeued = (tmp_path / "requeued").read_text().split()
    assert requeued == ["0", "4343", "1", "4343"] or requeued == ["1", "4343", "0", "4343"], requeued
    assert "PHYSDIFF_RESULT" in text and _result(text)["status"] == "stopped", nodes.tail()
    assert not (run_dir / "DONE.json").exists()
    stopped = ck.latest_checkpoint(run_dir / "checkpoints")
    meta = json.loads((stopped.path / "meta.json").read_text())
    assert meta["reason"] == "signal" and 2 <= meta["step"] < total and meta["world_size"] == 2, (meta, codes)

    # The requeued job: the same template on both nodes again (SLURM keeps the job id and the port).
    nodes.start(restart=1)
    assert nodes.wait() == [0, 0], nodes.tail()
    print(f"2 x 1 preempted at step {meta['step']} of {total} and resumed: {time.time() - t0:.1f} s")
    text = "".join(log.read_text() for log in nodes.logs)
    assert "job 4343 restart 1:" in text
    assert f"resumed from {stopped.path} (epoch {meta['epoch']}, batch {meta['batch_in_epoch']}, step {meta['step']})" in text
    res = _result(text)
    assert res["status"] == "finished" and res["step"] == total
    _assert_equal(_weights(reference["run_dir"]), _weights(run_dir))  # tolerance 0: bitwise
