"""Benchmark of the physics-driven diffusion model: training speed, memory, FLOPs, sampling time.

    python bench/diffusion.py                    # CPU: tiny and paper (paper: batch 1-2, few steps)
    python bench/diffusion.py --gpu              # + on CUDA: paper fp32 / bf16, batch 16 and the largest batch, MFU
    python bench/diffusion.py --size-only        # only the paper U-Net's size beside the official model (seconds)

First table: the ``paper`` U-Net's parameter count and FLOPs per sample (one forward at 1025 x 44, counted
on the meta device, so nothing is computed) beside the official 35.3 M / 138 GFLOP, with the official
273-d condition and with paper's default 512-d one, and tiny's (physdiff) layout at the paper's sizes.

Training step = conditioner + U-Net forward + L1 loss (eq. 8) + backward + fused/foreach AdamW. FLOPs are
counted with torch.utils.flop_counter.FlopCounterMode (2 per multiply-add) for one forward of one sample;
a training step is ~3x that. Sampling time: measured per clip for tiny (DDPM-1000 and DDIM-50); for paper
extrapolated from the measured time of one batch-1 forward x the number of steps (stated in the table).
CPU peak memory is the process's max RSS growth (ru_maxrss), GPU peak memory torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import resource
import time

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch
from torch.utils.flop_counter import FlopCounterMode

from physdiff.config import resolve_config
from physdiff.diffusion.samplers import sample_ddim, sample_ddpm
from physdiff.models.denoiser import PhysicsDiffusion
from physdiff.models.video import video_feature_dim


def make_batch(cfg, b: int, nu_dim: int, device: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    d, m, n = cfg.audio.num_bins, cfg.prior.residual_dims, cfg.audio.num_frames
    g = torch.Generator().manual_seed(0)
    inputs = {
        "freq": torch.arange(d).float().repeat(b, 1) * cfg.audio.sample_rate / cfg.audio.n_fft,
        "power": -80 * torch.rand(b, d, generator=g), "decay": 400 * torch.rand(b, d, generator=g),
        "res_weight": torch.rand(b, m, generator=g), "res_decay": 100 + 400 * torch.rand(b, m, generator=g),
        "nu": torch.randn(b, nu_dim, generator=g),
    }
    x0 = torch.rand(b, 1, d, n, generator=g) * 2 - 1
    return x0.to(device), {k: v.to(device) for k, v in inputs.items()}


def build(preset: str, device: str):
    cfg = resolve_config(preset)
    nu_dim = video_feature_dim(cfg.video)
    model = PhysicsDiffusion.from_config(cfg, nu_dim).to(device)
    return cfg, nu_dim, model


def flops_per_sample(model: PhysicsDiffusion, cfg, nu_dim: int, device: str) -> float:
    x0, inputs = make_batch(cfg, 1, nu_dim, device)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        cond = model.conditioner(inputs)
        model.eps(x0, torch.tensor([500], device=device), cond)
    return float(fc.get_total_flops())


def train_speed(model, cfg, nu_dim, device, batch: int, steps: int, dtype=None) -> tuple[float, float]:
    """(samples/s, seconds/step) over ``steps`` timed steps after one warm-up step."""
    x0, inputs = make_batch(cfg, batch, nu_dim, device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, fused=device == "cuda")
    model.train()
    g = torch.Generator(device=device).manual_seed(0)

    def step():
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            loss = model(x0, inputs, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    return batch / dt, dt


def forward_time(model, cfg, nu_dim, device, reps: int = 2) -> float:
    x0, inputs = make_batch(cfg, 1, nu_dim, device)
    model.eval()
    with torch.no_grad():
        cond = model.conditioner(inputs)
        t = torch.tensor([500], device=device)
        model.eps(x0, t, cond)
        t0 = time.perf_counter()
        for _ in range(reps):
            model.eps(x0, t, cond)
        if device == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def sample_time(model, cfg, nu_dim, sampler, steps: int | None) -> float:
    _, inputs = make_batch(cfg, 1, nu_dim, "cpu")
    model.eval()
    cond = model.conditioner.encode(inputs).detach()
    t0 = time.perf_counter()
    with torch.no_grad():
        sampler(model.eps, (1, 1, cfg.audio.num_bins, cfg.audio.num_frames), model.schedule, cond=cond,
                generator=torch.Generator().manual_seed(0), steps=steps)
    return time.perf_counter() - t0


OFFICIAL_PARAMS_M, OFFICIAL_GFLOP = 35.3, 138.0  # the official Unet3D at 1025 x 44 (incl. its 273-d null embedding)


def unet_size(diffusion_cfg, cond_dim: int, shape: tuple[int, int]) -> tuple[int, float]:
    """(parameters, FLOPs of one forward of one sample) of the U-Net alone, counted on the meta device."""
    from physdiff.models.unet import unet_from_config

    with torch.device("meta"):
        net = unet_from_config(diffusion_cfg, cond_dim, shape[0])
        with FlopCounterMode(display=False) as fc:
            net(torch.empty(1, 1, *shape), torch.tensor([500]), torch.empty(1, cond_dim))
    return sum(p.numel() for p in net.parameters()), float(fc.get_total_flops())


def unet_table() -> None:
    """The paper U-Net beside the official model; the condition widths are mu (256) + nu' (256 or 17 logits)."""
    cfg = resolve_config("paper")
    shape = (cfg.audio.num_bins, cfg.audio.num_frames)
    official_cond = cfg.diffusion.latent_dim + 17  # mu + the 17 class logits (diffusion.visual_input=logits)
    default_cond = cfg.diffusion.latent_dim + cfg.diffusion.visual_dim  # mu + nu' (visual_input=features)
    physdiff_layout = resolve_config("paper", ["diffusion.unet_layout=physdiff"]).diffusion
    rows = [(f"paper, official {official_cond}-d condition", cfg.diffusion, official_cond),
            (f"paper, default {default_cond}-d condition", cfg.diffusion, default_cond),
            (f"physdiff layout, {official_cond}-d", physdiff_layout, official_cond)]
    print(f"## paper U-Net at {shape[0]} x {shape[1]}: FlopCounterMode, 2 FLOP per multiply-add, one sample, one forward")
    print(f"{'U-Net':38s} {'params':>9s} {'GFLOP':>8s}   official {OFFICIAL_PARAMS_M} M / {OFFICIAL_GFLOP:.0f} GFLOP")
    for name, d, cond in rows:
        n, fl = unet_size(d, cond, shape)
        # + cond: the official Unet3D holds its learned null condition (one cond-wide vector) itself
        print(f"{name:38s} {n / 1e6:8.2f}M {fl / 1e9:8.2f}   x{(n + cond) / 1e6 / OFFICIAL_PARAMS_M:.2f} params "
              f"(+ the {cond}-d null vector), x{fl / 1e9 / OFFICIAL_GFLOP:.2f} FLOPs")
    print("(the official 35.3 M includes its 273-d null condition, kept in physdiff's Conditioner; a wider condition\n"
          " only widens the scale-and-shift Linear of each block: +params, +0.003 % FLOPs)\n")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_section(paper_steps: int) -> None:
    print(f"threads: {torch.get_num_threads()}")
    print(f"{'preset':8} {'params':>8} {'GFLOP/fwd/sample':>17} {'batch':>5} {'samples/s':>10} {'s/step':>8} {'peak RSS MB':>12}")
    rows = []
    for preset, batch, steps in (("tiny", 16, 5), ("paper", 1, paper_steps), ("paper", 2, paper_steps)):
        cfg, nu_dim, model = build(preset, "cpu")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        gf = flops_per_sample(model, cfg, nu_dim, "cpu") / 1e9
        before = rss_mb()
        sps, dt = train_speed(model, cfg, nu_dim, "cpu", batch, steps)
        print(f"{preset:8} {params:7.1f}M {gf:17.2f} {batch:5d} {sps:10.2f} {dt:8.3f} {max(rss_mb(), before):12.0f}")
        rows.append((preset, model, cfg, nu_dim))
    print("\nsampling time per clip (batch 1, CPU)")
    cfg, nu_dim, model = build("tiny", "cpu")
    ddim = sample_time(model, cfg, nu_dim, sample_ddim, 50)
    ddpm = sample_time(model, cfg, nu_dim, sample_ddpm, None)
    print(f"  tiny   DDIM-50: {ddim:8.2f} s   DDPM-{cfg.diffusion.timesteps}: {ddpm:8.2f} s  (measured)")
    cfg, nu_dim, model = build("paper", "cpu")
    fwd = forward_time(model, cfg, nu_dim, "cpu", reps=1)
    print(f"  paper  one forward {fwd:.2f} s -> DDIM-50: {50 * fwd:8.1f} s   DDPM-1000: {1000 * fwd / 60:8.1f} min"
          "  (extrapolated: steps x forward time)")


