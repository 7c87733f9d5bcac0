"""The bad-input cases of every command, the folders they use, and the runner (shared by test_bad_inputs.py).

A :class:`Case` is one command line a hostile or careless user could type, with the substring the one
error line must contain (what to fix: the file, the flag or the setting). ``cases(L, port)`` builds them
over the layout folders of :func:`make_layout`; :func:`run_cases` runs them as real subprocesses, 3 at a
time. :func:`render_table` turns the results into the Markdown table of ``docs/reliability.md``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    name: str
    cmd: list[str]  # script path relative to the repo, then arguments
    expect: str  # a substring the error line must contain (what to fix / which file)
    what: str = ""  # the bad input, in words (the docs table)


def _wav(path: Path, seconds: float, onsets: list[float], rate: int = 96000, channels: int = 1,
         nan: bool = False) -> None:
    import soundfile as sf

    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = 0.003 * np.random.default_rng(0).standard_normal(n)
    for k, t0 in enumerate(onsets):
        m = t >= t0
        x[m] += 0.5 * np.exp(-25 * (t[m] - t0)) * np.sin(2 * np.pi * (500 + 300 * k) * (t[m] - t0))
    if nan:
        x[n // 2] = np.nan
    data = np.stack([x, 0.5 * x], axis=1) if channels == 2 else x
    sf.write(str(path), data.astype(np.float32), rate, subtype="FLOAT")


def _video(root: Path, vid: str, *, wav: str | None = "ok", split: str = "train", empty_video: bool = False) -> None:
    """One video of the layout with two hits; ``wav``: ok | stereo48k | nan | None (no audio file)."""
    from tests.data.fixtures import write_video

    onsets = [0.4, 1.0]
    (root / f"{vid}_times.txt").write_text("0.400000 wood hit static\n1.000000 metal hit static\n")
    mp4 = root / f"{vid}_denoised.mp4"
    if empty_video:
        mp4.write_bytes(b"")
    else:
        write_video(mp4, 1.6, 64, 48)
    if wav == "ok":
        _wav(root / f"{vid}_denoised.wav", 1.6, onsets)
    elif wav == "stereo48k":
        _wav(root / f"{vid}_denoised.wav", 1.6, onsets, rate=48000, channels=2)
    elif wav == "nan":
        _wav(root / f"{vid}_denoised.wav", 1.6, onsets, nan=True)
    with open(root / f"{split}.txt", "a") as f:
        f.write(vid + "\n")
    (root / ("test.txt" if split == "train" else "train.txt")).touch()


def busy_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def make_layout(base: Path) -> dict[str, Path]:
    """The Greatest Hits layout folders the data cases read (real PyAV videos and soundfile wavs)."""
    out = {}
    for name, kw in {"empty_video": {"empty_video": True}, "nan_audio": {"wav": "nan"}, "no_audio": {"wav": None}}.items():
        root = base / name
        root.mkdir()
        _video(root, "2015-01-01-00-00-01", **kw)
        out[name] = root
    mixed = base / "mixed"
    mixed.mkdir()
    _video(mixed, "2015-01-01-00-00-01", wav="stereo48k")
    _video(mixed, "2015-01-01-00-00-02", empty_video=True)
    _video(mixed, "2015-01-01-00-00-03", wav="nan")
    _video(mixed, "2015-01-01-00-00-04", wav=None)
    out["mixed"] = mixed
    bad_split = base / "bad_split"  # train.txt that is not UTF-8 (a Latin-1 editor, a binary file)
    bad_split.mkdir()
    _video(bad_split, "2015-01-01-00-00-01")
    (bad_split / "train.txt").write_bytes(b"2015-01-01-00-00-01\n\xff\xfe caf\xe9\n")
    out["bad_split"] = bad_split
    out["base"] = base
    (base / "a-file").write_text("not a folder\n")
    (base / "empty-data").mkdir()
    return out


LAYOUT_KEYS = ("base", "mixed", "empty_video", "nan_audio", "no_audio", "bad_split")


def cases(L: dict[str, Path], busy: int) -> list[Case]:
    b = L["base"]
    data = ["--data-root", str(b / "empty-data")]
    build = lambda src, *a: ["shards/build.py", "--source", str(src), "--out", str(b / f"out-{src.name}"), "--preset", "debug", *a]  # noqa: E731
    dry = lambda *a: ["cluster/launch.py", "--stage", "prior", "--dry-run", "--preset", "debug", *data, *a]  # noqa: E731
    out = [
        # shards/synth.py
        Case("synth-unknown-preset", ["shards/synth.py", "--out", str(b / "w1"), "--preset", "nope"], "nope"),
        Case("synth-unknown-key", ["shards/synth.py", "--out", str(b / "w2"), "--preset", "debug", "world.nope=1"], "world.nope"),
        Case("synth-out-is-a-file", ["shards/synth.py", "--out", str(b / "a-file"), "--preset", "debug"], str(b / "a-file")),
        Case("synth-negative-seed", ["shards/synth.py", "--out", str(b / "w3"), "--preset", "debug", "--seed", "-1"],
             "world.seed", "--seed -1"),
        # shards/build.py
        Case("build-missing-source", ["shards/build.py", "--source", str(b / "missing"), "--out", str(b / "o"), "--preset", "debug"], str(b / "missing")),
        Case("build-unknown-preset", ["shards/build.py", "--source", str(L["mixed"]), "--out", str(b / "o"), "--preset", "nope"], "nope"),
        Case("build-unknown-key", build(L["mixed"], "shards.nope=3"), "shards.nope"),
        Case("build-strict-empty-video", build(L["empty_video"], "--strict"), "_denoised.mp4"),
        Case("build-strict-nonfinite-audio", build(L["nan_audio"], "--strict"), "_denoised.wav"),
        Case("build-strict-video-without-audio", build(L["no_audio"], "--strict"), "_denoised.wav"),
        Case("build-split-file-not-utf8", build(L["bad_split"]), str(L["bad_split"] / "train.txt"),
             "train.txt that is not UTF-8"),
        Case("build-zero-batch", build(L["mixed"], "shards.samples_per_shard=0"), "shards.samples_per_shard"),
        # cluster/launch.py
        Case("launch-unknown-preset", ["cluster/launch.py", "--stage", "diffusion", "--local", "--preset", "nope", *data], "nope"),
        Case("launch-unknown-key", ["cluster/launch.py", "--stage", "diffusion", "--local", "--preset", "debug", *data, "diffusion.nope=1"], "diffusion.nope"),
        Case("launch-unknown-stage", ["cluster/launch.py", "--stage", "nope", "--local", "--preset", "debug", *data], "nope"),
        Case("launch-missing-shards", ["cluster/launch.py", "--stage", "diffusion", "--local", "--preset", "debug", *data,
                                       "tracking.enabled=false"], "manifest"),
        Case("launch-missing-shards-cpu", ["cluster/launch.py", "--stage", "prior", "--cpu", "--procs", "2", "--preset", "debug",
                                           *data, "tracking.enabled=false", "train.progress=false"], "manifest"),
        Case("launch-data-root-is-a-file", ["cluster/launch.py", "--stage", "diffusion", "--local", "--preset", "debug",
                                            "--data-root", str(b / "a-file"), "tracking.enabled=false"], str(b / "a-file")),
        # config values, refused when set (the same for every command that takes KEY=VALUE)
        Case("config-negative-lr", dry("train.lr=-1"), "train.lr", "train.lr=-1"),
        Case("config-nan-lr", dry("train.lr=nan"), "train.lr", "train.lr=nan"),
        Case("config-zero-lr-decay", dry("train.lr_decay=0"), "train.lr_decay", "train.lr_decay=0 (gradient ascent before)"),
        Case("config-negative-batches", dry("train.batches_per_epoch=-3"), "train.batches_per_epoch",
             "train.batches_per_epoch=-3 (silently ignored before)"),
        Case("config-zero-batch-size", dry("loader.batch_size=0"), "loader.batch_size", "loader.batch_size=0"),
        Case("config-zero-log-every", dry("train.log_every=0"), "train.log_every", "train.log_every=0 (ZeroDivisionError before)"),
        Case("config-zero-checkpoint-every", dry("train.checkpoint_every=0"), "train.checkpoint_every", "train.checkpoint_every=0"),
        Case("config-zero-eval-every", dry("train.eval_every=0"), "train.eval_every", "train.eval_every=0"),
        Case("config-dropout-above-one", dry("prior.dropout=1.5"), "prior.dropout", "prior.dropout=1.5"),
        Case("config-ema-above-one", dry("train.ema_decay=1.5"), "train.ema_decay", "train.ema_decay=1.5"),
        Case("config-zero-sample-rate", dry("audio.sample_rate=0"), "audio.sample_rate", "audio.sample_rate=0"),
        Case("config-negative-stage-epochs", dry("diffusion.epochs=-1"), "diffusion.epochs", "diffusion.epochs=-1"),
        Case("config-nan-stage-lr", dry("diffusion.lr=nan"), "diffusion.lr", "diffusion.lr=nan"),
        Case("config-nan-guidance", dry("sampling.guidance_scale=nan"), "sampling.guidance_scale", "sampling.guidance_scale=nan"),
        # sweeps/residual_dims.py
        Case("sweep-unknown-preset", ["sweeps/residual_dims.py", "--preset", "nope", f"paths.data_root={b / 'sw'}"], "nope"),
        Case("sweep-unknown-key", ["sweeps/residual_dims.py", "--preset", "debug", "prior.nope=2", f"paths.data_root={b / 'sw'}"], "prior.nope"),
        Case("sweep-resume-missing", ["sweeps/residual_dims.py", "--resume", "--name", "nope", "--preset", "debug",
                                      f"paths.data_root={b / 'sw'}"], "nope"),
        # cluster/mlflow_server.py
        Case("mlflow-port-in-use", ["cluster/mlflow_server.py", "start", "--state", str(b / "srv"), "--port", str(busy),
                                    "--wait", "20"], str(busy)),
        Case("mlflow-state-is-a-file", ["cluster/mlflow_server.py", "start", "--state", str(b / "a-file")], str(b / "a-file")),
        Case("mlflow-port-out-of-range", ["cluster/mlflow_server.py", "start", "--state", str(b / "srv2"), "--port", "99999"],
             "--port 99999", "--port 99999"),
        Case("mlflow-host-unresolvable", ["cluster/mlflow_server.py", "start", "--state", str(b / "srv3"), "--host",
                                          "no-such-host.invalid"], "no-such-host.invalid", "--host no-such-host.invalid"),
        Case("mlflow-host-not-local", ["cluster/mlflow_server.py", "start", "--state", str(b / "srv4"), "--host",
                                       "192.0.2.1"], "not an address of this machine", "--host 192.0.2.1 (not this machine)"),
    ]
    d = ["--data-root", str(b / "empty-data")]
    g = ["cluster/generate.py", "--out", str(b / "gen")]
    mp4 = str(L["empty_video"] / "2015-01-01-00-00-01_denoised.mp4")
    good_mp4 = str(L["mixed"] / "2015-01-01-00-00-01_denoised.mp4")
    out += [
        Case("generate-missing-video", [*g, "--video", str(b / "missing.mp4"), "--onsets", "0.5", *d], "missing.mp4"),
        Case("generate-empty-video", [*g, "--video", mp4, "--onsets", "0.5", *d], ""),
        Case("generate-bad-onsets", [*g, "--video", mp4, "--onsets", "0.5,abc", *d], "abc"),
        Case("generate-nonfinite-onset", [*g, "--video", good_mp4, "--onsets", "nan", *d], ""),  # checked after the run is found
        Case("generate-unknown-preset", [*g, "--video", mp4, "--onsets", "0.5", *d, "--preset", "nope"], "nope"),
        Case("generate-unknown-key", [*g, "--video", mp4, "--onsets", "0.5", *d, "--preset", "debug", "eval.nope=1"], "eval.nope"),
        Case("generate-nan-guidance", [*g, "--video", good_mp4, "--onsets", "0.5", *d, "--guidance", "nan"],
             "sampling.guidance_scale", "--guidance nan"),
        Case("generate-nan-eta", [*g, "--video", good_mp4, "--onsets", "0.5", *d, "--eta", "nan"], "sampling.eta", "--eta nan"),
        Case("generate-negative-steps", [*g, "--video", good_mp4, "--onsets", "0.5", *d, "--steps", "-5"], "sampling.steps",
             "--steps -5 (DDIM-1000 before)"),
    ]
    e = ["cluster/edit.py", "--out", str(b / "edits")]
    out += [
        Case("edit-unknown-clip", [*e, "--clip", "no-such-clip", "--edit", "freq_scale=1.2", *d], ""),
        Case("edit-bad-edit", [*e, "--clip", "k", "--edit", "freq_scale", *d], "freq_scale"),
        Case("edit-bad-json", [*e, "--clip", "k", "--edits", "{bad json", *d], ""),
        Case("edit-missing-video", [*e, "--video", str(b / "missing.mp4"), "--onset", "0.5", *d], ""),
        Case("edit-unknown-preset", [*e, "--clip", "k", "--edit", "freq_scale=1.2", *d, "--preset", "nope"], "nope"),
        Case("edit-unknown-key", [*e, "--clip", "k", "--edit", "freq_scale=1.2", *d, "--preset", "debug", "eval.nope=1"], "eval.nope"),
        Case("edit-unknown-edit-key", [*e, "--clip", "k", "--edit", "pitch=2", *d], "pitch", "--edit pitch=2"),
        Case("edit-ill-typed-value", [*e, "--clip", "k", "--edits", '{"freq_scale": "abc"}', *d], "freq_scale",
             "--edits '{\"freq_scale\": \"abc\"}'"),
        Case("edit-ill-typed-mute", [*e, "--clip", "k", "--edits", '{"mute_hz": 5}', *d], "mute_hz", "--edits '{\"mute_hz\": 5}'"),
        Case("edit-edits-not-an-object", [*e, "--clip", "k", "--edits", "[1, 2]", *d], "--edits", "--edits '[1, 2]'"),
        Case("edit-gain-overflows", [*e, "--clip", "k", "--edit", "modal_gain_db=1e6", *d], "modal_gain_db",
             "--edit modal_gain_db=1e6 (an all-NaN WAV before)"),
        Case("edit-negative-steps", [*e, "--clip", "k", "--edit", "freq_scale=1.2", "--steps", "-5", *d], "sampling.steps",
             "--steps -5"),
    ]
    return out


CASE_NAMES = [c.name for c in cases({k: Path(f"/x/{k}") for k in LAYOUT_KEYS}, 1)]


def run_cases(all_cases: list[Case], env: dict[str, str], parallel: int = 3, timeout: float = 180
              ) -> dict[str, tuple[Case, subprocess.CompletedProcess]]:
    """Run every case (``parallel`` at a time); keep (case, completed process) by name."""
    out: dict[str, tuple[Case, subprocess.CompletedProcess]] = {}
    running: list[tuple[Case, subprocess.Popen, float]] = []
    todo = list(all_cases)
    while todo or running:
        while todo and len(running) < parallel:
            c = todo.pop(0)
            p = subprocess.Popen([sys.executable, *c.cmd], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
            running.append((c, p, time.time()))
        c, p, t0 = running.pop(0)
        try:
            so, se = p.communicate(timeout=max(1.0, timeout - (time.time() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
            se += f"\n[test] TIMED OUT after {timeout:.0f} s"
        out[c.name] = (c, subprocess.CompletedProcess(p.args, p.returncode, so, se))
    return out


# ----------------------------------------------------------------------------- the docs table

COMMAND_OF = {"shards/synth.py": "synth", "shards/build.py": "shards", "cluster/launch.py": "launch",
              "sweeps/residual_dims.py": "sweep residual-dims", "cluster/mlflow_server.py": "mlflow",
              "cluster/generate.py": "generate", "cluster/edit.py": "edit"}
TABLE_BEGIN = "<!-- bad-input table: generated by tests/reliability/test_bad_inputs.py, do not edit by hand -->"
TABLE_END = "<!-- end of the bad-input table -->"


def _normalise(text: str, base: Path, busy: int) -> str:
    text = text.replace(str(base), "<tmp>").replace(str(REPO), "<repo>")
    text = re.sub(rf"\b{busy}\b", "<port>", text)
    text = re.sub(r"(?<=[-/])[0-9a-f]{10}\b", "<hash>", text)  # artifact names: they follow the config's semantic fields
    text = re.sub(r"\d{8}-\d{6}", "<time>", text)  # torchrun log folders
    return text.replace("|", "\\|")


def render_table(results: dict[str, tuple[Case, subprocess.CompletedProcess]], base: Path, busy: int) -> str:
    """``| command | bad input | exit | error line |``, one row per case, in case order."""
    rows = ["| command | bad input | exit | the one line on stderr |", "|---|---|---|---|"]
    for name in CASE_NAMES:
        case, p = results[name]
        lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
        last = lines[-1] if lines else "(nothing)"
        what = case.what or name.split("-", 1)[1].replace("-", " ")
        rows.append(f"| `physdiff {COMMAND_OF[case.cmd[0]]}` | {_normalise(what, base, busy)} | {p.returncode} | "
                    f"`{_normalise(last, base, busy)}` |")
    return "\n".join(rows)


def docs_table_section(doc: str) -> str | None:
    """The generated table in ``docs/reliability.md`` (between the markers), or None when absent."""
    if TABLE_BEGIN not in doc or TABLE_END not in doc:
        return None
    return doc.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip()


def with_table(doc: str, table: str) -> str:
    head, rest = doc.split(TABLE_BEGIN, 1)
    return head + TABLE_BEGIN + "\n" + table + "\n" + TABLE_END + rest.split(TABLE_END, 1)[1]


def environment(data: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PHYSDIFF_DATA=str(data))
    env.pop("PHYSDIFF_DEBUG", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env
