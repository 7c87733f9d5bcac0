"""The training engine: one loop for every stage, distributed by Accelerate.

    result = train(cfg, recipe)            # in-process (one GPU / CPU), or under torchrun / SLURM

What it does, in order (nanoGPT-style loop, torchtitan-style separation of model and distribution):

1. Run identity: ``<data_root>/runs/<stage>-<hash>`` where the hash covers only the config keys the
   stage depends on (its row of :data:`physdiff.identity.SECTIONS`, or ``recipe.sections``) minus
   non-semantic fields. The resolved config is written there as ``config.json``; a finished run has
   ``DONE.json`` (:mod:`physdiff.artifacts`) and is not retrained.
2. Resume: the newest *complete* checkpoint (see :mod:`physdiff.training.checkpoint`) restores the
   model, optimizer, lr schedule, EMA, grad scaler, every rank's RNG and the data cursor
   (epoch, micro-batch), so an interrupted run finishes with the weights of an uninterrupted one.
3. Loop: AdamW (``recipe.learning_rate``, ``recipe.weight_decay``), the recipe's lr schedule (lr x ``lr_decay``
   per epoch by default), gradient
   accumulation (no DDP all-reduce on non-final micro-batches), clipping, optional EMA, autocast
   for bf16/fp16. At every optimiser-step boundary all ranks agree (one ``all_reduce``) on
   (a) a non-finite loss or gradient norm -> stop with :class:`TrainingDiverged` before the update,
   leaving the last checkpoint intact; (b) a stop request (signal flag, ``stop_fn``) -> save and return.
4. Checkpoints every ``checkpoint_every`` steps, at every epoch end, and on stop; keep the last K.
5. Rank 0 evaluates (``recipe.evaluate``) every ``eval_every`` epochs, logs to MLflow + metrics.jsonl,
   calls ``report_fn(metrics, checkpoint_dir)`` (the Ray Tune hook) and draws the progress bar.
6. After the last epoch rank 0 exports the weights (``export/model.safetensors``), runs ``recipe.export``
   for the stage's per-clip products, writes ``export/manifest.json`` and then ``DONE.json``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from physdiff import identity
from physdiff.artifacts import DONE, ExportWriter, write_done
from physdiff.errors import PhysdiffError
from physdiff.logs import progress_bar
from physdiff.training import checkpoint as ck
from physdiff.training import runlock
from physdiff.training.distributed import all_reduce_max, all_reduce_mean, barrier, broadcast_int, make_accelerator
from physdiff.training.best import BestKeeper
from physdiff.training.ema import EMA
from physdiff.training.recipe import EvalContext, Recipe
from physdiff.training.signals import NONE, REQUEUE, STOP, StopFlag
from physdiff.training.tracking import Tracker

log = logging.getLogger(__name__)

ReportFn = Callable[[dict[str, float], Path | None], None]
StopFn = Callable[[], bool]


class TrainingDiverged(PhysdiffError):
    """A non-finite loss or gradient: the run stops; its last good checkpoint is untouched."""


@dataclass
class StageResult:
    stage: str
    run_dir: Path
    run_hash: str
    status: str  # "finished" | "skipped" (already DONE) | "stopped" | "requeue"
    step: int = 0
    epoch: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    exports: dict[str, Any] = field(default_factory=dict)


def run_config(cfg: Any, recipe: Recipe) -> Any:
    """The config the recipe's run is made from (a derived one for e.g. the metric classifier, see physdiff.identity)."""
    return identity.config_for(cfg, recipe.name) if recipe.name in identity.SECTIONS else cfg


def run_hash(cfg: Any, recipe: Recipe) -> str:
    return identity.artifact_hash(run_config(cfg, recipe), recipe.name, sections=recipe.sections)