def gpu_section() -> None:
    if not torch.cuda.is_available():
        print("\n--gpu: no CUDA device here; skipped")
        return
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name()
    n = 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    peak = 2 * n**3 * reps / (time.perf_counter() - t0)
    del a, b
    print(f"\nGPU: {name}; measured bf16 matmul rate {peak / 1e12:.0f} TFLOP/s ({n}^3)")
    cfg, nu_dim, model = build("paper", dev)
    fwd_flops = flops_per_sample(model, cfg, nu_dim, dev)
    print(f"{'dtype':6} {'batch':>6} {'samples/s':>10} {'s/step':>8} {'peak GB':>8} {'MFU':>6}")

    def run(dtype, batch):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        sps, dt = train_speed(model, cfg, nu_dim, dev, batch, steps=5, dtype=dtype)
        mem = torch.cuda.max_memory_allocated() / 2**30
        mfu = 3 * fwd_flops * sps / peak  # forward + backward ~ 3x forward FLOPs
        print(f"{str(dtype).replace('torch.', '') if dtype else 'fp32':6} {batch:6d} {sps:10.1f} {dt:8.3f} {mem:8.1f} {mfu:6.1%}")

    def largest(dtype) -> int:
        lo, hi = 16, 16
        while True:  # grow by doubling until OOM, then bisect
            try:
                train_speed(model, cfg, nu_dim, dev, hi, steps=1, dtype=dtype)
                lo, hi = hi, hi * 2
            except torch.OutOfMemoryError:
                break
            finally:
                torch.cuda.empty_cache()
        while hi - lo > max(8, lo // 8):
            mid = (lo + hi) // 2
            try:
                train_speed(model, cfg, nu_dim, dev, mid, steps=1, dtype=dtype)
                lo = mid
            except torch.OutOfMemoryError:
                hi = mid
            finally:
                torch.cuda.empty_cache()
        return lo

    for dtype in (None, torch.bfloat16):
        run(dtype, 16)
        run(dtype, largest(dtype))
    fwd = forward_time(model, cfg, nu_dim, dev, reps=10)
    print(f"paper sampling, batch 1 fp32: forward {fwd * 1e3:.1f} ms -> DDPM-1000 {1000 * fwd:.0f} s, DDIM-50 {50 * fwd:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="also measure paper on CUDA (fp32, bf16, batch 16 and max)")
    ap.add_argument("--paper-steps", type=int, default=2, help="timed paper training steps on CPU (slow)")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--size-only", action="store_true", help="only the paper U-Net's parameters and FLOPs")
    args = ap.parse_args()
    unet_table()
    if args.size_only:
        return
    if not args.skip_cpu:
        cpu_section(args.paper_steps)
    if args.gpu:
        gpu_section()


if __name__ == "__main__":
    main()
