"""One GPU, the ``paper`` preset, at most 8 minutes: what each stage costs on the card (issue [14/14]).

    python bench/gpu.py                                   # paper preset on cuda:0 -> a markdown table
    python bench/gpu.py --json gpu.json --shards DIR      # + every figure as JSON; the loader on real shards
    python bench/gpu.py --preset debug --device cpu --quick --compile-backend eager diffusion.timesteps=10
                                                          # the CI smoke test (tests/test_bench_gpu.py)

Trailing ``section.key=value`` tokens override the preset (e.g. ``train.deterministic=false``).

Everything runs the project's own code on synthetic tensors of the preset's shapes (data would otherwise
dominate): the stages' recipes (``physdiff.stages.{diffusion,prior,video}``: their ``build_model`` and
``loss``, the batch dicts the shard reader yields), one training step as the engine takes it
(``physdiff.training.trainer``: autocast, backward, the gradient-norm pass, AdamW, deterministic
algorithms as ``train.deterministic`` says), the one sampling entry point
(``physdiff.inference.sampling.sample_spectrograms``) and Griffin-Lim (``spectrogram_to_audio``), and the
shard reader (``physdiff.data.reader.make_loader``) on shards: ``--shards DIR``, else a small world generated
and sharded here at the preset's frame size.

Rows (each a measured number unless its note says "derived"):

- the card's bf16 matmul rate (an n x n matmul, n = 8192 on a GPU), the denominator of MFU;
- diffusion training samples/s at batch 16 in fp32 and bf16, eager and ``torch.compile`` (the U-Net, as
  ``diffusion.compile``; compile time in the note), and model FLOPs utilisation: FLOPs of one training step
  (``FlopCounterMode``: matmuls and convolutions, forward + backward) x samples/s / the matmul rate;
- peak memory at batch 16 (``torch.cuda.max_memory_allocated``; on the CPU the process's max RSS) and the
  largest batch that fits (doubling until out of memory, then bisection to 1/8; capped at ``--max-batch``);
- prior and video stage training samples/s (fp32, bf16), with peak memory;
- DDIM-50 (or DDIM-T when T < 50) and DDPM-T seconds per clip at batch 1 and at ``sampling.batch_size``,
  Griffin-Lim seconds per
  clip, and the real-time factor (compute seconds per clip / clip seconds: < 1 is faster than real time);
- the loader's ceiling with ``--workers`` workers: audio + modes, + 22 frames decoded in the workers, and
  + frames handed over as JPEG bytes and decoded on the device (``decode_frame_batch``: nvjpeg on CUDA).

A time budget (``--budget``, 480 s) is checked before each measurement; one that would not fit is a row
marked ``skipped: budget`` (compile rows come last: they cost the most). Results go in docs/results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch
from torch.utils.flop_counter import FlopCounterMode


# ----------------------------------------------------------------------------- the table


@dataclass
class Row:
    section: str
    name: str
    value: float | None
    unit: str
    note: str = ""
    status: str = "ok"  # "ok" | "skipped: ..." | "failed: ..."


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, section: str, name: str, value: float | None, unit: str, note: str = "", status: str = "ok") -> None:
        self.rows.append(Row(section, name, value, unit, note, status))
        v = "-" if value is None else f"{value:.4g}"
        print(f"  [{section}] {name}: {v} {unit} {note} {'' if status == 'ok' else '(' + status + ')'}", flush=True)

    def markdown(self) -> str:
        out = ["| section | measurement | value | unit | note |", "|---|---|---|---|---|"]
        for r in self.rows:
            v = r.status if r.status != "ok" else (f"{r.value:,.4g}" if r.value is not None else "-")
            out.append(f"| {r.section} | {r.name} | {v} | {r.unit} | {r.note} |")
        return "\n".join(out)


class Budget:
    """Seconds left of ``--budget``; ``fits(cost)`` before a measurement whose rough cost is ``cost`` seconds."""

    def __init__(self, seconds: float) -> None:
        self.t0, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.t0)

    def fits(self, cost: float) -> bool:
        return self.left() >= cost


# ----------------------------------------------------------------------------- device helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    """Peak allocated memory since ``reset_peak`` (CUDA), else the process's max RSS (CPU: monotonic)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def per_step(step: Callable[[], Any], device: torch.device, warmup: int, min_steps: int, min_s: float) -> tuple[float, int]:
    """Seconds per call of ``step`` after ``warmup`` calls: at least ``min_steps`` calls and ``min_s`` seconds."""
    for _ in range(warmup):
        step()
    sync(device)
    n, t0 = 0, time.perf_counter()
    while (n < min_steps or time.perf_counter() - t0 < min_s) and n < 500:
        step()
        n += 1
    sync(device)
    return (time.perf_counter() - t0) / n, n


