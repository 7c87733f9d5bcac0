"""The classifier stage: the spectrogram material classifier behind FID, KID, KL and recognition accuracy.

The paper scores generated sounds with a material classifier trained on real spectrograms (Sec. 4). Here
it is a stage on the training engine like any other (checkpoints, resume, DDP, tracking, exported
weights), so the evaluate stage only loads it:

- data: the real training recordings of the classifier's data config (:func:`physdiff.identity.config_for`):
  this config's own shards, or, with ``classifier.world_videos`` > 0 (``tiny``), an independent generated
  world of that many videos drawn with ``classifier.world_seed`` (built by its own pipeline steps);
- model: :class:`physdiff.models.spec_classifier.SpecClassifier` over the diffusion target (the normalised
  log-magnitude spectrogram), ResNet-50 in ``paper``, a small CNN in ``tiny``;
- loss: cross-entropy over the 17 Greatest Hits classes after spectrogram augmentation
  (:mod:`physdiff.eval.spec_augment`, ``classifier.aug_*``): without it the classifier memorises the
  training videos' rooms and objects instead of material. AdamW (``classifier.lr``,
  ``classifier.weight_decay``) on a per-step cosine schedule; no gradient clipping;
- evaluation: accuracy and balanced accuracy on its data's validation split (the checkpoint is chosen there);
- export: the weights (``export/model.safetensors``) and what it was trained on.

    physdiff launch --stage classifier --local --preset tiny
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from physdiff.data.labels import GREATEST_HITS_MATERIALS
from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.eval.metrics import classification_metrics
from physdiff.physics.spectral import spectrogram_target
from physdiff.stages.base import ShardRecipe
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = VALIDATION  # every selection on the validation split; test is only for the report


class ClassifierRecipe(ShardRecipe):
    name = "classifier"  # identity: its data config's shard sections, the training sections and `classifier`

    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        from physdiff.eval.spec_augment import settings_from_config

        super().setup(cfg, rank, world_size)
        self.aug = settings_from_config(cfg.classifier, cfg.audio)

    # ------------------------------------------------------------------ data
    def num_train_batches(self, cfg: Any, world_size: int) -> int:
        if cfg.train.batches_per_epoch > 0:
            return cfg.train.batches_per_epoch
        return max(1, math.ceil(self.num_train / (cfg.classifier.batch_size * world_size)))

    def loader(self, cfg: Any, split: str, mode: str = "eval", epoch: int = 0, rank: int | None = 0,
               world_size: int | None = 1, batches: int | None = None) -> Any:
        from physdiff.data.reader import make_loader

        return make_loader(self.shard_root, split, batch_size=cfg.classifier.batch_size, mode=mode, frames=False,
                           seed=cfg.seed, epoch=epoch, num_workers=0, batches_per_epoch=batches,
                           shuffle_buffer=cfg.loader.shuffle_buffer, skip_corrupt=cfg.loader.skip_corrupt,
                           rank=rank, world_size=world_size, verify=cfg.loader.verify_shards)

    def selection(self, cfg: Any) -> tuple[str, str]:
        """Balanced accuracy on its validation split picks the checkpoint the metrics use."""
        return "val/balanced_acc", "max"

    # ------------------------------------------------------------------ model and optimisation
    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.spec_classifier import build_spec_classifier

        model = build_spec_classifier(len(GREATEST_HITS_MATERIALS), cfg.classifier)
        if cfg.classifier.pretrained:
            model.load_pretrained(cfg.classifier.pretrained)
        return model

    def build_scheduler(self, optimizer: torch.optim.Optimizer, cfg: Any, batches_per_epoch: int) -> tuple[Any, str]:
        total = max(1, self.num_epochs(cfg) * batches_per_epoch)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), "step"

    def grad_clip(self, cfg: Any) -> float:
        return 0.0  # the classifier's recipe never clipped; its loss is a plain cross-entropy

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[torch.Tensor, dict[str, float]]:
        from physdiff.eval.spec_augment import augment_spectrogram

        device = next(model.parameters()).device
        x = spectrogram_target(torch.as_tensor(batch["audio"]).float().to(device), cfg.audio)  # (B, 1, F, N)
        x = augment_spectrogram(x, self.aug)  # (B, 1, F, N); draws from the engine's (checkpointed) RNG
        y = _labels(batch, device)  # (B,)
        logits, _ = model(x)  # (B, K)
        loss = nn.functional.cross_entropy(logits, y)
        return loss, {"acc": float((logits.detach().argmax(-1) == y).float().mean())}

    # ------------------------------------------------------------------ evaluation and export
    @torch.no_grad()
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Held-out accuracy and balanced accuracy on real recordings (the classifier's ceiling in Table 1)."""
        from physdiff.data.reader import load_manifest

        try:
            load_manifest(self.shard_root, EVAL_SPLIT)
        except DataError:
            return {}
        device = next(model.parameters()).device
        logits, labels = [], []
        for bi, batch in enumerate(self.loader(cfg, EVAL_SPLIT, "eval")):
            if cfg.train.eval_batches and bi >= cfg.train.eval_batches:
                break
            x = spectrogram_target(torch.as_tensor(batch["audio"]).float().to(device), cfg.audio)  # (B, 1, F, N)
            logits.append(model(x)[0].float().cpu())
            labels.append(torch.as_tensor(batch["material"]).long())
        if not labels:
            return {}
        lg, lb = torch.cat(logits), torch.cat(labels)  # (N, K), (N,)
        m = classification_metrics(lg, lb)
        return {"val/loss": float(nn.functional.cross_entropy(lg, lb)), "val/acc": m["acc"],
                "val/balanced_acc": m["balanced_acc"], "val/chance_acc": m["chance_acc"], "val/clips": float(lb.numel())}

    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        super().export(model, cfg, out)
        out.manifest.update(backbone=cfg.classifier.backbone, num_classes=len(GREATEST_HITS_MATERIALS),
                            classes=list(GREATEST_HITS_MATERIALS), train_clips=self.num_train,
                            shards=str(self.shard_root), augmentation=asdict(self.aug))


def _labels(batch: dict[str, Any], device: torch.device) -> torch.Tensor:
    labels = torch.as_tensor(batch["material"], dtype=torch.long)  # (B,)
    k = len(GREATEST_HITS_MATERIALS)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise DataError(f"material label outside the {k} Greatest Hits classes in clips {list(batch['key'])[:3]}")
    return labels.to(device)
