"""Prior-stage training throughput: clips/s (and peak memory on a GPU) for the ``tiny`` and ``paper`` presets.

    python bench/prior.py                      # CPU, tiny and paper, synthetic batches
    python bench/prior.py --presets paper --device cuda --batch 16 --steps 20

Measures exactly what one training step of the prior stage costs (physdiff.stages.prior: log
spectrogram -> transformer -> residual noise -> MR-STFT vs the recording, backward, AdamW step)
on random audio and random modes of the preset's shapes, so it needs no shards. Reported clips/s
is per process; DDP scales it by the number of ranks minus communication.
"""

from __future__ import annotations

import argparse
import time

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch


def bench(preset: str, device: str, batch: int | None, steps: int, warmup: int) -> dict:
    from physdiff.config import resolve_config
    from physdiff.stages.prior import PriorRecipe

    cfg = resolve_config(preset, ["prior.dropout=0.0"])
    b = batch or cfg.loader.batch_size
    rec = PriorRecipe()
    torch.manual_seed(0)
    model = rec.build_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    T, D = cfg.audio.num_samples, cfg.audio.num_bins
    t = torch.arange(T) / cfg.audio.sample_rate
    audio = (torch.exp(-30 * t) * torch.sin(2 * torch.pi * 440 * t)).repeat(b, 1) + 0.01 * torch.randn(b, T)  # (B, T)
    freqs = torch.linspace(0, cfg.audio.sample_rate / 2, D).repeat(b, 1)  # (B, D)
    modes = torch.stack([freqs, -60 + 20 * torch.rand(b, D), 200 + 400 * torch.rand(b, D)], dim=1)  # (B, 3, D)
    batch_ = {"audio": audio, "modes": modes}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        if i == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss, _ = rec.loss(model, batch_, cfg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"preset": preset, "device": device, "batch": b, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
           "clips_per_s": steps * b / dt, "s_per_step": dt / steps}
    if device.startswith("cuda"):
        out["peak_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "paper"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="default: the preset's loader.batch_size")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    rows = [bench(p, args.device, args.batch, args.steps, args.warmup) for p in args.presets]
    print(f"{'preset':8s} {'device':7s} {'batch':>5s} {'params M':>9s} {'clips/s':>9s} {'s/step':>8s} {'peak GiB':>9s}")
    for r in rows:
        print(f"{r['preset']:8s} {r['device']:7s} {r['batch']:5d} {r['params_M']:9.2f} {r['clips_per_s']:9.2f} "
              f"{r['s_per_step']:8.3f} {r.get('peak_mem_GiB', float('nan')):9.2f}")


if __name__ == "__main__":
    main()
