"""The optional extras (``pyproject.toml``): a missing one is one line naming the install command, and the
main job needs none of them.

The commands run as real subprocesses with the extras' packages hidden: a ``sitecustomize.py`` on
``PYTHONPATH`` wraps every finder on ``sys.meta_path`` so that they are not found (``find_spec`` gives None,
``import`` raises ``ModuleNotFoundError``: as when not installed), in the command and in every process it
starts, and makes ``importlib.metadata`` deny their distributions. That is
what a core install (``pip install physdiff``) looks like from inside; ``docs/install.md`` has the same run
on a real core-only venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from physdiff.errors import PhysdiffError
from physdiff.extras import EXTRAS, MissingExtra, available, has_distribution, install_command, require

REPO = Path(__file__).resolve().parents[1]

# What `pip install -e '.[dev]'` has and `pip install -e .` does not, by top-level import name: the difference of
# the two venvs' site-packages (docs/install.md, Python 3.11), less pytest's own packages.
EXTRA_MODULES = (
    "submitit",                                                                   # cluster
    "ray", "aiohttp", "aiohappyeyeballs", "aiosignal", "frozenlist", "multidict", "yarl", "propcache",
    "msgpack", "jsonschema", "jsonschema_specifications", "referencing", "rpds", "attr", "attrs",
    "tensorboardX",                                                               # sweeps: ray[tune]
    "flask", "flask_cors", "werkzeug", "itsdangerous", "blinker", "gunicorn", "graphene", "graphql",
    "graphql_relay", "greenlet", "docker", "huey", "pandas", "pyarrow", "sklearn", "skops", "joblib",
    "threadpoolctl", "narwhals", "prettytable", "wcwidth",                        # server: full mlflow
    # (not six: in a [dev] venv matplotlib gets python-dateutil 2.9, which pandas allows and which needs six)
    "faiss",                                                                      # faiss
    "playwright",                                                                 # dev
)
EXTRA_DISTS = ("submitit", "ray", "mlflow", "mlflow-tracing", "pandas", "pyarrow", "scikit-learn", "flask",
               "faiss-cpu", "playwright")

SITECUSTOMIZE = textwrap.dedent('''
    """Written by tests/test_extras.py: this interpreter (and its children) see a core install only."""
    import os as _os
    import re as _re
    import sys as _sys

    _MODULES = frozenset(_os.environ["PHYSDIFF_TEST_HIDE_MODULES"].split(","))
    _DISTS = frozenset(_os.environ["PHYSDIFF_TEST_HIDE_DISTS"].split(","))


    class _Hidden:
        """Wraps one import finder: hidden modules are not found (find_spec None, as when not installed),
        hidden distributions are not listed (importlib.metadata raises PackageNotFoundError)."""

        def __init__(self, inner):
            self._inner = inner

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in _MODULES:
                return None
            find = getattr(self._inner, "find_spec", None)
            return find(name, path, target) if find else None

        def find_distributions(self, *args, **kwargs):
            find = getattr(self._inner, "find_distributions", None)
            for dist in (find(*args, **kwargs) if find else ()):
                if _re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "")).lower() not in _DISTS:
                    yield dist

        def __getattr__(self, attr):
            return getattr(self._inner, attr)


    _sys.meta_path[:] = [_Hidden(f) for f in _sys.meta_path]
    import importlib.metadata as _md  # finders put on sys.meta_path later are not wrapped: deny by name too
    _distribution = _md.distribution


    def _hidden_distribution(name):
        if _re.sub(r"[-_.]+", "-", name).lower() in _DISTS:
            raise _md.PackageNotFoundError(name)
        return _distribution(name)


    _md.distribution = _hidden_distribution
    for _name in [m for m in _sys.modules if m.partition(".")[0] in _MODULES]:
        del _sys.modules[_name]  # imported by a .pth file before this ran
''')


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a subprocess that sees a core install: the extras' modules and distributions hidden."""
    d = tmp_path_factory.mktemp("core-only")
    (d / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(d), str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, PHYSDIFF_TEST_HIDE_MODULES=",".join(EXTRA_MODULES),
                PHYSDIFF_TEST_HIDE_DISTS=",".join(EXTRA_DISTS), OMP_NUM_THREADS="2")


