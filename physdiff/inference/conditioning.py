"""From data to the diffusion model's condition: reader batch -> conditioner inputs -> mu / latents -> c.

The condition of the physics-driven model is ``c = [mu, nu']`` (paper Sec. 3.3): mu from five MLPs over
the physics priors, nu' a projection of the visual latent. The Table 1 baselines replace mu by a class
embedding ("video_label"), a spectrogram latent ("video_spec"), an MFCC latent ("video_mfcc") or nothing
("video"). At inference the non-visual part is *retrieved* from the nearest training clip (Sec. 3.4), so
this module keeps the two halves apart: :func:`condition_latent` computes the non-visual latent of a clip,
:func:`assemble_condition` joins a visual input with a (retrieved) latent in the conditioner's order.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

# The non-visual latent each variant adds to the condition (what the index stores per training clip).
LATENT_NAME: dict[str, str | None] = {"ours": "mu", "video_spec": "spec_latent", "video_label": "label_embedding",
                                      "video_mfcc": "mfcc_latent", "video": None}


def unwrap(model: Any) -> nn.Module:
    """The PhysicsDiffusion inside a LoadedDiffusion and/or a DDP wrapper."""
    model = getattr(model, "model", model)  # a LoadedDiffusion
    return getattr(model, "module", model)  # a DDP wrapper


def condition_inputs(batch: Mapping[str, Any], device: torch.device | str, x0: Tensor | None = None) -> dict[str, Tensor]:
    """The conditioner's input mapping from a reader batch (keys of :mod:`physdiff.models.conditioning`).

    modes (B, 3, D) -> freq, power, decay; ``prior/weight``, ``prior/gamma`` (B, M) -> res_weight, res_decay;
    ``video/nu`` (B, D_nu) -> nu; ``video/logits`` (B, 17) -> logits; material (B,) -> label; x0 -> spec;
    audio (B, T) -> audio (the recording, which the "video_mfcc" latent encodes).
    Only the keys present in the batch are filled; the conditioner names any it needs and lacks.
    """
    def t(v: Any, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.as_tensor(v).to(device=device, dtype=dtype)

    out: dict[str, Tensor] = {}
    if "modes" in batch:
        modes = t(batch["modes"])  # (B, 3, D)
        out.update(freq=modes[:, 0], power=modes[:, 1], decay=modes[:, 2])
    for src, dst in (("prior/weight", "res_weight"), ("prior/gamma", "res_decay"), ("video/nu", "nu"),
                     ("video/logits", "logits")):
        if src in batch:
            out[dst] = t(batch[src])
    if "material" in batch:
        out["label"] = t(batch["material"], torch.long)  # (B,)
    if x0 is not None:
        out["spec"] = x0
    if "audio" in batch:
        out["audio"] = t(batch["audio"])  # (B, T)
    return out


def physics_latents(model: Any, batch: Mapping[str, Any]) -> Tensor:
    """mu (B, latent_dim): the five-MLP physics encoder on the normalised priors (paper Sec. 3.3).

    ``batch``: a reader batch (modes + ``prior/weight``, ``prior/gamma``) or a conditioner input mapping
    (freq, power, decay, res_weight, res_decay). ``model``: a PhysicsDiffusion of variant "ours".
    """
    from physdiff.models.physics_encoder import normalize_priors

    m = unwrap(model)
    cond = m.conditioner
    if cond.physics is None:
        raise ValueError(f"variant '{cond.variant}' has no physics encoder (only 'ours' computes mu)")
    device = next(m.parameters()).device
    inp = batch if "freq" in batch else condition_inputs(batch, device)
    raw = [torch.as_tensor(inp[k]).to(device).float() for k in ("freq", "power", "decay", "res_weight", "res_decay")]
    return cond.physics(normalize_priors(*raw, cond.prior_norm))  # (B, latent)


def condition_latent(model: Any, inputs: Mapping[str, Tensor]) -> Tensor | None:
    """The non-visual part of the condition: mu ("ours"), the spectrogram latent ("video_spec"), the
    label embedding ("video_label"), the MFCC latent of the recording ("video_mfcc"); None for "video". (B, L)."""
    m = unwrap(model)
    cond = m.conditioner
    if hasattr(cond, "mfcc"):  # "video_mfcc" (physdiff.models.mfcc_conditioning.MFCCConditioner)
        return cond.latent(inputs)  # (B, L)
    if cond.physics is not None:
        return physics_latents(m, inputs)
    if cond.spec is not None:
        return cond.spec(inputs["spec"])  # (B, L)
    if cond.label is not None:
        return cond.label(torch.as_tensor(inputs["label"]).long().to(cond.null.device))  # (B, L)
    return None


def assemble_condition(model: Any, visual: Tensor, latent: Tensor | None) -> Tensor:
    """c (B, cond_dim) from a visual input (nu, or logits when ``visual_input="logits"``) and a latent
    (e.g. a retrieved mu), in the conditioner's order: [mu, nu'] for "ours", [nu', latent] otherwise."""
    m = unwrap(model)
    cond = m.conditioner
    if hasattr(cond, "mfcc"):  # "video_mfcc": [nu', m]
        if latent is None:
            raise ValueError(f"variant '{cond.variant}' needs its latent ({LATENT_NAME.get(cond.variant)})")
        return cond.assemble(visual, latent)  # (B, C)
    v = cond.visual(visual.float())  # (B, dv)
    if cond.physics is None and cond.spec is None and cond.label is None:
        if latent is not None:
            raise ValueError("variant 'video' takes no latent")
        return v
    if latent is None:
        raise ValueError(f"variant '{cond.variant}' needs its latent ({LATENT_NAME.get(cond.variant)})")
    return torch.cat([latent.float(), v] if cond.physics is not None else [v, latent.float()], dim=-1)  # (B, C)
