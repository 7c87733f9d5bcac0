"""One identity per artifact: which config sections define it, the config it is made from, its folder and name.

Every product of the pipeline is named by a hash of exactly the config keys its content depends on
(non-semantic fields such as paths, worker counts and logging never count, see
:func:`physdiff.configlib.config_hash`). The table :data:`SECTIONS` is the only place that says which::

    world       <data>/world/<hash>                  the synthetic world (Greatest Hits layout)
    shards      <data>/shards/<hash>                 WebDataset shards with physics
    prior       <data>/runs/prior-<hash>             training stages, one run folder each
    video       <data>/runs/video-<hash>
    classifier  <data>/runs/classifier-<hash>        the metric classifier (on its own data, see below)
    diffusion   <data>/runs/diffusion-<variant>-<hash>
    index       <data>/runs/index-<variant>-<hash>   the nu -> latent retrieval table of a diffusion run
    convnet     <data>/runs/convnet-<hash>           Table 1's comparison systems, one run folder each
    tts         <data>/runs/tts-<hash>
    owens       <data>/runs/owens-<hash>             Table 3's NN via predicted sound features
    mu_regressor <data>/runs/mu_regressor-<hash>     Fig. 5b's nu -> mu regressor (of the "ours" run)
    generate    <data>/runs/generate-<variant>-<hash>
    evaluate    <data>/runs/evaluate-<hash>
    pipeline    <data>/runs/pipeline-<hash>          the MLflow parent run of --stage all
    sweep       <data>/sweeps/<study>-<hash>

so changing the diffusion width reruns only the diffusion stage and what reads it, and a requeued
job, or the same command from another folder, lands in the same place. The same name is the MLflow
run name. ``seed`` is the training seed; the data's seed is ``world.seed``.

Some artifacts are made from a *derived* config: the metric classifier trains on an independent
world when ``classifier.world_videos`` > 0 (:func:`config_for`), and each Table 1 row is the
diffusion stage under another ``diffusion.variant`` (:func:`variant_config`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from physdiff.configlib import semantic_dict, config_hash
from physdiff.errors import PhysdiffError

_SHARDS = ("world", "audio", "physics", "shards")
_TRAIN = ("seed", "loader", "train")
# ``mfcc`` configures the encoder of the video_mfcc variant: one row for every variant, so it is part of all of them
_DIFFUSION = _SHARDS + _TRAIN + ("prior", "video", "diffusion", "mfcc")
# the comparison systems the evaluation scores beside the diffusion variants (Tables 1 and 3, Fig. 5b)
_BASELINES = ("convnet", "tts", "owens", "mu_regressor")

# artifact kind -> the config keys (top-level fields or sections) its content depends on
SECTIONS: dict[str, tuple[str, ...]] = {
    "world": ("world",),
    "shards": _SHARDS,
    "prior": _SHARDS + _TRAIN + ("prior",),
    "video": _SHARDS + _TRAIN + ("video",),
    "classifier": _SHARDS + _TRAIN + ("classifier",),
    "diffusion": _DIFFUSION,
    "index": _DIFFUSION,
    # Table 1's regressors and Table 3's Owens et al. read the video export (per-frame nu; Owens: video's
    # frame size and augmentation), and nothing of the diffusion model
    "convnet": _SHARDS + _TRAIN + ("video", "convnet"),
    "tts": _SHARDS + _TRAIN + ("video", "tts"),
    "owens": _SHARDS + _TRAIN + ("video", "owens"),
    # Fig. 5b's nu -> mu regressor learns the mu of the finished "ours" diffusion run
    "mu_regressor": _DIFFUSION + ("mu_regressor",),
    "generate": _DIFFUSION + ("sampling", "generate"),
    "evaluate": _DIFFUSION + ("classifier", "sampling", "eval") + _BASELINES,
    "sweep": _SHARDS + _TRAIN + ("prior",),
    "pipeline": _DIFFUSION + ("classifier", "sampling", "generate", "eval") + _BASELINES,  # --stage all's MLflow parent run
}
# artifacts with one folder per diffusion variant (the variant is in the name, for people and MLflow)
_PER_VARIANT = ("diffusion", "index", "generate")
_TOP = {"world": "world", "shards": "shards", "sweep": "sweeps"}  # everything else: runs/


def kinds() -> list[str]:
    return list(SECTIONS)


def _sections(kind: str, sections: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The identity row of ``kind``; ``sections`` for a kind outside the table (a user's own recipe)."""
    if sections is not None:
        return tuple(sections)
    if kind not in SECTIONS:
        raise PhysdiffError(f"unknown artifact kind {kind!r}; known: {', '.join(SECTIONS)}")
    return SECTIONS[kind]