def _physdiff(args: list[str], env: dict[str, str], timeout: int = 180, script: str | None = None
              ) -> subprocess.CompletedProcess:
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "physdiff"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def _one_error_line(p: subprocess.CompletedProcess) -> str:
    """The command failed as an expected error: exit 2 and exactly one line on stderr (no traceback)."""
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, (p.returncode, p.stdout[-2000:], p.stderr[-4000:])
    return lines[0]


# ----------------------------------------------------------------------------- the helper


def test_require_returns_the_module_or_names_the_extra() -> None:
    import json as json_module

    assert require("json", extra="cluster", feature="x") is json_module
    with pytest.raises(MissingExtra) as e:
        require("physdiff_no_such_module", extra="cluster", feature="physdiff launch on SLURM")
    assert str(e.value) == "physdiff launch on SLURM needs the 'cluster' extra: pip install 'physdiff[cluster]'"
    assert isinstance(e.value, PhysdiffError) and isinstance(e.value, ImportError)  # run_cli prints it; `except ImportError` still works
    with pytest.raises(ValueError, match="unknown extra 'clustr'"):
        require("json", extra="clustr", feature="x")  # a typo would print a wrong install command: our bug, loudly


def test_a_half_installed_extra_names_what_broke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real package on sys.path whose own import fails (as mlflow.server does without Flask).
    pkg = tmp_path / "physdiff_broken_extra"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import physdiff_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra) as e:
        require("physdiff_broken_extra", extra="server", feature="the MLflow server")
    msg = str(e.value)
    assert msg.startswith("the MLflow server needs the 'server' extra: pip install 'physdiff[server]' (")
    assert "physdiff_missing_dependency" in msg and "\n" not in msg


def test_distribution_and_module_probes() -> None:
    assert has_distribution("pytest") and not has_distribution("physdiff-no-such-dist")
    assert available("json") and not available("physdiff_no_such_module") and not available("physdiff_no_such.sub")


def test_pyproject_declares_the_extras_the_messages_name() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    for name, package in EXTRAS.items():
        assert name in extras, name
        assert Requirement(package).name in {Requirement(r).name for r in extras[name]}, (name, extras[name])
        assert install_command(name) == f"pip install 'physdiff[{name}]'"
    dev = [Requirement(r) for r in extras["dev"]]
    self_ref = [r for r in dev if r.name == "physdiff"]
    assert len(self_ref) == 1 and set(EXTRAS) <= self_ref[0].extras  # the tests exercise every extra
    core = {Requirement(r).name for r in meta["dependencies"]}
    assert not core & {"submitit", "ray", "mlflow", "faiss-cpu", "playwright", "pytest"}, core  # extras stay out of core


@pytest.mark.parametrize("name", ["ci.txt", "torch-low.txt", "torch-high.txt"])
def test_the_pinned_torch_versions_lie_in_the_range(name: str) -> None:
    """Every constraints file pins the three torch packages, inside the package's range (its tested ends)."""
    core = {r.name: r for r in map(Requirement, tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])}
    lines = [ln.split("#")[0].strip() for ln in (REPO / "constraints" / name).read_text().splitlines()]
    pins = {r.name: r for r in map(Requirement, filter(None, lines))}
    assert set(pins) == {"torch", "torchaudio", "torchvision"}, pins
    for pkg, pin in pins.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", pin
        assert core[pkg].specifier.contains(Version(spec.version)), (name, pin, core[pkg])


def test_ci_installs_through_the_ci_constraints() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "-c constraints/ci.txt" in ci and "'.[dev]'" in ci


# ----------------------------------------------------------------------------- the commands, extras hidden