def run_dir_for(cfg: Any, recipe: Recipe) -> Path:
    """``<data_root>/runs/<stage>[-<variant>]-<hash>``: the same config always lands in the same folder."""
    return identity.artifact_dir(run_config(cfg, recipe), recipe.name, sections=recipe.sections)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _read_done(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / DONE
    return json.loads(p.read_text()) if p.exists() else None


def train(
    cfg: Any,
    recipe: Recipe,
    *,
    report_fn: ReportFn | None = None,
    stop_fn: StopFn | None = None,
    stop_flag: StopFlag | None = None,
    cpu: bool | None = None,
) -> StageResult:
    """Train ``recipe`` under ``cfg`` to completion (or to a stop request); see the module docstring."""
    cfg = run_config(cfg, recipe)
    tc = cfg.train
    acc = make_accelerator(tc.mixed_precision, cpu)
    rank, world, device = acc.process_index, acc.num_processes, acc.device
    is_main = acc.is_main_process
    recipe.setup(cfg, rank, world)
    rhash = run_hash(cfg, recipe)
    run_dir = run_dir_for(cfg, recipe)

    done = _read_done(run_dir)
    if done is not None:
        return _skipped(recipe, run_dir, rhash, done)

    # One process trains a run folder at a time (physdiff.training.runlock): rank 0 holds <run>/run.lock until
    # this returns, so a second launch of the same config waits train.lock_timeout s, then refuses.
    with runlock.training_lock(run_dir, is_main, device, tc.lock_timeout, recipe.name):
        done = _read_done(run_dir)  # it may have finished while this process waited for the lock
        if done is not None:
            return _skipped(recipe, run_dir, rhash, done)
        return _train_locked(cfg, recipe, acc, rhash, run_dir, report_fn=report_fn, stop_fn=stop_fn,
                             stop_flag=stop_flag)


def _skipped(recipe: Recipe, run_dir: Path, rhash: str, done: dict[str, Any]) -> StageResult:
    return StageResult(recipe.name, run_dir, rhash, "skipped", done.get("step", 0), done.get("epoch", 0),
                       done.get("metrics", {}), done.get("mlflow_run_id"), done.get("exports", {}))


def _train_locked(cfg: Any, recipe: Recipe, acc: Any, rhash: str, run_dir: Path, *, report_fn: ReportFn | None,
                  stop_fn: StopFn | None, stop_flag: StopFlag | None) -> StageResult:
    """The body of :func:`train`, run with the run folder's lock held."""
    tc = cfg.train
    rank, world, device = acc.process_index, acc.num_processes, acc.device
    is_main = acc.is_main_process
    ckpt_dir = run_dir / "checkpoints"
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.write_json(run_dir / "config.json")
        ckpt_dir.mkdir(exist_ok=True)
        for p in ck.sweep_incomplete(ckpt_dir):
            log.info(f"[{recipe.name}] removed an incomplete checkpoint write: {p.name}")
    barrier()

    if tc.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(cfg.seed)  # identical initial weights on every rank
    model = recipe.build_model(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate(cfg), weight_decay=recipe.weight_decay(cfg))
    nb = recipe.num_train_batches(cfg, world)
    if nb < 1:
        raise PhysdiffError(f"stage {recipe.name}: no training batches for {world} rank(s); is the training split empty?")
    scheduler, sched_every = recipe.build_scheduler(optimizer, cfg, nb)  # stepped per "epoch" or per "step"
    ema = EMA(model, tc.ema_decay) if tc.ema_decay > 0 else None
    model, optimizer = acc.prepare(model, optimizer)  # the scheduler stays ours: we step it
    raw = acc.unwrap_model(model)
    seed_everything(cfg.seed * 1000 + rank)  # per-rank streams (dropout, augmentation)

    # ------------------------------------------------------------------ resume
    step, epoch, cursor, metrics = 0, 0, 0, {}
    # rank 0 picks the newest checkpoint that loads, moving damaged newer ones aside (and saying so); a refused
    # one (a pickled object) stops every rank, not rank 0 alone
    latest, refused = None, None
    if is_main:
        try:
            latest = ck.resume_point(ckpt_dir, log=lambda m: log.warning(f"[{recipe.name}] {m}"))
        except ck.CheckpointError as e:
            refused = e
    chosen = broadcast_int(-2 if refused is not None else (latest.step if latest else -1), device)
    if refused is not None:
        raise refused
    if chosen == -2:
        raise ck.CheckpointError(f"rank 0 refused the checkpoints in {ckpt_dir} (see its error)")
    if chosen >= 0:
        path = ckpt_dir / f"step_{chosen:08d}"
        state = latest.state if latest is not None else ck.load_state(path)
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        if acc.scaler is not None and state.get("scaler"):
            acc.scaler.load_state_dict(state["scaler"])
        meta = ck.load_meta(path)
        step, epoch, cursor = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        metrics = meta.get("metrics", {})
        rng = ck.load_rank_rng(path, rank)
        if rng is not None:
            ck.set_rng_state(rng)
        if meta.get("world_size") != world and is_main:
            log.info(f"[{recipe.name}] resuming a {meta.get('world_size')}-rank checkpoint on {world} ranks: "
                  "the data order changes from here")
        if is_main:
            log.info(f"[{recipe.name}] resumed from {path} (epoch {epoch}, batch {cursor}, step {step})")

    tracker = Tracker(cfg, run_dir, recipe.name, rhash) if is_main else None
    mlflow_id = tracker.start() if tracker else None
    if tracker:
        tracker.set_tags({"physdiff.world_size": world})
        if chosen >= 0:
            tracker.record_resume(chosen)

    own_flag = stop_flag is None
    flag = stop_flag or StopFlag().install()
    n_epochs = recipe.num_epochs(cfg)
    eval_every = recipe.eval_every(cfg)
    selection = recipe.selection(cfg)  # (metric, "min" | "max") on the validation split, or None
    keeper = BestKeeper(run_dir, *selection) if (selection and is_main) else None
    stop_early = False
    accum = tc.grad_accum
    clip_at = recipe.grad_clip(cfg)
    clip_grads = clip_at > 0
    check_norm = tc.mixed_precision != "fp16"  # the fp16 scaler skips overflowing steps by itself

    # a tqdm bar on a terminal; in a log file one line every 10 % or 60 s (physdiff.logs)
    bar = progress_bar(n_epochs * nb, recipe.name, initial=min(epoch * nb + cursor, n_epochs * nb),
                       enabled=is_main and tc.progress)

    def save(tag: str) -> Path:
        """All ranks: write RNG files into one agreed temporary folder; rank 0 completes and renames it."""
        token = broadcast_int(int.from_bytes(os.urandom(6), "little") if is_main else 0, device)  # no RNG use
        tmp = ck.tmp_dir_for(ckpt_dir, step, f"{token:x}")
        ck.write_rank_rng(tmp, rank)
        barrier()
        final = ckpt_dir / f"step_{step:08d}"
        if is_main:
            state = {
                "model": raw.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "ema": ema.state_dict() if ema is not None else {},
                "scaler": acc.scaler.state_dict() if acc.scaler is not None else {},
            }
            meta = {
                "stage": recipe.name, "run_hash": rhash, "step": step, "epoch": epoch, "batch_in_epoch": cursor,
                "world_size": world, "reason": tag, "metrics": metrics, "time": time.time(),
                "config": cfg.to_dict(),
            }
            ck.finalize(tmp, ckpt_dir, step, state, meta, tc.keep_checkpoints)
        barrier()
        return final

    status = "finished"
    t_log, clips_since, loss_sum, loss_n = time.time(), 0, 0.0, 0
    try:
        while epoch < n_epochs and status == "finished":
            local_bad = 0.0
            group_loss = 0.0
            for i, batch in enumerate(_isolated(recipe.train_batches(cfg, epoch, rank, world))):
                if i >= nb:
                    break
                if i < cursor:  # resume: these micro-batches were consumed before the checkpoint
                    continue
                group_start = (i // accum) * accum
                group_len = min(accum, nb - group_start)
                sync = i + 1 == group_start + group_len
                no_sync = acc.no_sync(model) if (world > 1 and not sync) else contextlib.nullcontext()
                with no_sync:
                    with acc.autocast():
                        loss, extras = recipe.loss(model, batch, cfg)
                    acc.backward(loss / group_len)
                lv = float(loss.detach())
                if not math.isfinite(lv):
                    local_bad = 1.0
                group_loss += lv / group_len
                clips_since += _batch_len(batch)
                bar.update(1)
                if not sync:
                    continue

                # ---- optimiser-step boundary: every rank takes part in the same collectives
                want = flag.code
                if stop_fn is not None and stop_fn():
                    want = max(want, STOP)
                bad, stop_code = all_reduce_max([local_bad, float(want)], device)
                # the norm is measured also without clipping (max_norm inf scales by exactly 1): the
                # non-finite check and train/grad_norm hold for every recipe
                grad_norm = float(acc.clip_grad_norm_(model.parameters(), clip_at if clip_grads else math.inf))
                if check_norm and not math.isfinite(grad_norm):
                    bad = 1.0
                if bad:
                    last = ck.latest_checkpoint(ckpt_dir)
                    raise TrainingDiverged(
                        f"stage {recipe.name}: non-finite loss or gradient at epoch {epoch}, batch {i}, step {step + 1}; "
                        f"stopped before the update. Last good checkpoint: {last.path if last else 'none'} "
                        f"(run folder {run_dir}). Lower train.lr or check the data."
                    )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if sched_every == "step":
                    scheduler.step()
                if ema is not None:
                    ema.update(raw)
                step += 1
                cursor = i + 1
                loss_sum, loss_n = loss_sum + group_loss, loss_n + 1
                group_loss = 0.0

                if step % tc.log_every == 0:
                    mean_loss = all_reduce_mean(loss_sum / max(loss_n, 1), device)
                    dt = max(time.time() - t_log, 1e-9)
                    row = {"train/loss": mean_loss, "train/lr": optimizer.param_groups[0]["lr"],
                           "train/clips_per_s": clips_since * world / dt}
                    row["train/grad_norm"] = grad_norm
                    row.update({f"train/{k}": float(v) for k, v in extras.items()})
                    metrics.update(row)
                    if tracker:
                        tracker.log_metrics(row, step, epoch)
                    if bar is not None:
                        bar.set_postfix(loss=f"{mean_loss:.4f}", epoch=epoch)
                    t_log, clips_since, loss_sum, loss_n = time.time(), 0, 0.0, 0

                if stop_code != NONE:
                    status = "requeue" if stop_code >= REQUEUE else "stopped"
                    save("signal")
                    break
                if step % tc.checkpoint_every == 0:
                    save("periodic")
            if status != "finished":
                break

            # ---- epoch end
            if sched_every == "epoch":
                scheduler.step()
            epoch, cursor = epoch + 1, 0
            if epoch % eval_every == 0 or epoch == n_epochs:
                want_stop = 0
                if is_main:
                    ev = _evaluate(recipe, raw, ema, cfg, run_dir, epoch, step)
                    metrics.update(ev)
                    if keeper is not None:
                        keeper.update(ev, _eval_model(raw, ema), epoch, step)
                        want_stop = int(keeper.should_stop(tc.patience) and epoch < n_epochs)
                    if tracker:
                        tracker.log_metrics(ev, step, epoch)
                        tracker.log_artifacts(run_dir / "media" / f"epoch_{epoch:04d}", f"media/epoch_{epoch:04d}")
                stop_early = bool(broadcast_int(want_stop, device))  # every rank stops at the same epoch
                barrier()
            last_ckpt = save("epoch")
            if is_main and report_fn is not None:
                report_fn(dict(metrics, epoch=epoch, step=step), last_ckpt)
            if stop_early:
                log.info(f"[{recipe.name}] early stop at epoch {epoch}: {keeper.key if keeper else 'the selection metric'} "
                      f"did not improve for {tc.patience} evaluations")
                break
    except SystemExit:
        # Ray Tune stops a trial (e.g. ASHA) by raising SystemExit from report_fn: not a failure.
        if tracker:
            tracker.finish("KILLED")
        raise
    except BaseException:
        if tracker:
            tracker.finish("FAILED")
        raise
    finally:
        if bar is not None:
            bar.close()
        if own_flag:
            flag.uninstall()

    exports: dict[str, Any] = {}
    if status == "finished":
        if is_main:
            export_model = _eval_model(raw, ema)
            if keeper is not None and keeper.has_best:
                export_model = copy.deepcopy(export_model)
                keeper.load_into(export_model)  # the export describes the epoch selected on the validation split
            export_model.eval()
            out = ExportWriter(run_dir, recipe.name, run_hash=rhash, step=step, epoch=epoch,
                               selected=keeper.record if keeper is not None else None)
            out.weights(export_model.state_dict(), ema=str(ema is not None))
            recipe.export(export_model, cfg, out)
            exports = out.finish()
            done = {"stage": recipe.name, "run_hash": rhash, "step": step, "epoch": epoch, "metrics": metrics,
                    "selected": keeper.record if keeper is not None else None, "stopped_early": stop_early,
                    "mlflow_run_id": mlflow_id, "exports": exports, "world_size": world, "time": time.time()}
            write_done(run_dir, done)
            if tracker:
                tracker.log_artifact(run_dir / "export" / "manifest.json", "export")
                for name in (DONE, "metrics.jsonl"):  # the essentials, not the whole run folder
                    tracker.log_artifact(run_dir / name)
                tracker.finish("FINISHED")
        barrier()
    elif tracker:
        tracker.finish("KILLED")  # reopened as RUNNING by the requeued job
    return StageResult(recipe.name, run_dir, rhash, status, step, epoch, metrics, mlflow_id, exports)


def _isolated(batches: Any) -> Any:
    """Yield from ``batches`` without letting data loading touch the training RNG stream.

    A torch DataLoader draws its base seed from the global torch RNG when an iterator starts; a
    resumed run starts its iterator mid-epoch, so without this the dropout stream after a resume
    would differ from an uninterrupted run's. The data order depends on (seed, epoch, rank) only.
    """
    it = iter(batches)
    while True:
        with torch.random.fork_rng(devices=[]):
            try:
                batch = next(it)
            except StopIteration:
                return
        yield batch


def _batch_len(batch: Any) -> int:
    if isinstance(batch, dict):
        for v in batch.values():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                return int(v.shape[0])
    return 0


def _eval_model(raw: torch.nn.Module, ema: EMA | None) -> torch.nn.Module:
    if ema is None:
        return raw
    m = copy.deepcopy(raw)
    ema.copy_to(m)
    return m


def _evaluate(recipe: Recipe, raw: torch.nn.Module, ema: EMA | None, cfg: Any, run_dir: Path, epoch: int, step: int) -> dict[str, float]:
    """Rank 0: evaluate with the EMA weights if any, without disturbing the training RNG streams."""
    saved = ck.rng_state()
    model = _eval_model(raw, ema)
    was_training = model.training
    model.eval()
    media = run_dir / "media" / f"epoch_{epoch:04d}"
    media.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad():
            out = recipe.evaluate(model, cfg, EvalContext(run_dir, epoch, step, media, cfg.tracking.audio_examples))
    finally:
        model.train(was_training)
        ck.set_rng_state(saved)
    return {k: float(v) for k, v in out.items()}