def matmul_rate(device: torch.device, n: int) -> float:
    """Measured bf16 matmul FLOP/s of an n x n x n product (2 n^3 FLOP each)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    dt, _ = per_step(lambda: a @ b, device, warmup=3, min_steps=10, min_s=1.0)
    return 2 * n**3 / dt


# ----------------------------------------------------------------------------- synthetic batches (reader format)


def clip_batch(cfg: Any, b: int, device: torch.device, nu_dim: int = 0) -> dict[str, Any]:
    """What the shard reader yields for ``b`` clips (+ the prior / video side-table columns), on ``device``."""
    from physdiff.data.labels import GREATEST_HITS_MATERIALS

    g = torch.Generator().manual_seed(0)
    a, d, m = cfg.audio, cfg.audio.num_bins, cfg.prior.residual_dims
    t = torch.arange(a.num_samples) / a.sample_rate  # (T,)
    f0 = 200 + 3000 * torch.rand(b, 1, generator=g)  # (B, 1)
    audio = torch.exp(-30 * t) * torch.sin(2 * math.pi * f0 * t) + 0.01 * torch.randn(b, a.num_samples, generator=g)  # (B, T)
    freqs = torch.arange(d).float() * a.sample_rate / a.n_fft  # (D,)
    modes = torch.stack([freqs.repeat(b, 1), -80 * torch.rand(b, d, generator=g),
                         400 * torch.rand(b, d, generator=g)], dim=1)  # (B, 3, D)
    batch = {"key": [f"clip{i}" for i in range(b)], "audio": audio, "modes": modes,
             "material": torch.randint(0, len(GREATEST_HITS_MATERIALS), (b,), generator=g),
             "prior/weight": torch.rand(b, m, generator=g), "prior/gamma": 100 + 400 * torch.rand(b, m, generator=g)}
    if nu_dim:
        batch["video/nu"] = torch.randn(b, nu_dim, generator=g)  # (B, D_nu)
        batch["video/logits"] = torch.randn(b, len(GREATEST_HITS_MATERIALS), generator=g)  # (B, 17)
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def frame_batch(cfg: Any, b: int, device: torch.device) -> dict[str, Any]:
    """The video stage's batch: (B, 22, 3, S, S) uint8 frames already on the device + labels."""
    s, f = cfg.shards.frame_size, cfg.video.num_frames
    batch = clip_batch(cfg, b, device)
    batch["frames"] = torch.randint(0, 256, (b, f, 3, s, s), dtype=torch.uint8, device=device)  # (B, F, 3, S, S)
    return batch


# ----------------------------------------------------------------------------- one training step, as the engine


