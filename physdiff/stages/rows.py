"""The rows the evaluate stage can score: what each one reads, and how it makes the test clips' sounds.

A row is a way of producing one sound per test clip from silent video (or, for ``ground_truth``, the
recordings). Each has the finished runs it reads (``needs``: label -> run folder; the evaluate stage checks
them all before any work and names every missing one) and a function that returns the row's
spectrograms and audio (``make``). Tables 1 and 3 and Fig. 5b list rows by name
(``eval.variants``, ``eval.table3``, ``eval.fig5b``); adding a comparison system is one entry here::

    ROWS["mine"] = RowSpec("mine", needs=lambda cfg: {"mine": run_of(cfg, "mine")}, make=make_mine)

Rows:

- ``nn_retrieval`` (Table 3): the nearest training clip by ν *is* the answer, its recorded audio;
- ``owens_retrieval`` (Table 3, Owens et al. 2016): the training clip whose cochleagram is nearest to the one the
  ``owens`` run predicted from the test clip's frames; its recorded audio;
- ``convnet``, ``tts`` (Table 1): the spectrogram regressed from the test clip's per-frame video features by the
  ``convnet`` / ``tts`` run, then Griffin-Lim;
- ``video``, ``video_label``, ``video_spec``, ``video_mfcc``, ``ours`` (Table 1): the diffusion run of that
  variant, conditioned on the test ν and the latent retrieved from its index, sampled with the ``sampling`` section;
- ``modal`` (Fig. 5b): eq. 4 resynthesis of the retrieved training clip's modes (f, p, λ);
- ``modal_residual`` (Fig. 5b): modal + residual (eqs. 4-6) from the retrieved clip's modes and (w, γ);
- ``predicted_mu`` (Fig. 5b): the "ours" diffusion run conditioned on the test ν and the μ the ``mu_regressor``
  run predicted from it (no retrieval), with the same sampling noise as ``ours``.
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

    def video_arrays(self) -> dict[str, Tensor]:
        """The video export's arrays of the test clips, in test order (``nu_frames`` (N, T, D) among them; cached)."""
        if "video_arrays" not in self.cache:
            from physdiff.artifacts import read_export
            from physdiff.data.sidetable import read_side_table

            table = read_side_table(read_export(self.runs["video"], "video").table("test"))
            self.cache["video_arrays"] = {k: torch.from_numpy(v) for k, v in table.lookup(self.test.keys).items()}
        return self.cache["video_arrays"]

    def visual(self, cfg: Any) -> Tensor:
        """The test clips' visual input of a diffusion run trained with ``cfg``: nu, or the logits."""
        return self.test.logits if cfg.diffusion.visual_input == "logits" else self.test.nu

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


def run_needs(stage: str) -> Callable[[Any], dict[str, Path]]:
    """The finished run of a comparison system's own training stage (``convnet``, ``tts``, ``owens``)."""
    def needs(cfg: Any) -> dict[str, Path]:
        return {stage: identity.artifact_dir(cfg, stage)}

    return needs


def _predicted_mu_needs(cfg: Any) -> dict[str, Path]:
    """The "ours" diffusion run (and its index: the synthesizer loads it) and the regressor trained on its mu."""
    out = diffusion_needs("ours")(cfg)
    out["mu_regressor"] = identity.artifact_dir(identity.variant_config(cfg, "ours"), "mu_regressor")
    return out


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


def make_regression(stage: str) -> Callable[[EvalInputs], Generated]:
    """Table 1's ConvNet- / Transformer-based rows: the spectrogram regressed from the test clips' video features."""
    def make(ev: EvalInputs) -> Generated:
        from physdiff.physics import spectrogram_to_audio
        from physdiff.stages.regression import load_regressor

        model, _rcfg, man = load_regressor(ev.runs[stage], stage, ev.device)
        arrays = ev.video_arrays()
        key = man["feature"]  # what the run was trained on: nu_frames, or nu for an export without them
        if key not in arrays:
            from physdiff.errors import DataError

            raise DataError(f"the {stage} run {ev.runs[stage]} was trained on '{key}', which the video export "
                            f"{ev.runs['video']} does not hold for the test clips")
        feats = arrays[key].float()  # (N, T, D) or (N, D)
        t0 = time.time()
        bs = ev.cfg.eval.batch_size
        with torch.no_grad():
            specs = torch.cat([model.predict({key: feats[i : i + bs].to(ev.device)}).float().cpu()
                               for i in range(0, feats.shape[0], bs)])  # (N, 1, F, N)
        audio = spectrogram_to_audio(specs, ev.cfg.audio)  # (N, T)
        return Generated(specs, audio, (time.time() - t0) / specs.shape[0])

    return make


