"""The one sampling entry point: conditions -> spectrograms, with the ``sampling`` config section.

    x0 = sample_spectrograms(model, cond, cfg.sampling)                       # (B, 1, F, N) in [-1, 1]
    x0 = sample_spectrograms(model, cond, cfg.sampling, sampler="ddim", steps=25, eta=0.0)

Every caller (the evaluate stage's Table 1 and 3 rows, the generate stage and command, ``edit``, the
diffusion stage's preview samples, the benchmarks) comes through here. Sampling runs in batches of
``sampling.batch_size`` with one seeded generator walking the batches in order, so a given
(seed, batch size) is reproducible; the samplers themselves are pure functions
(:mod:`physdiff.diffusion.samplers`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from physdiff.inference.conditioning import unwrap


def resolve_options(opts: Any, **overrides: Any) -> Any:
    """``opts`` (a :class:`physdiff.inference.config.SamplingConfig`) with the non-None ``overrides`` applied, validated."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    out = dataclasses.replace(opts, **changes) if changes else opts
    out.validate()
    return out


@torch.no_grad()
def sample_spectrograms(model: Any, cond: Tensor, opts: Any, *, generator: torch.Generator | None = None,
                        progress: bool = False, **overrides: Any) -> Tensor:
    """x_0 (B, 1, F, N) for conditions c (B, C), e.g. from :func:`physdiff.inference.conditioning.assemble_condition`.

    ``opts``: the ``sampling`` section; ``overrides`` replace single fields (``steps=50``). ``generator``
    defaults to one seeded with ``opts.seed``. Returns float32 on the CPU.
    """
    from physdiff.diffusion.samplers import SAMPLERS

    opts = resolve_options(opts, **overrides)
    m = unwrap(model)
    if opts.steps > m.schedule.num_timesteps:
        from physdiff.configlib import ConfigError

        raise ConfigError(f"sampling.steps={opts.steps} exceeds the model's {m.schedule.num_timesteps} timesteps")
    device = next(m.parameters()).device
    g = generator if generator is not None else torch.Generator(device="cpu").manual_seed(opts.seed)
    steps = opts.steps or None  # 0 = all T steps
    sampler = SAMPLERS[opts.sampler]
    out = []
    starts = range(0, cond.shape[0], opts.batch_size)
    for s in starts:
        c = cond[s : s + opts.batch_size].to(device)  # (b, C)
        b = c.shape[0]
        x = sampler(m.eps, (b, 1, *m.spec_shape), m.schedule, cond=c, null_cond=m.conditioner.null_condition(b),
                    guidance_scale=opts.guidance_scale, generator=g, eta=opts.eta, steps=steps,
                    clip_x0=opts.clip_x0, progress=progress and len(starts) == 1)  # (b, 1, F, N)
        out.append(x.float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 1, *m.spec_shape)
