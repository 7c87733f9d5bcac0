"""Nothing from disk or a shard is unpickled; shard member names are validated; servers bind to 127.0.0.1.

* a scan of the source tree (physdiff/, shards/, cluster/, sweeps/) for every way Python code could
  unpickle a file: pickle/cloudpickle/dill/joblib/marshal loads, ``torch.load`` without
  ``weights_only=True``, ``np.load`` with ``allow_pickle=True``, ``yaml.load`` without a safe loader;
  the scanner is itself checked on a snippet holding each pattern;
* behaviour: a complete checkpoint whose ``state.pt`` or RNG file holds a pickled callable is refused
  by the engine's loader (and the training engine) with an error naming the file, and the callable
  never runs;
* a shard with a member named ``../evil...`` or ``/abs/...`` is refused by the reader with an error
  naming the shard and the member, with or without ``loader.skip_corrupt``;
* the MLflow server script defaults to 127.0.0.1 (its live socket is checked in test_tracking_faults);
  a local Ray started by the sweeps listens on loopback addresses only (checked in /proc).
"""

from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from tests.reliability.conftest import REPO
from tests.reliability.netprobe import descendants, is_loopback, listening

SCANNED = ("physdiff", "shards", "cluster", "sweeps")
UNPICKLERS = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "joblib", "marshal", "shelve", "jsonpickle"}


def _const(node: ast.AST | None):
    return node.value if isinstance(node, ast.Constant) else None


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unpickling_calls(source: str, filename: str = "<src>") -> list[str]:
    """Every call in ``source`` that may unpickle data, as ``file:line: text``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> module (import pickle as pk; from pickle import load)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            name = f"{aliases.get(f.value.id, f.value.id)}.{f.attr}"
        elif isinstance(f, ast.Name):
            name = aliases.get(f.id, f.id)
        else:
            continue
        mod, _, fn = name.rpartition(".")
        root = mod.split(".")[0]
        why = None
        if root in UNPICKLERS and fn in ("load", "loads", "Unpickler", "open", "decode"):
            why = "unpickles"
        elif root == "torch" and fn == "load" and _const(_kw(node, "weights_only")) is not True:
            why = "torch.load without weights_only=True"
        elif root in ("numpy", "np") and fn == "load" and _const(_kw(node, "allow_pickle")) not in (None, False):
            why = "np.load with allow_pickle"
        elif root == "pandas" and fn == "read_pickle":
            why = "unpickles"
        elif root == "yaml" and fn in ("load", "load_all", "unsafe_load", "full_load", "unsafe_load_all"):
            loader = _kw(node, "Loader")
            safe = isinstance(loader, ast.Attribute) and loader.attr in ("SafeLoader", "CSafeLoader")
            if fn.startswith(("unsafe", "full")) or not safe:
                why = "yaml.load without SafeLoader"
        if why:
            bad.append(f"{filename}:{node.lineno}: {why}: {ast.get_source_segment(source, node)}")
    return bad


def test_scanner_finds_each_unpickling_pattern() -> None:
    snippet = "\n".join([
        "import pickle, torch, yaml", "import numpy as np", "import cloudpickle as cp", "from pickle import loads",
        "pickle.load(f)", "cp.loads(b)", "loads(b)", "torch.load(p)", "torch.load(p, weights_only=False)",
        "np.load(p, allow_pickle=True)", "yaml.load(s)",
        # fine:
        "torch.load(p, weights_only=True)", "np.load(p)", "np.load(p, allow_pickle=False)",
        "yaml.load(s, Loader=yaml.SafeLoader)", "yaml.safe_load(s)", "json.load(f)",
    ])
    found = unpickling_calls(snippet)
    assert [int(x.split(":")[1]) for x in found] == [5, 6, 7, 8, 9, 10, 11], found


def test_no_unpickling_anywhere_in_the_source_tree() -> None:
    files = [p for d in SCANNED for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 40, "the scan must see the whole source tree"
    bad = [hit for p in files for hit in unpickling_calls(p.read_text(), str(p.relative_to(REPO)))]
    assert not bad, "loads that could unpickle data from disk:\n" + "\n".join(bad)


class _Exploit:
    """What a malicious checkpoint carries: unpickling it would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poisoned_run(tmp_path: Path, where: str):
    """A ToyRecipe run whose newest complete checkpoint carries a pickled callable in ``where``."""
    from physdiff.config import resolve_config
    from physdiff.training import checkpoint as ck
    from physdiff.training.trainer import train
    from tests.training.toy import ToyRecipe

    cfg = resolve_config("debug", [f"paths.data_root={tmp_path / 'data'}", "train.epochs=2", "train.progress=false",
                                   "tracking.enabled=false", "train.checkpoint_every=2"])
    first = train(cfg, ToyRecipe(), stop_fn=lambda: True)  # one step, one complete checkpoint
    good = ck.latest_checkpoint(first.run_dir / "checkpoints")
    assert first.status == "stopped" and good is not None
    bad = first.run_dir / "checkpoints" / f"step_{good.step + 1:08d}"
    shutil.copytree(good.path, bad)
    marker = tmp_path / "PWNED"
    if where == "state":
        state = ck.load_state(good.path)
        state["scheduler"]["hook"] = _Exploit(marker)
        torch.save(state, bad / "state.pt")
        target = bad / "state.pt"
    else:
        torch.save({"torch": _Exploit(marker)}, bad / "rng_rank0.pt")
        target = bad / "rng_rank0.pt"
    assert b"system" in target.read_bytes()  # the file really holds a pickled global
    assert ck.latest_checkpoint(first.run_dir / "checkpoints").step == good.step + 1  # the engine's pick
    return cfg, bad, target, marker


