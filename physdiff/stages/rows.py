"""The rows the evaluate stage can score: what each one reads, and how it makes the test clips' sounds.

A row is a way of producing one sound per test clip from silent video (or, for ``ground_truth``, the
recordings). Each has the finished runs it reads (``needs``: label -> run folder; the evaluate stage checks
them all before any work and names every missing one) and a function that returns the row's
spectrograms and audio (``make``). Tables 1 and 3 and Fig. 5b list rows by name
(``eval.variants``, ``eval.table3``, ``eval.fig5b``); adding a comparison system is one entry here::

    ROWS["mine"] = RowSpec("mine", needs=lambda cfg: {"mine": run_of(cfg, "mine")}, make=make_mine)

Rows:

- ``nn_retrieval`` (Table 3): the nearest training clip by ν *is* the answer, its recorded audio;
- ``video``, ``video_label``, ``video_spec``, ``ours`` (Table 1): the diffusion run of that variant, conditioned
  on the test ν and the latent retrieved from its index, sampled with the ``sampling`` section;
- ``modal`` (Fig. 5b): eq. 4 resynthesis of the retrieved training clip's modes (f, p, λ);
- ``modal_residual`` (Fig. 5b): modal + residual (eqs. 4-6) from the retrieved clip's modes and (w, γ).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from physdiff import identity


@dataclass
class Generated:
    specs: Tensor  # (N, 1, F, N_frames) normalised log-magnitude
    audio: Tensor  # (N, T) peak-normalised
    seconds_per_clip: float


@dataclass
class EvalInputs:
    """What every row reads: the config, the test clips, the device, and caches shared between rows."""

    cfg: Any
    test: Any  # physdiff.stages.evaluate.SplitClips
    runs: dict[str, Path]  # label -> finished run folder (every row's needs)
    device: torch.device
    progress: bool = False
    cache: dict[str, Any] = field(default_factory=dict)

    def synthesizer(self, variant: str) -> Any:
        """The (cached) synthesizer of the diffusion run of ``variant``."""
        key = f"synth:{variant}"
        if key not in self.cache:
            from physdiff.inference.synthesizer import Synthesizer

            self.cache[key] = Synthesizer.from_run(self.runs[f"diffusion-{variant}"], self.device, with_video=False,
                                                   index_dir=self.runs.get(f"index-{variant}"))
        return self.cache[key]

    def retrieved(self) -> list[str]:
        """The training clip key nearest to each test clip by ν (Euclidean), in test order (cached)."""
        if "retrieved" not in self.cache:
            from physdiff.retrieval import query
            from physdiff.stages.clips import training_nu

            keys, nu_train = training_nu(self.cfg)
            _d, idx = query(nu_train, self.test.nu, k=1, chunk_size=self.cfg.eval.retrieval_chunk_size,
                            query_batch=self.cfg.eval.retrieval_query_batch, backend=self.cfg.eval.retrieval_backend)  # (B, 1)
            self.cache["retrieved"] = [keys[i] for i in idx[:, 0].tolist()]
        return self.cache["retrieved"]


@dataclass(frozen=True)
class RowSpec:
    name: str
    needs: Callable[[Any], dict[str, Path]]  # cfg -> {label: run folder}
    make: Callable[[EvalInputs], Generated]
    help: str = ""


# ----------------------------------------------------------------------------- what rows read


def diffusion_needs(variant: str) -> Callable[[Any], dict[str, Path]]:
    def needs(cfg: Any) -> dict[str, Path]:
        from physdiff.inference.conditioning import LATENT_NAME

        vcfg = identity.variant_config(cfg, variant)
        out = {f"diffusion-{variant}": identity.artifact_dir(vcfg, "diffusion")}
        if LATENT_NAME[variant] is not None:
            out[f"index-{variant}"] = identity.artifact_dir(vcfg, "index")
        return out

    return needs


def _prior_needs(cfg: Any) -> dict[str, Path]:
    from physdiff.inference.load import upstream_run

    return {"prior": upstream_run(cfg, "prior")}


def _no_needs(cfg: Any) -> dict[str, Path]:
    return {}


# ----------------------------------------------------------------------------- how rows make sound


def make_diffusion(variant: str) -> Callable[[EvalInputs], Generated]:
    def make(ev: EvalInputs) -> Generated:
        synth = ev.synthesizer(variant)
        t0 = time.time()
        cond, keys, _dist = synth.conditions(ev.test.nu, ev.test.logits)  # (N, C)
        specs = synth.sample(cond, ev.cfg.sampling, progress=ev.progress)  # (N, 1, F, N)
        audio = synth.to_audio(specs, keys, ev.cfg.sampling)  # (N, T)
        return Generated(specs, audio, (time.time() - t0) / specs.shape[0])

    return make


def _training_clips(ev: EvalInputs, keys: list[str], tables: dict[str, Any] | None = None) -> Any:
    from physdiff.stages.clips import load_split

    return load_split(ev.cfg, "train", set(keys), extra_tables=tables)


def make_nn_retrieval(ev: EvalInputs) -> Generated:
    """The recorded audio of the nearest training clip by ν."""
    from physdiff.physics import peak_normalize, spectrogram_target

    t0 = time.time()
    picked = ev.retrieved()
    train = _training_clips(ev, picked)
    row = {k: i for i, k in enumerate(train.keys)}
    audio = train.audio[[row[k] for k in picked]]  # (N, T)
    return Generated(spectrogram_target(audio, ev.cfg.audio), peak_normalize(audio), (time.time() - t0) / len(picked))


def _retrieved_priors(ev: EvalInputs, with_residual: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Modes (N, 3, D) and, with the residual, (w, gamma) (N, M) of each test clip's retrieved training clip."""
    from physdiff.artifacts import read_export

    picked = ev.retrieved()
    tables = {"prior": read_export(ev.runs["prior"], "prior").table("train")} if with_residual else None
    train = _training_clips(ev, picked, tables)
    row = [{k: i for i, k in enumerate(train.keys)}[k] for k in picked]
    modes = train.modes[row]  # (N, 3, D)
    if not with_residual:
        return modes, None, None
    return modes, train.extra["prior/weight"][row], train.extra["prior/gamma"][row]