def test_the_hider_hides(core_env: dict[str, str]) -> None:
    code = textwrap.dedent("""
        import importlib, importlib.metadata as md
        for mod in ("submitit", "ray.tune", "flask", "playwright"):
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError:
                continue
            raise SystemExit(mod + " is importable")
        try:
            md.distribution("mlflow")
        except md.PackageNotFoundError:
            import mlflow.tracking  # mlflow-skinny's part stays: the core tracks with it
            print("ok")
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=core_env, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stdout + p.stderr


def test_launch_on_slurm_names_the_cluster_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    for args in (["launch", "--stage", "prior", "--gpus", "8", "--partition", "gpu"],
                 ["launch", "--stage", "all", "--gpus", "8", "--dry-run"],
                 ["launch", "--stage", "diffusion", "--cpu", "--procs", "2", "--slurm"]):
        p = _physdiff([*args, "--data-root", str(tmp_path)], core_env)
        assert _one_error_line(p) == "error: physdiff launch on SLURM needs the 'cluster' extra: pip install 'physdiff[cluster]'"
    assert not any(tmp_path.iterdir()), list(tmp_path.iterdir())  # it stopped before making a run folder or store


def test_shards_on_slurm_names_the_cluster_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    p = _physdiff(["shards", "--slurm", "--source", str(tmp_path / "world"), "--out", str(tmp_path / "shards")], core_env)
    assert _one_error_line(p) == "error: physdiff shards --slurm needs the 'cluster' extra: pip install 'physdiff[cluster]'"


def test_a_sweep_names_the_sweeps_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    want = "error: physdiff sweep (Ray Tune) needs the 'sweeps' extra: pip install 'physdiff[sweeps]'"
    p = _physdiff(["sweep", "residual-dims", "--preset", "tiny", "--data-root", str(tmp_path)], core_env)
    assert _one_error_line(p) == want
    p = _physdiff(["--preset", "tiny"], core_env, script=str(REPO / "sweeps" / "residual_dims.py"))  # the thin wrapper
    assert _one_error_line(p) == want


def test_the_mlflow_server_names_the_server_extra(core_env: dict[str, str], tmp_path: Path) -> None:
    p = _physdiff(["mlflow", "start", "--data-root", str(tmp_path), "--state", str(tmp_path / "state")], core_env)
    assert _one_error_line(p) == ("error: physdiff mlflow start (the MLflow tracking server) needs the 'server' extra: "
                                  "pip install 'physdiff[server]' (the 'mlflow' package is not installed)")
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_main_job_runs_on_the_core_alone(core_env: dict[str, str], tmp_path: Path) -> None:
    """The README's main job (``--stage all --local``, at the ``debug`` size) with every extra hidden:
    it finishes, tracks into the embedded SQLite store, and points at the UI with the extra it needs."""
    p = subprocess.run(
        [sys.executable, str(REPO / "cluster" / "launch.py"), "--stage", "all", "--local", "--preset", "debug",
         "--data-root", str(tmp_path), "train.progress=false", "loader.num_workers=0", "eval.variants=nn_retrieval,ours"],
        capture_output=True, text=True, timeout=880, cwd=REPO, env=core_env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    ui = [ln for ln in p.stdout.splitlines() if ln.startswith("MLflow UI:")]
    assert len(ui) == 1 and ui[0].endswith("(the UI is the 'server' extra: pip install 'physdiff[server]')"), ui
    assert (tmp_path / "mlflow.db").stat().st_size > 0
    # Read the store back in a process that sees everything: the runs the core install tracked are there.
    code = ("import sys, json; from mlflow.tracking import MlflowClient\n"
            "c = MlflowClient(f'sqlite:///{sys.argv[1]}/mlflow.db'); e = c.get_experiment_by_name('physdiff')\n"
            "print(json.dumps(sorted({r.data.tags.get('physdiff.stage', '') for r in c.search_runs([e.experiment_id])})))")
    q = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr[-3000:]
    stages = set(json.loads(q.stdout.strip().splitlines()[-1]))
    assert {"prior", "video", "diffusion", "generate", "evaluate"} <= stages, stages
