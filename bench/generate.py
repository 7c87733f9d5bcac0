"""Generation throughput: clips/s and real-time factor of DDIM-50 and DDPM-1000 (+ Griffin-Lim).

    python bench/generate.py                          # tiny preset on the CPU (batch 1 and 8)
    python bench/generate.py --device cuda --batch 1 16 64 --preset paper   # a GPU: batched throughput
    python bench/generate.py --ddpm-steps 200         # a shorter DDPM chain when time is short (scaled to 1000)

Speed only: the tiny model with random weights (the sampling cost does not depend on the weights) and
random conditions of the trained model's shape. Real-time factor = seconds of audio produced per second
of wall time (> 1 is faster than real time). DDPM cost is linear in steps, so ``--ddpm-steps`` < 1000
is measured and reported as its 1000-step equivalent (marked).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    from physdiff.config import resolve_config
    from physdiff.models.denoiser import PhysicsDiffusion
    from physdiff.inference.sampling import sample_spectrograms
    from physdiff.physics import spectrogram_to_audio

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--ddim-steps", type=int, default=50)
    ap.add_argument("--ddpm-steps", type=int, default=1000, help="steps actually run for the DDPM row (scaled to T)")
    ap.add_argument("--nu-dim", type=int, default=128)
    args = ap.parse_args()

    cfg = resolve_config(args.preset)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = PhysicsDiffusion.from_config(cfg, nu_dim=args.nu_dim).to(dev).eval()
    T = model.schedule.num_timesteps
    clip_s = cfg.audio.clip_seconds
    print(f"preset {args.preset}, device {dev}, spectrogram {cfg.audio.num_bins}x{cfg.audio.num_frames}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, T = {T}, threads {torch.get_num_threads()}")
    print(f"| sampler | steps | batch | s / batch | clips / s | real-time factor |")
    print(f"|---|---|---|---|---|---|")
    for b in args.batch:
        cond = torch.randn(b, model.conditioner.cond_dim, device=dev)  # (B, C)
        for sampler, steps, run_steps, eta in (("ddim", args.ddim_steps, args.ddim_steps, 0.0),
                                               ("ddpm", T, min(args.ddpm_steps, T), 1.0)):
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                sample_spectrograms(model, cond, cfg.sampling, generator=g, sampler=sampler, steps=2, eta=eta,
                                    batch_size=b)  # warm-up
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                x = sample_spectrograms(model, cond, cfg.sampling, generator=g, sampler=sampler, steps=run_steps, eta=eta,
                                        batch_size=b)  # (B, 1, F, N)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t_sample = (time.perf_counter() - t0) * steps / run_steps  # linear in steps
                t1 = time.perf_counter()
                spectrogram_to_audio(x, cfg.audio)  # (B, T): Griffin-Lim on the CPU tensor
                t_gl = time.perf_counter() - t1
            total = t_sample + t_gl
            mark = "" if run_steps == steps else f" (from {run_steps})"
            print(f"| {sampler} | {steps}{mark} | {b} | {total:.2f} | {b / total:.3f} | {b * clip_s / total:.3f} |", flush=True)


if __name__ == "__main__":
    main()