def make_owens_retrieval(ev: EvalInputs) -> Generated:
    """Owens et al.: the recording of the training clip whose cochleagram is nearest to the predicted one.

    The seconds per clip add the export's prediction pass (frame decoding + CNN + LSTM, per test clip) to the
    retrieval, so Table 3 compares the method's whole cost from frames."""
    from physdiff.artifacts import read_export
    from physdiff.data.sidetable import read_side_table
    from physdiff.models.owens import nearest_clips
    from physdiff.physics import peak_normalize, spectrogram_target

    ex = read_export(ev.runs["owens"], "owens")
    bank = read_side_table(ex.table("train"))
    queries = read_side_table(ex.table("test"))
    t0 = time.time()
    pred = torch.from_numpy(queries.lookup(ev.test.keys)["cochleagram_pred"]).float()  # (N, C, S)
    picked, _dist, _idx = nearest_clips(pred, torch.from_numpy(bank.arrays["cochleagram"]).float(), list(bank.keys))
    train = _training_clips(ev, picked)
    row = {k: i for i, k in enumerate(train.keys)}
    audio = train.audio[[row[k] for k in picked]]  # (N, T): training recordings, as retrieved
    ev.cache["owens_picked"] = picked
    predict_s = float(ex.manifest["splits"]["test"].get("seconds_per_clip", 0.0))
    return Generated(spectrogram_target(audio, ev.cfg.audio), peak_normalize(audio),
                     (time.time() - t0) / len(picked) + predict_s)


def make_predicted_mu(ev: EvalInputs) -> Generated:
    """Fig. 5b's fourth bar: "ours" conditioned on [mu predicted from nu, nu'] instead of the retrieved mu."""
    from physdiff.artifacts import read_export
    from physdiff.data.sidetable import read_side_table
    from physdiff.errors import DataError
    from physdiff.inference.conditioning import assemble_condition

    synth = ev.synthesizer("ours")
    ex = read_export(ev.runs["mu_regressor"], "mu_regressor")
    if ex.manifest.get("diffusion_run") != synth.diffusion.run_dir.name:
        raise DataError(f"the mu_regressor run {ev.runs['mu_regressor']} learned the mu of "
                        f"{ex.manifest.get('diffusion_run')}, not of the evaluated {synth.diffusion.run_dir.name}")
    mu = torch.from_numpy(read_side_table(ex.table("test")).lookup(ev.test.keys)["mu"]).float()  # (N, L)
    t0 = time.time()
    with torch.no_grad():
        cond = assemble_condition(synth.diffusion, ev.visual(synth.cfg).to(synth.device), mu.to(synth.device))  # (N, C)
    specs = synth.sample(cond, ev.cfg.sampling, progress=ev.progress)  # (N, 1, F, N): ours' sampling noise
    audio = synth.to_audio(specs)  # (N, T)
    return Generated(specs, audio, (time.time() - t0) / specs.shape[0])


ROWS: dict[str, RowSpec] = {
    "nn_retrieval": RowSpec("nn_retrieval", _no_needs, make_nn_retrieval, "the nearest training recording by ν"),
    "modal": RowSpec("modal", _no_needs, make_modal, "eq. 4 from the retrieved modes"),
    "modal_residual": RowSpec("modal_residual", _prior_needs, make_modal_residual, "eqs. 4-6 from the retrieved priors"),
}
for _v in ("video", "video_label", "video_spec", "video_mfcc", "ours"):
    ROWS[_v] = RowSpec(_v, diffusion_needs(_v), make_diffusion(_v), f"the diffusion variant '{_v}'")
for _s in ("convnet", "tts"):
    ROWS[_s] = RowSpec(_s, run_needs(_s), make_regression(_s), f"the {_s} stage's regression from the video features")
ROWS["owens_retrieval"] = RowSpec("owens_retrieval", run_needs("owens"), make_owens_retrieval,
                                  "the training recording nearest by the cochleagram predicted from the frames")
ROWS["predicted_mu"] = RowSpec("predicted_mu", _predicted_mu_needs, make_predicted_mu,
                               "ours conditioned on mu regressed from nu (no retrieval)")


def register_row(spec: RowSpec) -> None:
    """Add a comparison system; it can then be named in ``eval.variants`` / ``eval.table3`` / ``eval.fig5b``."""
    ROWS[spec.name] = spec