def classifier_data_overrides(cfg: Any) -> dict[str, Any]:
    """The overrides that turn ``cfg`` into the metric classifier's data config ({} = this config's own data)."""
    c = cfg.classifier
    if c.world_videos <= 0:
        return {}
    return {"world.seed": c.world_seed, "world.videos": c.world_videos, "train.shards": ""}


def config_for(cfg: Any, kind: str) -> Any:
    """The config an artifact of ``kind`` is made from (``cfg`` itself unless the artifact derives one)."""
    if kind == "classifier":
        over = classifier_data_overrides(cfg)
        return cfg.copy(over) if over else cfg
    return cfg


def variant_config(cfg: Any, variant: str) -> Any:
    """``cfg`` with ``diffusion.variant`` replaced (a Table 1 row); ``cfg`` itself when it is that variant."""
    return cfg if cfg.diffusion.variant == variant else cfg.copy({"diffusion.variant": variant})


def artifact_hash(cfg: Any, kind: str, *, extra: Any = None, length: int = 10,
                  sections: tuple[str, ...] | None = None) -> str:
    """Hash of the config keys ``kind`` depends on (of :func:`config_for`'s config), plus ``extra`` (a sweep's study)."""
    c = config_for(cfg, kind)
    h = config_hash(c, length=64, sections=_sections(kind, sections))
    if extra is not None:
        h = hashlib.sha256(json.dumps({"config": h, "extra": extra}, sort_keys=True, default=str).encode()).hexdigest()
    return h[:length]


def sections_dict(cfg: Any, kind: str) -> dict[str, Any]:
    """The semantic config keys ``kind`` depends on, as a plain dict (what a manifest records)."""
    d = semantic_dict(config_for(cfg, kind))
    return {k: d[k] for k in _sections(kind) if k in d}


def artifact_name(cfg: Any, kind: str, *, extra: Any = None, prefix: str | None = None,
                  sections: tuple[str, ...] | None = None) -> str:
    """``<kind>[-<variant>]-<hash>``: the folder name and the MLflow run name."""
    h = artifact_hash(cfg, kind, extra=extra, sections=sections)
    label = prefix or kind
    if kind in _PER_VARIANT:
        return f"{label}-{cfg.diffusion.variant}-{h}"
    return f"{label}-{h}"


def artifact_dir(cfg: Any, kind: str, *, extra: Any = None, prefix: str | None = None,
                 sections: tuple[str, ...] | None = None) -> Path:
    """Where the artifact of ``kind`` for ``cfg`` lives under the data folder (see the module docstring).

    ``train.shards`` (a path, non-semantic) points the shard-reading stages at an existing shard folder.
    """
    _sections(kind, sections)
    c = config_for(cfg, kind)
    root = c.paths.root()
    if kind == "shards":
        if c.train.shards:
            return Path(c.train.shards).expanduser().resolve()
        return root / "shards" / artifact_hash(c, "shards")
    if kind == "world":
        return root / "world" / artifact_hash(c, "world")
    if kind == "sweep":
        return root / "sweeps" / artifact_name(c, kind, extra=extra, prefix=prefix)
    return root / "runs" / artifact_name(c, kind, extra=extra, prefix=prefix, sections=sections)


def world_dir(cfg: Any) -> Path:
    return artifact_dir(cfg, "world")


def shards_dir(cfg: Any) -> Path:
    return artifact_dir(cfg, "shards")


def data_root_of_run(run_dir: str | Path) -> Path:
    """The data folder a run folder lives in (``<data>/runs/<name>`` -> ``<data>``)."""
    run_dir = Path(run_dir).resolve()
    if run_dir.parent.name != "runs":
        raise PhysdiffError(f"{run_dir} is not a run folder inside a data folder (<data>/runs/<name>)")
    return run_dir.parent.parent