@pytest.mark.parametrize("where", ["state", "rng"])
def test_checkpoint_with_a_pickled_object_is_rejected(tmp_path: Path, where: str) -> None:
    from physdiff.errors import PhysdiffError
    from physdiff.training import checkpoint as ck
    from physdiff.training.trainer import train
    from tests.training.toy import ToyRecipe

    cfg, bad, target, marker = _poisoned_run(tmp_path, where)
    with pytest.raises(ck.CheckpointError, match=str(target).replace(".", r"\.")):
        ck.load_state(bad) if where == "state" else ck.load_rank_rng(bad, 0)
    # The engine resuming from it refuses too, with a one-line error naming the file.
    with pytest.raises(PhysdiffError, match=target.name):
        train(cfg, ToyRecipe())
    assert not marker.exists(), "the pickled callable ran"


# ----------------------------------------------------------------------------- tar member names


def _shard_with_member(debug_data: dict, root: Path, evil_name: str) -> Path:
    """A shard root whose one train shard holds a real sample plus a member called ``evil_name``."""
    src = Path(debug_data["shards"])
    man = json.loads((src / "train" / "manifest.json").read_text())
    first = src / man["shards"][0]["name"]
    (root / "train").mkdir(parents=True)
    shard = root / "train" / "train-evil.tar"
    with tarfile.open(first) as tin, tarfile.open(shard, "w") as tout:
        members = tin.getmembers()
        key = members[0].name.split(".", 1)[0]
        for m in members:
            if m.name.split(".", 1)[0] == key:
                tout.addfile(m, tin.extractfile(m))
        payload = b'{"material_index": 0}'
        info = tarfile.TarInfo(evil_name)
        info.size = len(payload)
        tout.addfile(info, io.BytesIO(payload))
    man["shards"] = [{"name": "train/train-evil.tar", "count": 2}]
    man["num_samples"] = 2
    (root / "train" / "manifest.json").write_text(json.dumps(man))
    return shard


@pytest.mark.parametrize("evil", ["../evil.json", "/tmp/abs/evil.json", "a/../../evil.json"])
@pytest.mark.parametrize("skip_corrupt", [False, True])
def test_shard_member_names_are_validated(debug_data: dict, tmp_path: Path, evil: str, skip_corrupt: bool) -> None:
    from physdiff.data.reader import make_loader
    from physdiff.errors import DataError

    shard = _shard_with_member(debug_data, tmp_path / "shards", evil)
    with tarfile.open(shard) as t:
        assert evil in t.getnames()  # tarfile keeps the name as written
    for mode in ("eval", "train"):
        loader = make_loader(tmp_path / "shards", "train", batch_size=1, mode=mode, skip_corrupt=skip_corrupt,
                             batches_per_epoch=2)
        with pytest.raises(DataError) as e:
            list(loader)
        msg = str(e.value)
        assert "unsafe member name" in msg and repr(evil) in msg and str(shard) in msg, msg
        assert "\n" not in msg
    assert not list(tmp_path.rglob("evil.json")) and not Path("/tmp/abs/evil.json").exists()


# ----------------------------------------------------------------------------- servers bind to 127.0.0.1


def test_mlflow_server_defaults_to_localhost() -> None:
    import inspect

    from physdiff.launch import mlflow_server as mod

    assert inspect.signature(mod.start_server).parameters["host"].default == "127.0.0.1"
    help_text = subprocess.run([sys.executable, "cluster/mlflow_server.py", "--help"], cwd=REPO, capture_output=True,
                               text=True, timeout=60).stdout
    assert "default 127.0.0.1" in help_text


RAY_PROBE = """
import sys, time
from physdiff.sweeps import tune as tc
tc.init_ray(num_cpus=1)
import ray
print("GCS", ray.get_runtime_context().gcs_address, flush=True)
print("READY", flush=True)
sys.stdin.read()  # stay up until the test closes stdin
ray.shutdown()
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_local_ray_of_the_sweeps_listens_on_loopback_only() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["RAY_AUTH_MODE"] = "disabled"
    proc = subprocess.Popen([sys.executable, "-c", RAY_PROBE], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        deadline = time.time() + 180
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("READY"):
                break
        assert lines and lines[-1] == "READY", f"Ray did not start: {lines}"
        gcs = next(l.split()[1] for l in lines if l.startswith("GCS"))
        assert is_loopback(gcs), f"GCS advertised on {gcs}"
        time.sleep(3)  # agents bind their ports shortly after start-up
        addrs = listening(descendants(proc.pid))
        assert len(addrs) >= 3, addrs  # GCS, raylet, object manager at least
        assert all(is_loopback(a) for a in addrs), f"Ray listens beyond this machine: {addrs}"
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for p in reversed(descendants(proc.pid)):
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass
            proc.wait()