def make_modal(ev: EvalInputs) -> Generated:
    """Eq. 4 from the retrieved physics parameters alone (Fig. 5b's first bar)."""
    from physdiff.physics import Modes, peak_normalize, spectrogram_target, synthesize_modes

    t0 = time.time()
    modes, _, _ = _retrieved_priors(ev, with_residual=False)
    a = ev.cfg.audio
    with torch.no_grad():
        audio = peak_normalize(synthesize_modes(Modes.from_stacked(modes.float()), a.sample_rate, a.num_samples))  # (N, T)
    return Generated(spectrogram_target(audio, a), audio, (time.time() - t0) / audio.shape[0])


def make_modal_residual(ev: EvalInputs) -> Generated:
    """Eqs. 4-6 from the retrieved modes and residual parameters (Fig. 5b's second bar)."""
    from physdiff.physics import Modes, ResidualNoise, modal_plus_residual, spectrogram_target, synthesize_modes

    t0 = time.time()
    modes, weight, gamma = _retrieved_priors(ev, with_residual=True)
    a, ph, pr = ev.cfg.audio, ev.cfg.physics, ev.cfg.prior
    with torch.no_grad():
        modal = synthesize_modes(Modes.from_stacked(modes.float()), a.sample_rate, a.num_samples)  # (N, T)
        if weight.shape[1]:
            noise = ResidualNoise(weight.shape[1], a.sample_rate, a.num_samples, ph.residual_fmin, ph.residual_spacing,
                                  ph.residual_seed)
            resid = noise(gamma.float(), weight.float())  # (N, T)
        else:
            resid = torch.zeros_like(modal)
        audio = modal_plus_residual(modal, resid, normalize_modal=pr.normalize_modal)  # (N, T)
    return Generated(spectrogram_target(audio, a), audio, (time.time() - t0) / audio.shape[0])


ROWS: dict[str, RowSpec] = {
    "nn_retrieval": RowSpec("nn_retrieval", _no_needs, make_nn_retrieval, "the nearest training recording by ν"),
    "modal": RowSpec("modal", _no_needs, make_modal, "eq. 4 from the retrieved modes"),
    "modal_residual": RowSpec("modal_residual", _prior_needs, make_modal_residual, "eqs. 4-6 from the retrieved priors"),
}
for _v in ("video", "video_label", "video_spec", "ours"):
    ROWS[_v] = RowSpec(_v, diffusion_needs(_v), make_diffusion(_v), f"the diffusion variant '{_v}'")


def register_row(spec: RowSpec) -> None:
    """Add a comparison system; it can then be named in ``eval.variants`` / ``eval.table3`` / ``eval.fig5b``."""
    ROWS[spec.name] = spec