class Trainer:
    """A recipe's model + AdamW, stepping as ``physdiff.training.trainer.train`` does (no DDP: one GPU)."""

    def __init__(self, recipe: Any, cfg: Any, device: torch.device, dtype: str) -> None:
        torch.manual_seed(cfg.seed)
        self.recipe, self.cfg, self.device, self.dtype = recipe, cfg, device, dtype
        self.model = recipe.build_model(cfg).to(device)
        self.model.train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=recipe.learning_rate(cfg),
                                     weight_decay=recipe.weight_decay(cfg))
        clip = recipe.grad_clip(cfg)
        self.clip = clip if clip > 0 else math.inf  # the engine measures the norm also without clipping

    def autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.dtype == "bf16")

    def step(self, batch: dict[str, Any]) -> None:
        with self.autocast():
            loss, _ = self.recipe.loss(self.model, batch, self.cfg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def step_flops(self, batch: dict[str, Any]) -> float:
        """Matmul + convolution FLOPs of one training step (forward + backward), FlopCounterMode."""
        with FlopCounterMode(display=False) as fc:
            with self.autocast():
                loss, _ = self.recipe.loss(self.model, batch, self.cfg)
            loss.backward()
        self.opt.zero_grad(set_to_none=True)
        return float(fc.get_total_flops())


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def largest_batch(try_batch: Callable[[int], None], start: int, cap: int) -> tuple[int, bool]:
    """(largest batch that ran, whether the cap stopped the search): double until OOM, then bisect to 1/8."""
    lo, hi, oom = 0, start, False
    while hi <= cap and not oom:
        try:
            try_batch(hi)
            lo, hi = hi, hi * 2
        except Exception as e:
            if not is_oom(e):
                raise
            oom = True
    if not oom:
        return lo, True  # every batch up to the cap ran
    if lo == 0:
        return 0, False  # not even the first
    while hi - lo > max(1, lo // 8):
        mid = (lo + hi) // 2
        try:
            try_batch(mid)
            lo = mid
        except Exception as e:
            if not is_oom(e):
                raise
            hi = mid
    return lo, False


# ----------------------------------------------------------------------------- the measurements


def diffusion_recipe(cfg: Any) -> Any:
    from physdiff.models.video import video_feature_dim
    from physdiff.stages.diffusion import DiffusionRecipe

    rec = DiffusionRecipe()
    rec.nu_dim = video_feature_dim(cfg.video)  # what setup reads from the video export
    return rec


def train_rows(tab: Table, section: str, make: Callable[[str], Trainer], batch_fn: Callable[[int], dict],
               args: Any, device: torch.device, budget: Budget, dtypes: tuple[str, ...], label: str = "eager",
               first_note: str = "", mfu: tuple[float, float] | None = None) -> dict[str, Trainer]:
    """samples/s and peak memory of each dtype; ``mfu`` = (FLOPs per sample per step, matmul FLOP/s)."""
    out = {}
    for dtype in dtypes:
        name = f"train samples/s, {dtype}, {label}, batch {args.batch}"
        if not budget.fits(args.step_cost):
            tab.add(section, name, None, "samples/s", status="skipped: budget")
            continue
        t0 = time.perf_counter()
        tr = make(dtype)
        batch = batch_fn(args.batch)
        reset_peak(device)
        tc = time.perf_counter()
        tr.step(batch)  # the first step (compiles under torch.compile)
        sync(device)
        first = time.perf_counter() - tc
        dt, n = per_step(lambda: tr.step(batch), device, warmup=args.warmup, min_steps=args.steps, min_s=args.min_s)
        sps = args.batch / dt
        note = f"{dt * 1e3:.1f} ms/step over {n} steps; first step {first:.1f} s{first_note}"
        if mfu:
            note += f"; MFU {mfu[0] * sps / mfu[1]:.1%}"
        tab.add(section, name, sps, "samples/s", note)
        tab.add(section, f"peak memory, {dtype}, {label}, batch {args.batch}", peak_gib(device), "GiB",
                "max_memory_allocated" if device.type == "cuda" else "process max RSS (CPU)")
        out[dtype] = tr
        del batch
        print(f"    ({time.perf_counter() - t0:.1f} s)", flush=True)
    return out


def largest_rows(tab: Table, section: str, make: Callable[[str], Trainer], batch_fn: Callable[[int], dict],
                 args: Any, device: torch.device, budget: Budget, dtypes: tuple[str, ...]) -> None:
    for dtype in dtypes:
        name = f"largest batch that fits, {dtype}"
        if not budget.fits(4 * args.step_cost):
            tab.add(section, name, None, "clips", status="skipped: budget")
            continue
        tr = make(dtype)

        def attempt(b: int) -> None:
            batch = None
            try:
                reset_peak(device)
                batch = batch_fn(b)
                tr.step(batch)
                sync(device)
            finally:
                del batch
                tr.opt.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()

        t0 = time.perf_counter()
        best, capped = largest_batch(attempt, args.batch, args.max_batch)
        tab.add(section, name, best, "clips", (f">= (capped at --max-batch {args.max_batch})" if capped else
                                               "doubling to OOM, bisection to 1/8") + f"; {time.perf_counter() - t0:.0f} s")
        del tr
        reset_peak(device)


def sampling_rows(tab: Table, cfg: Any, model: Any, device: torch.device, args: Any, budget: Budget) -> None:
    from physdiff.inference.conditioning import assemble_condition, condition_inputs, physics_latents
    from physdiff.inference.sampling import sample_spectrograms
    from physdiff.physics.spectral import spectrogram_to_audio

    sec = "sampling"
    model.eval()
    T = model.schedule.num_timesteps
    clip_s = cfg.audio.clip_seconds
    big = args.sample_batch or cfg.sampling.batch_size

    visual = "nu" if cfg.diffusion.visual_input == "features" else "logits"

    def condition(batch: dict) -> torch.Tensor:
        """c (B, C) with the clips' own mu, as the diffusion stage's preview samples (inference.conditioning)."""
        inp = condition_inputs(batch, device)
        with torch.no_grad():
            mu = physics_latents(model, inp) if model.conditioner.physics is not None else None
            return assemble_condition(model, inp[visual], mu)  # (B, C)

    nu_dim = diffusion_recipe(cfg).nu_dim
    per_clip: dict[str, float] = {}
    ddim = min(50, T)
    plans = [("ddim", ddim, 1), ("ddim", ddim, big), ("ddpm", 0, 1)]
    for sampler, steps, b in plans:
        k = steps or T
        name = f"{sampler.upper()}-{k} s/clip, batch {b}"
        cost = args.forward_cost * k * (1 + b / 16)
        if not budget.fits(cost):
            tab.add(sec, name, None, "s/clip", status="skipped: budget")
            continue
        cond = condition(clip_batch(cfg, b, device, nu_dim))
        sample_spectrograms(model, cond[:1], cfg.sampling, sampler=sampler, steps=min(k, 2), eta=0.0)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        x0 = sample_spectrograms(model, cond, cfg.sampling, sampler=sampler, steps=steps, eta=0.0 if sampler == "ddim" else 1.0,
                                 batch_size=b)
        sync(device)
        dt = (time.perf_counter() - t0) / b
        per_clip[f"{sampler}{k}/{b}"] = dt
        tab.add(sec, name, dt, "s/clip", f"{dt / k * 1e3:.2f} ms per step per clip; fp32; untrained weights (time only)")
    # DDPM-T batched: the same U-Net call per step as DDIM, T steps instead of 50 (derived)
    if f"ddim{ddim}/{big}" in per_clip:
        d = per_clip[f"ddim{ddim}/{big}"] * T / ddim
        per_clip[f"ddpm{T}/{big}"] = d
        tab.add(sec, f"DDPM-{T} s/clip, batch {big}", d, "s/clip", f"derived: DDIM-{ddim} at batch {big} x {T}/{ddim} steps")
    # Griffin-Lim: spectrogram -> audio (this code runs it on the CPU, spectrogram_to_audio moves x to the CPU)
    x = torch.rand(big, 1, cfg.audio.num_bins, cfg.audio.num_frames) * 2 - 1  # (B, 1, F, N)
    t0 = time.perf_counter()
    spectrogram_to_audio(x, cfg.audio)
    gl = (time.perf_counter() - t0) / big
    tab.add(sec, f"Griffin-Lim s/clip, batch {big}", gl, "s/clip",
            f"{cfg.audio.griffin_lim_iters} iterations, on the CPU ({torch.get_num_threads()} threads): spectrogram_to_audio")
    for key, label in ((f"ddim{ddim}/{big}", f"DDIM-{ddim}, batch {big}"), (f"ddpm{T}/{big}", f"DDPM-{T}, batch {big}"),
                       (f"ddim{ddim}/1", f"DDIM-{ddim}, batch 1"), (f"ddpm{T}/1", f"DDPM-{T}, batch 1")):
        if key in per_clip:
            tab.add(sec, f"real-time factor, {label} + Griffin-Lim", (per_clip[key] + gl) / clip_s, "x real time",
                    f"(sampler + Griffin-Lim) s/clip / {clip_s} s clip; < 1 is faster than real time")


def shards_for_loader(cfg: Any, args: Any, tmp: Path) -> Path:
    """``--shards``, else a small world at the preset's frame size, generated and sharded here."""
    if args.shards:
        return Path(args.shards)
    from physdiff.config import resolve_config
    from physdiff.data.build import build_shards
    from physdiff.world import generate_world

    size = cfg.shards.frame_size
    wc = resolve_config(args.preset, [*args.overrides, f"world.videos={args.world_videos}", "world.hits_per_video=16",
                                      f"world.size={size}", f"world.workers={args.workers or 1}"])
    t0 = time.perf_counter()
    generate_world(tmp / "world", wc.world, seed=0, progress=False)
    build_shards(tmp / "world", tmp / "shards", wc, workers=max(1, args.workers))
    print(f"    loader data: {args.world_videos} videos x 16 hits at {size} px, generated and sharded in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return tmp / "shards"


def loader_rows(tab: Table, cfg: Any, device: torch.device, args: Any, budget: Budget) -> None:
    from physdiff.data.reader import make_loader
    from physdiff.data.sample import decode_frame_batch

    sec = "loader"
    if not budget.fits(args.loader_cost):
        for what in ("audio + modes", "+ frames decoded in workers", "+ frames decoded on the device"):
            tab.add(sec, f"clips/s, {what}", None, "clips/s", status="skipped: budget")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = shards_for_loader(cfg, args, Path(tmp))
        for frames, what, clips in ((False, "audio + modes", args.loader_clips * 4),
                                    (True, "+ frames decoded in workers", args.loader_clips),
                                    ("jpeg", f"+ frames decoded on the device ({device.type})", args.loader_clips)):
            nb = max(4, clips // args.batch)
            ld = make_loader(root, "train", batch_size=args.batch, mode="train", frames=frames, num_workers=args.workers,
                             batches_per_epoch=nb, verify=cfg.loader.verify_shards)
            it = iter(ld)
            next(it)  # start-up (workers, first shards) is not the ceiling
            n, t0 = 0, time.perf_counter()
            for b in it:
                if frames == "jpeg":
                    decode_frame_batch(b["frames_jpeg"], b["frame_bytes"], device)
                n += len(b["key"])
            sync(device)
            rate = n / (time.perf_counter() - t0)
            del it
            tab.add(sec, f"clips/s, {what}", rate, "clips/s",
                    f"{args.workers} workers, batch {args.batch}, {n} clips, verify={cfg.loader.verify_shards}"
                    + ("" if args.shards else "; a small generated world"))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=16, help="training batch (the paper: 16)")
    ap.add_argument("--max-batch", type=int, default=1024, help="the largest-batch search stops here")
    ap.add_argument("--sample-batch", type=int, default=0, help="batched sampling (0: sampling.batch_size)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="loader workers")
    ap.add_argument("--shards", default="", help="shard root for the loader rows (default: a small generated world)")
    ap.add_argument("--world-videos", type=int, default=6, help="videos of the generated loader world")
    ap.add_argument("--loader-clips", type=int, default=1024, help="clips per loader measurement with frames")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend of the compile rows")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole script")
    ap.add_argument("--quick", action="store_true",
                    help="the CPU smoke test: one timed step per row, batch 2 (largest-batch search to 4), a 2-video world")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--flops-only", action="store_true",
                    help="only the model FLOPs per training sample of each stage (one step at batch 1; fine on a CPU)")
    ap.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    args = ap.parse_args(argv)
    # per-measurement effort and rough costs (seconds) the budget checks against
    args.warmup, args.steps, args.min_s = (0, 1, 0.0) if args.quick else (3, 10, 3.0)
    args.step_cost, args.forward_cost, args.loader_cost = (2.0, 0.005, 10.0) if args.quick else (15.0, 0.02, 60.0)
    if args.quick:
        args.batch, args.max_batch, args.sample_batch = 2, 4, args.sample_batch or 2
        args.loader_clips, args.world_videos = min(args.loader_clips, 16), min(args.world_videos, 2)

    from physdiff.config import resolve_config
    from physdiff.stages.prior import PriorRecipe
    from physdiff.stages.video import VideoRecipe

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device here; run with --device cpu (e.g. --preset debug --quick) or on a GPU machine")
    cfg = resolve_config(args.preset, args.overrides)
    budget, tab = Budget(args.budget), Table()
    torch.use_deterministic_algorithms(cfg.train.deterministic, warn_only=True)  # as the engine does
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"bench/gpu.py: preset {args.preset} on {name}; torch {torch.__version__}; budget {args.budget:.0f} s; "
          f"train.deterministic={cfg.train.deterministic}", flush=True)

    # 1. the card's matmul rate, and the model FLOPs of one training sample of each stage (any dtype)
    rate = matmul_rate(device, 8192 if device.type == "cuda" else 256)
    tab.add("device", "bf16 matmul rate", rate / 1e12, "TFLOP/s", f"{8192 if device.type == 'cuda' else 256}^3, measured; MFU's denominator")
    drec, prec, vrec = diffusion_recipe(cfg), PriorRecipe(), VideoRecipe()
    nu = drec.nu_dim
    dbatch = lambda b: clip_batch(cfg, b, device, nu)  # noqa: E731
    flops = {}
    for sec, rec, fn in (("diffusion", drec, dbatch), ("prior", prec, lambda b: clip_batch(cfg, b, device)),
                         ("video", vrec, lambda b: frame_batch(cfg, b, device))):
        flops[sec] = Trainer(rec, cfg, device, "fp32").step_flops(fn(1))
        tab.add(sec, "model FLOPs per training sample", flops[sec] / 1e9, "GFLOP",
                "FlopCounterMode, one step at batch 1: matmuls + convolutions, forward + backward")
    if args.flops_only:
        print(tab.markdown())
        return 0

    # 2. diffusion training: eager fp32 / bf16, memory, largest batch
    mfu = (flops["diffusion"], rate)
    eager = train_rows(tab, "diffusion", lambda dt: Trainer(drec, cfg, device, dt), dbatch, args, device, budget,
                       ("fp32", "bf16"), mfu=mfu)
    if cfg.train.deterministic:  # what train.deterministic=true costs
        torch.use_deterministic_algorithms(False)
        train_rows(tab, "diffusion", lambda dt: Trainer(drec, cfg, device, dt), dbatch, args, device, budget,
                   ("bf16",), label="eager, deterministic off", mfu=mfu)
        torch.use_deterministic_algorithms(True, warn_only=True)
    model = eager["fp32"].model if "fp32" in eager else Trainer(drec, cfg, device, "fp32").model  # sampling: fp32 eager
    del eager
    largest_rows(tab, "diffusion", lambda dt: Trainer(drec, cfg, device, dt), dbatch, args, device, budget, ("fp32", "bf16"))

    # 3. prior and video stages
    train_rows(tab, "prior", lambda dt: Trainer(prec, cfg, device, dt), lambda b: clip_batch(cfg, b, device), args, device,
               budget, ("fp32", "bf16"), mfu=(flops["prior"], rate))
    train_rows(tab, "video", lambda dt: Trainer(vrec, cfg, device, dt), lambda b: frame_batch(cfg, b, device), args,
               device, budget, ("fp32", "bf16"), mfu=(flops["video"], rate))

    # 4. sampling and Griffin-Lim (the fp32 eager diffusion model)
    sampling_rows(tab, cfg, model, device, args, budget)
    del model

    # 5. the loader's ceiling
    loader_rows(tab, cfg, device, args, budget)

    # 6. torch.compile (last: the costliest)
    def compiled(dtype: str) -> Trainer:
        from physdiff.config import resolve_config as rc

        if args.compile_backend == "inductor":  # exactly what diffusion.compile=true does in build_model
            return Trainer(drec, rc(args.preset, [*args.overrides, "diffusion.compile=true"]), device, dtype)
        tr = Trainer(drec, cfg, device, dtype)
        tr.model.unet.compile(backend=args.compile_backend)
        return tr

    args.step_cost *= 1 if args.quick else 6  # a compile is minutes
    train_rows(tab, "diffusion", compiled, dbatch, args, device, budget, ("fp32", "bf16"),
               label=f"torch.compile ({args.compile_backend})", first_note=" (compile)", mfu=mfu)

    spent = time.perf_counter() - budget.t0
    print(f"\n## bench/gpu.py, preset {args.preset}, {name}, torch {torch.__version__}, {spent:.0f} s\n")
    print(tab.markdown())
    if args.json:
        from physdiff.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps({"preset": args.preset, "device": name, "torch": torch.__version__,
                                                 "seconds": spent, "rows": [asdict(r) for r in tab.rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
