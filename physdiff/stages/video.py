"""The video stage (paper Sec. 3.3): a TSM ResNet material classifier whose pooled features are nu.

Recipe for the engine (:mod:`physdiff.training.trainer`):

- model: :class:`physdiff.models.video.VideoEncoder` (ResNet-50 + temporal shift over the 22 frames
  around the hit in ``paper``; the narrow ``resnet_small`` in ``tiny``/``debug``), random initialisation
  unless ``video.pretrained`` names a local torchvision state dict;
- data: the shards' frames (``make_loader(frames=True)``, decoded in ``loader.num_workers`` workers) and
  the clips' material labels in the dataset's full label set (17 Greatest Hits classes);
- loss: cross-entropy of the material logits, after augmentation on tensors (random resized crop, flip,
  colour jitter) drawn once per clip and applied to all its frames (:mod:`physdiff.data.augment`);
- evaluation on the validation split: loss, accuracy, balanced accuracy (mean per-class recall over the
  classes present) and their chance levels (the majority class's share; 1 / classes present), plus a
  confusion matrix figure;
- export (:mod:`physdiff.artifacts`): the weights, and nu (the time-averaged pooled features, (N, D_nu)),
  the per-frame features ``nu_frames`` ((N, T, D_nu), for the baselines that read video over time) and
  the logits ((N, 17)) of every clip of every split as side tables ``<run>/export/video-<split>.safetensors``
  (joined to the shards by key: ``make_loader(..., side_tables={"video": path})`` -> ``batch["video/nu"]``).

    python cluster/launch.py --stage video --local --preset tiny           # this process (GPU or CPU)
    python cluster/launch.py --stage video --cpu --procs 2 --preset debug  # 2 gloo processes (torchrun)
    python cluster/launch.py --stage video --gpus 8                        # SLURM, 1 node x 8 GPUs

The held-out split is the validation split (``val``, carved by video from the training videos at shard
build time); the test split is left to the final report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from physdiff.data.labels import GREATEST_HITS_MATERIALS
from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.eval.metrics import classification_metrics
from physdiff.stages.base import ShardRecipe, check_export_count
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = VALIDATION  # every selection on the validation split; test is only for the report


class VideoRecipe(ShardRecipe):
    name = "video"
    frames = True  # the only stage that decodes the 22 frames

    # ------------------------------------------------------------------ data
    def check_shards(self, manifest: dict[str, Any], cfg: Any) -> None:
        nf = manifest.get("sample", {}).get("num_frames", cfg.video.num_frames)
        if int(nf) != cfg.video.num_frames:
            raise DataError(f"shards {self.shard_root} hold {nf} frames per clip but video.num_frames is "
                            f"{cfg.video.num_frames} (TSM is built for it): rebuild the shards or change the config")

    def selection(self, cfg: Any) -> tuple[str, str]:
        """Material recognition on the validation split's videos picks the exported weights."""
        return "val/balanced_acc", "max"

    # ------------------------------------------------------------------ model and loss
    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.video import VideoEncoder

        model = VideoEncoder.from_config(cfg.video, num_classes=len(GREATEST_HITS_MATERIALS))
        if cfg.video.channels_last:
            model = model.to(memory_format=torch.channels_last)  # the encoder feeds NHWC frames to match
        return model

    def inputs(self, batch: dict[str, Any], cfg: Any, device: torch.device, train: bool) -> torch.Tensor:
        """The batch's frames on ``device`` as floats in [0, 1] at ``video.frame_size``: augmented or not."""
        from physdiff.data.augment import augment_clips, resize_clips
        from physdiff.data.reader import frames_to_float

        if "frames_jpeg" in batch:  # loader.frame_decode=gpu: nvjpeg on the device
            from physdiff.data.sample import decode_frame_batch

            frames = decode_frame_batch(batch["frames_jpeg"], batch["frame_bytes"], device)  # (B, T, 3, H, W) uint8
        else:
            frames = batch["frames"].to(device, non_blocking=True)  # (B, T, 3, H, W) uint8: 4x less traffic than float
        x = frames_to_float(frames)  # (B, T, 3, H, W)
        size = cfg.video.frame_size
        return augment_clips(x, cfg.video, size) if train else resize_clips(x, size)  # (B, T, 3, S, S)

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[torch.Tensor, dict[str, float]]:
        from physdiff.models.video import classification_loss

        device = next(model.parameters()).device
        x = self.inputs(batch, cfg, device, train=True)  # (B, T, 3, S, S)
        labels = _labels(batch, device)  # (B,)
        _nu, logits = model(x)  # (B, D_nu), (B, K)
        loss = classification_loss(logits.float(), labels, cfg.video.label_smoothing)
        acc = float((logits.detach().argmax(-1) == labels).float().mean())
        return loss, {"acc": acc}

    @torch.no_grad()
    def predict(self, model: nn.Module, cfg: Any, split: str, max_batches: int = 0, loader: Any = None
                ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(keys, nu (B, D), logits (B, K), labels (B,), per-frame features (B, T, D)) of every clip of ``split`` once."""
        device = next(model.parameters()).device
        loader = loader if loader is not None else self.loader(cfg, split, "eval", rank=0, world_size=1)
        for bi, batch in enumerate(loader):
            if max_batches and bi >= max_batches:
                break
            x = self.inputs(batch, cfg, device, train=False)  # (B, T, 3, S, S)
            per_frame = model.frame_features(x)  # (B, T, D): the pooled features of each frame
            nu, logits = model.head_from_frames(per_frame)  # (B, D), (B, K): what forward(x) returns
            yield (list(batch["key"]), nu.float().cpu(), logits.float().cpu(), batch["material"].cpu(),
                   per_frame.float().cpu())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Held-out loss, accuracy and balanced accuracy, with their chance levels, and a confusion matrix."""
        from physdiff.data.reader import load_manifest

        try:
            load_manifest(self.shard_root, EVAL_SPLIT)
        except DataError:
            return {}
        logits_all, labels_all = [], []
        for _keys, _nu, logits, labels, _frames in self.predict(model, cfg, EVAL_SPLIT, cfg.train.eval_batches):
            logits_all.append(logits)
            labels_all.append(labels)
        if not labels_all:
            return {}
        logits = torch.cat(logits_all)  # (N, K)
        labels = torch.cat(labels_all)  # (N,)
        m = classification_metrics(logits, labels)
        out = {"val/loss": float(nn.functional.cross_entropy(logits, labels)), "val/acc": m["acc"],
               "val/balanced_acc": m["balanced_acc"], "val/chance_acc": m["chance_acc"],
               "val/chance_balanced_acc": m["chance_balanced_acc"], "val/clips": float(labels.numel())}
        _write_confusion(ctx.media_dir, m["confusion"], ctx.epoch)
        return out

    # ------------------------------------------------------------------ export
    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        """nu, per-frame features and logits of every clip of every split as side tables."""
        super().export(model, cfg, out)
        from physdiff.data.layout import SPLITS
        from physdiff.data.reader import load_manifest
        from physdiff.models.video import video_feature_dim

        dim = video_feature_dim(cfg.video)
        k = len(GREATEST_HITS_MATERIALS)
        t = cfg.video.num_frames
        out.manifest.update(backbone=cfg.video.backbone, feature_dim=dim, num_classes=k, num_frames=t,
                            classes=list(GREATEST_HITS_MATERIALS),
                            arrays={"nu": f"(N, {dim}) time-averaged pooled TSM features (the visual latent)",
                                    "nu_frames": f"(N, {t}, {dim}) pooled TSM features of each frame",
                                    "logits": f"(N, {k}) material logits over 'classes'"})
        for split in SPLITS:
            try:
                sman = load_manifest(self.shard_root, split)
            except DataError:
                continue
            keys: list[str] = []
            nus, logits, labels, frames = [], [], [], []
            loader = self.loader(cfg, split, "eval", rank=0, world_size=1)
            for kb, nu, lg, lb, fr in self.predict(model, cfg, split, loader=loader):
                keys += kb
                nus.append(nu)
                logits.append(lg)
                labels.append(lb)
                frames.append(fr)
            check_export_count("video", split, keys, sman, self.shard_root, cfg, loader)
            nu_all = torch.cat(nus) if nus else torch.zeros(0, dim)  # (N, D)
            lg_all = torch.cat(logits) if logits else torch.zeros(0, k)  # (N, K)
            fr_all = torch.cat(frames) if frames else torch.zeros(0, t, dim)  # (N, T, D)
            if nu_all.shape[1:] != (dim,):
                raise DataError(f"video export of split {split}: nu has shape {tuple(nu_all.shape)}, expected (N, {dim})")
            entry: dict[str, Any] = {"missing": int(sman["num_samples"]) - len(keys),
                                     "shards_config_hash": sman.get("config_hash", "")}
            if keys:
                met = classification_metrics(lg_all, torch.cat(labels))
                entry.update({"acc": met["acc"], "balanced_acc": met["balanced_acc"], "chance_acc": met["chance_acc"]})
            out.table(split, keys, {"nu": nu_all, "nu_frames": fr_all, "logits": lg_all},
                      {"feature_dim": dim, "backbone": cfg.video.backbone}, **entry)


def _labels(batch: dict[str, Any], device: torch.device) -> torch.Tensor:
    labels = torch.as_tensor(batch["material"], dtype=torch.long)  # (B,)
    k = len(GREATEST_HITS_MATERIALS)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        bad = [key for key, y in zip(batch["key"], labels.tolist()) if not 0 <= y < k]
        raise DataError(f"material label outside the {k} Greatest Hits classes for clip(s) {bad[:3]}")
    return labels.to(device)


def _write_confusion(media_dir: Path, conf: torch.Tensor, epoch: int) -> None:
    """confusion.json and a confusion matrix figure over the classes present (truth rows, prediction columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    media_dir.mkdir(parents=True, exist_ok=True)
    used = ((conf.sum(0) + conf.sum(1)) > 0).nonzero().flatten().tolist()
    names = [GREATEST_HITS_MATERIALS[i] for i in used]
    sub = conf[used][:, used].numpy()
    (media_dir / "confusion.json").write_text(json.dumps({"classes": names, "confusion": sub.tolist()}) + "\n")
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(names), 1.0 + 0.45 * len(names)))
    rows = np.maximum(sub.sum(1, keepdims=True), 1)
    ax.imshow(sub / rows, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(names)):
        for j in range(len(names)):
            if sub[i, j]:
                ax.text(j, i, str(sub[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"video classifier, validation split, epoch {epoch}", fontsize=8)
    fig.tight_layout()
    fig.savefig(media_dir / "confusion.png", dpi=80)
    plt.close(fig)
