"""The ``physdiff`` command: installed console script, ``python -m physdiff``, every subcommand's help, the old
script paths, and the SLURM chain of ``--stage all`` as a dry run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PHYSDIFF = Path(sys.executable).parent / "physdiff"  # what `pip install -e .` put beside the interpreter
SUBCOMMANDS = ("synth", "shards", "launch", "generate", "edit", "mlflow", "sheets", "sbatch", "listen")
SCRIPTS = ("cluster/launch.py", "cluster/generate.py", "cluster/edit.py", "cluster/mlflow_server.py",
           "shards/synth.py", "shards/build.py", "shards/world_sheets.py", "sweeps/residual_dims.py")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=kw.pop("cwd", REPO),
                          env=dict(os.environ, OMP_NUM_THREADS="1", **kw.pop("env", {})), **kw)


def _no_issue_numbers(text: str) -> None:
    # internal issue references such as "[3/8]" or "issue 13" (the verb "issue" is fine)
    hit = re.search(r"\[\d+/\d+\]|\bissues?\s*#?\d", text, re.I)
    assert not hit, text[max(0, hit.start() - 80): hit.end() + 80]


def test_console_script_and_module_entry() -> None:
    assert PHYSDIFF.is_file(), f"{PHYSDIFF} missing: install with pip install -e ."
    for cmd in ([str(PHYSDIFF), "--help"], [sys.executable, "-m", "physdiff", "--help"]):
        p = _run(cmd)
        assert p.returncode == 0, p.stderr
        for sub in SUBCOMMANDS:
            assert f"  {sub} " in p.stdout, (sub, p.stdout)
        _no_issue_numbers(p.stdout)
    p = _run([str(PHYSDIFF), "nope"])
    from physdiff.cli import COMMANDS

    assert p.returncode == 2 and p.stderr.strip() == "error: unknown command 'nope'; commands: " + ", ".join(COMMANDS)


@pytest.mark.parametrize("sub", [*SUBCOMMANDS, "sweep residual-dims"])
def test_every_subcommand_has_help_on_every_flag(sub: str) -> None:
    p = _run([str(PHYSDIFF), *sub.split(), "--help"])
    assert p.returncode == 0, p.stderr
    _no_issue_numbers(p.stdout)
    # argparse prints each option as "  --flag ..." with its help text on the same or the next line.
    lines = p.stdout.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^  (-\w, )?(--[\w-]+)( [A-Z_.{},\[\]]+)?(\s{2,}\S.*)?$", line)
        if m and m.group(2) != "--help":
            has_help = bool(m.group(4)) or (i + 1 < len(lines) and lines[i + 1].startswith(" " * 10))
            assert has_help, f"{sub}: {m.group(2)} has no help text"


@pytest.mark.parametrize("script", SCRIPTS)
def test_old_script_paths_are_the_same_commands(script: str) -> None:
    p = _run([sys.executable, script, "--help"])
    assert p.returncode == 0, p.stderr
    assert "usage: physdiff" in p.stdout, p.stdout[:300]


def test_stage_all_dry_run_prints_the_slurm_chain_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    p = _run([sys.executable, "cluster/launch.py", "--stage=all", "--dry-run", "--gpus", "8", "--partition", "gpu",
              "--preset", "tiny", "--data-root", str(data)])
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    steps = dict(re.findall(r"^## ([\w-]+): stage \w+ \(\w+\), after: ([^;]+);", out, re.M))
    # every Table 1 diffusion row of tiny (video, ours), its comparison systems (tts; Table 3's Owens et al.; Fig. 5b's
    # nu -> mu regressor) and the classifier (on its own world) are their own jobs
    assert set(steps) == {"world", "shards", "classifier-world", "classifier-shards", "prior", "video", "classifier",
                          "tts", "owens", "mu_regressor", "diffusion-video", "diffusion-ours", "index-ours", "generate",
                          "evaluate"}, steps
    assert steps["diffusion-ours"] == "prior, video" and steps["diffusion-video"] == "video"
    assert steps["classifier"] == "classifier-shards" and steps["evaluate"] == ("classifier, video, prior, tts, owens, mu_regressor, "
                                                                                  "diffusion-video, index-ours")
    assert out.count("#SBATCH --job-name=physdiff-") == len(steps)
    assert "#SBATCH --dependency=afterok:prior:video" in out and "#SBATCH --gpus-per-node=8" in out
    assert not data.exists(), sorted(str(p) for p in data.rglob("*"))  # a dry run writes nothing
