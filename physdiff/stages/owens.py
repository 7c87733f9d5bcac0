"""The ``owens`` stage (paper Table 3, "NN via predicted sound features"; Owens et al., CVPR 2016).

A CNN over the frames and an LSTM over time predict the clip's cochleagram (42 compressed subband
envelopes at 89.91 Hz, :mod:`physdiff.physics.cochleagram`); at test time the training clip whose
cochleagram is nearest to the prediction is retrieved and *its recording* is the output::

    physdiff launch --stage owens --local --preset tiny
    physdiff launch --stage owens --gpus 8
    physdiff launch --stage owens --local --preset tiny owens.input=features    # the video export's features, no CNN

- data: the shards' 22 frames (decoded like the video stage's, at ``video.frame_size``, with the video stage's
  augmentation in training) and audio; with ``owens.input=features`` the video export's ``nu_frames`` instead
  of frames (joined by key);
- target: the cochleagram of the clip's recording, (B, 42, S) (S = 23 for 0.25 s);
- model: :class:`physdiff.models.owens.OwensSoundNet` (``owens`` section; ResNet-50 in ``paper``);
- loss: Owens' robust loss log(eps + |s_t - s_hat_t|^2) (``owens.loss``);
- evaluation on the validation split: the loss, and how often the training clip retrieved by the predicted
  cochleagram has the clip's material, beside the same share for retrieval by the *true* cochleagram (the
  ceiling of the features) and for a random training clip (chance); the exported weights are the epoch
  with the lowest validation loss;
- export: the weights, ``owens-train`` (the retrieval bank: the cochleagram of every training recording)
  and, for the other splits, ``cochleagram`` (true) and ``cochleagram_pred`` (the network's) per clip. The
  evaluation row ``owens_retrieval`` (:mod:`physdiff.stages.rows`) retrieves from the bank with the test
  predictions: no frames are decoded at evaluation.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.stages.base import ShardRecipe, check_export_count, upstream_tables
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = VALIDATION  # every selection on the validation split; test is only for the report
BANK_SPLIT = "train"  # retrieval returns training recordings only


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # a DDP wrapper


class OwensRecipe(ShardRecipe):
    name = "owens"

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, Any] = {}  # split -> video export (owens.input=features only)
        self.feature_dim = 0
        self._bank: tuple[list[str], Tensor, Tensor] | None = None  # (keys, cochleagrams (N, C, S), materials (N,))

    # ------------------------------------------------------------------ data
    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        from physdiff.data.layout import SPLITS
        from physdiff.data.reader import load_manifest
        from physdiff.data.sidetable import read_side_table

        self.frames = cfg.owens.input != "features"  # frames decoded by the reader, or the video export's features
        super().setup(cfg, rank, world_size)
        self.tables = {}
        if self.frames:
            return
        paths = upstream_tables(cfg, "video")
        for split in SPLITS:
            try:
                load_manifest(self.shard_root, split)
            except DataError:
                continue
            if split not in paths:
                raise DataError(f"the video export read by the owens stage has no '{split}' split")
            self.tables[split] = read_side_table(paths[split])
        arrays = self.tables["train"].arrays
        if "nu_frames" not in arrays:
            raise DataError(f"owens.input=features needs the per-frame features 'nu_frames' in {self.tables['train'].path} "
                            f"(has {sorted(arrays)}): rerun the video stage, or use owens.input=spacetime")
        self.feature_dim = int(arrays["nu_frames"].shape[2])

    def check_shards(self, manifest: dict[str, Any], cfg: Any) -> None:
        super().check_shards(manifest, cfg)
        nf = manifest.get("sample", {}).get("num_frames", cfg.video.num_frames)
        if int(nf) != cfg.video.num_frames:
            raise DataError(f"shards {self.shard_root} hold {nf} frames per clip but video.num_frames is "
                            f"{cfg.video.num_frames}: rebuild the shards or change the config")

    def side_tables(self, split: str) -> dict[str, Any] | None:
        return {"video": self.tables[split]} if self.tables else None

    def selection(self, cfg: Any) -> tuple[str, str]:
        """The validation loss (the regression of the cochleagram) picks the exported weights."""
        return "val/loss", "min"

    def _audio_batches(self, cfg: Any, split: str) -> Any:
        """Every clip of ``split`` once, audio and labels only (no frames): the retrieval bank's pass."""
        from physdiff.data.reader import make_loader

        return make_loader(self.shard_root, split, batch_size=cfg.loader.batch_size, mode="eval", frames=False,
                           num_workers=cfg.loader.num_workers, skip_corrupt=cfg.loader.skip_corrupt,
                           rank=0, world_size=1, verify=cfg.loader.verify_shards)

    # ------------------------------------------------------------------ model and loss
    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.owens import OwensSoundNet

        return OwensSoundNet.from_config(cfg.owens, cfg.audio, num_frames=cfg.video.num_frames,
                                         feature_dim=self.feature_dim)

    def inputs(self, batch: Mapping[str, Any], cfg: Any, device: torch.device, train: bool) -> dict[str, Tensor]:
        """The network's input mapping: frames (B, T, 3, S, S) in [0, 1] at ``video.frame_size`` (augmented in
        training, as the video stage's), or ``nu_frames`` (B, T, D) with ``owens.input=features``."""
        if not self.frames:
            return {"nu_frames": torch.as_tensor(batch["video/nu_frames"]).to(device=device, dtype=torch.float32)}
        from physdiff.data.augment import augment_clips, resize_clips
        from physdiff.data.reader import frames_to_float

        if "frames_jpeg" in batch:  # loader.frame_decode=gpu: nvjpeg on the device
            from physdiff.data.sample import decode_frame_batch

            frames = decode_frame_batch(batch["frames_jpeg"], batch["frame_bytes"], device)  # (B, T, 3, H, W) uint8
        else:
            frames = batch["frames"].to(device, non_blocking=True)  # (B, T, 3, H, W) uint8
        x = frames_to_float(frames)  # (B, T, 3, H, W)
        size = cfg.video.frame_size
        return {"frames": augment_clips(x, cfg.video, size) if train else resize_clips(x, size)}  # (B, T, 3, S, S)

    def target(self, model: nn.Module, batch: Mapping[str, Any], device: torch.device) -> Tensor:
        """The cochleagram of each clip's recording: (B, C, S)."""
        audio = torch.as_tensor(batch["audio"], dtype=torch.float32).to(device)  # (B, T)
        return _unwrap(model).sound_features(audio)  # (B, C, S)

    def criterion(self, model: nn.Module, pred: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        """Owens' robust loss (or squared error) of a prediction, as ``OwensSoundNet.loss`` computes it."""
        from physdiff.models.owens import robust_loss

        raw = _unwrap(model)
        if pred.shape != target.shape:
            raise ValueError(f"predicted cochleagram {tuple(pred.shape)} vs target {tuple(target.shape)}")
        if raw.loss_kind == "robust":
            return robust_loss(pred, target, raw.robust_eps, reduction)
        per_clip = (pred.float() - target.float()).square().flatten(1).mean(1)  # (B,)
        return per_clip if reduction == "none" else per_clip.mean()

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        target = self.target(model, batch, device)  # (B, C, S)
        pred = model(self.inputs(batch, cfg, device, train=True))  # (B, C, S): through the DDP wrapper's forward
        return self.criterion(model, pred, target), {}

    @torch.no_grad()
    def predict(self, model: nn.Module, cfg: Any, split: str, max_batches: int = 0, loader: Any = None
                ) -> Iterator[tuple[list[str], Tensor, Tensor, Tensor]]:
        """(keys, true (B, C, S), predicted (B, C, S), materials (B,)) of every clip of ``split`` once."""
        device = next(model.parameters()).device
        loader = loader if loader is not None else self.loader(cfg, split, "eval", rank=0, world_size=1)
        for bi, batch in enumerate(loader):
            if max_batches and bi >= max_batches:
                break
            true = self.target(model, batch, device)
            pred = model(self.inputs(batch, cfg, device, train=False))
            yield [str(k) for k in batch["key"]], true.float().cpu(), pred.float().cpu(), batch["material"].cpu()

    def bank(self, model: nn.Module, cfg: Any) -> tuple[list[str], Tensor, Tensor]:
        """(keys, cochleagrams (N, C, S), materials (N,)) of every training recording: computed once (it does not
        depend on the weights)."""
        if self._bank is None:
            raw = _unwrap(model)
            keys, feats, mats = [], [], []
            for batch in self._audio_batches(cfg, BANK_SPLIT):
                keys += [str(k) for k in batch["key"]]
                feats.append(self.target(raw, batch, torch.device("cpu")).float())
                mats.append(torch.as_tensor(batch["material"]).long())
            self._bank = keys, torch.cat(feats), torch.cat(mats)
        return self._bank

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Validation loss; same-material share of the clips retrieved by the predicted and by the true cochleagram."""
        from physdiff.data.reader import load_manifest
        from physdiff.models.owens import nearest_clips

        try:
            load_manifest(self.shard_root, EVAL_SPLIT)
        except DataError:
            return {}
        trues, preds, mats = [], [], []
        for _keys, true, pred, mat in self.predict(model, cfg, EVAL_SPLIT, cfg.train.eval_batches):
            trues.append(true)
            preds.append(pred)
            mats.append(mat)
        if not mats:
            return {}
        true, pred, mat = torch.cat(trues), torch.cat(preds), torch.cat(mats).long()  # (V, C, S) x2, (V,)
        keys, bank, bank_mat = self.bank(model, cfg)
        row = {k: i for i, k in enumerate(keys)}
        _k, _d, idx_pred = nearest_clips(pred, bank, keys)  # (V, 1)
        _k, _d, idx_true = nearest_clips(true, bank, keys)
        share = torch.bincount(bank_mat, minlength=int(max(bank_mat.max(), mat.max())) + 1).double() / len(row)
        return {"val/loss": float(self.criterion(model, pred, true)),
                "val/mse": float((pred - true).square().mean()),
                "val/retrieval_same_material": float((bank_mat[idx_pred[:, 0]] == mat).double().mean()),
                "val/retrieval_same_material_true_features": float((bank_mat[idx_true[:, 0]] == mat).double().mean()),
                "val/retrieval_same_material_chance": float(share[mat].mean()),
                "val/clips": float(mat.numel())}

    # ------------------------------------------------------------------ export
    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        """The retrieval bank (training cochleagrams) and the other splits' true and predicted cochleagrams."""
        super().export(model, cfg, out)
        from physdiff.data.layout import SPLITS
        from physdiff.data.reader import load_manifest

        raw = _unwrap(model)
        shape = [raw.channels, raw.out_samples]
        out.manifest.update(input=cfg.owens.input, channels=shape[0], samples=shape[1], rate_hz=raw.rate,
                            arrays={"cochleagram": f"(N, {shape[0]}, {shape[1]}) cochleagram of the recording",
                                    "cochleagram_pred": f"(N, {shape[0]}, {shape[1]}) the network's prediction "
                                                        f"(splits other than {BANK_SPLIT})"})
        for split in SPLITS:
            try:
                sman = load_manifest(self.shard_root, split)
            except DataError:
                continue
            if split == BANK_SPLIT:
                loader = self._audio_batches(cfg, split)
                self._bank = None  # recomputed from this loader's pass, so skipped clips are accounted for
                keys, feats = [], []
                for batch in loader:
                    keys += [str(k) for k in batch["key"]]
                    feats.append(self.target(raw, batch, torch.device("cpu")).float())
                check_export_count("owens", split, keys, sman, self.shard_root, cfg, loader)
                arr = torch.cat(feats) if feats else torch.zeros(0, *shape)
                out.table(split, keys, {"cochleagram": arr}, {"role": "retrieval bank"}, skipped=list(loader.skipped))
                continue
            loader = self.loader(cfg, split, "eval", rank=0, world_size=1)
            keys, trues, preds = [], [], []
            t0 = time.time()
            for kb, true, pred, _mat in self.predict(model, cfg, split, loader=loader):
                keys += kb
                trues.append(true)
                preds.append(pred)
            seconds = (time.time() - t0) / max(1, len(keys))
            check_export_count("owens", split, keys, sman, self.shard_root, cfg, loader)
            empty = torch.zeros(0, *shape)
            out.table(split, keys, {"cochleagram": torch.cat(trues) if trues else empty,
                                    "cochleagram_pred": torch.cat(preds) if preds else empty},
                      {"role": "queries"}, skipped=list(loader.skipped), seconds_per_clip=seconds)
