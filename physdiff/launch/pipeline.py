"""``--stage all``: the whole pipeline as a list of steps held as data, run here or submitted to SLURM.

:func:`pipeline_steps` turns a config into steps: a step is a registered stage, the config overrides that
make it (a diffusion variant, the classifier's own data) and the steps whose outputs it reads::

    world ── shards ─┬─ prior ─────────────┐
                     ├─ video ─────────────┼─ diffusion-ours ─ index-ours ─┬─ generate
                     │        │            │        └─ mu_regressor ───────┤ (Fig. 5b's predicted mu)
                     │        │            ├─ diffusion-video ─────────────┤
                     │        │            └─ diffusion-<v> ─ index-<v> ───┤ (each Table 1 diffusion row)
                     │        └─ convnet, tts ─────────────────────────────┤ (Table 1's regressors)
                     └─ owens ─────────────────────────────────────────────┤ (Table 3, Owens et al.)
    classifier-world ─ classifier-shards ─ classifier ─────────────────────┴─ evaluate

(each comparison system's step exists when its row is evaluated: ``eval.variants`` / ``eval.table3`` / ``eval.fig5b``)

(``classifier-world`` / ``classifier-shards`` exist when ``classifier.world_videos`` > 0; otherwise the
classifier reads ``shards``.) Every step is skipped when its output is already complete for its config,
so rerunning the command picks up where it stopped.

Here (``--local``, or ``--cpu`` without ``--slurm``) the steps run in order in this process (training
steps through torchrun with ``--cpu --procs K``). On SLURM every step still to run is submitted at once
as its own job, each starting only when the jobs of the steps it reads have succeeded
(``--dependency=afterok``): the prior, the video encoder, the classifier and the diffusion variants
train side by side wherever the graph allows. A dry run prints the chain and submits nothing. MLflow:
one parent run (``pipeline-<hash>``) holds every stage run nested under it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physdiff import identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    """One job of the pipeline: a stage under a config derived from the pipeline's."""

    name: str  # unique, e.g. "diffusion-video"
    stage: str  # a name in physdiff.stages.STAGES
    overrides: tuple[tuple[str, Any], ...] = ()
    derive: str | None = None  # an identity kind whose derived config the step uses ("classifier": its own data)
    after: tuple[str, ...] = ()  # names of the steps whose outputs it reads

    def config(self, cfg: Any) -> Any:
        c = cfg.copy(dict(self.overrides)) if self.overrides else cfg
        return identity.config_for(c, self.derive) if self.derive else c

    def output(self, cfg: Any) -> Path:
        from physdiff.stages import stage_run_dir

        return stage_run_dir(self.config(cfg), self.stage)

    def complete(self, cfg: Any) -> bool:
        """True when the step's output is already complete for its config (it would do nothing)."""
        c = self.config(cfg)
        if self.stage == "world":
            from physdiff.world.generate import world_is_complete

            return bool(c.train.shards) or world_is_complete(c, identity.world_dir(c))
        if self.stage == "shards":
            return bool(c.train.shards) or (identity.shards_dir(c) / "summary.json").is_file()
        return (self.output(cfg) / "DONE.json").is_file()


def diffusion_variants(cfg: Any) -> list[str]:
    """The diffusion runs the pipeline trains: every Table 1 diffusion row, and the variant ``generate`` uses."""
    out: list[str] = []
    for v in (*cfg.eval.diffusion_variants, cfg.diffusion.variant):
        if v not in out:
            out.append(v)
    return out


def pipeline_steps(cfg: Any) -> list[Step]:
    """The steps of ``--stage all`` for ``cfg``, in an order that respects every dependency."""
    from physdiff.inference.conditioning import LATENT_NAME

    steps = [Step("world", "world"), Step("shards", "shards", after=("world",))]
    classifier_after: tuple[str, ...] = ("shards",)
    if identity.classifier_data_overrides(cfg):
        steps += [Step("classifier-world", "world", derive="classifier"),
                  Step("classifier-shards", "shards", derive="classifier", after=("classifier-world",))]
        classifier_after = ("classifier-shards",)
    steps += [Step("prior", "prior", after=("shards",)), Step("video", "video", after=("shards",)),
              Step("classifier", "classifier", after=classifier_after)]
    rows = cfg.eval.rows
    baselines: list[str] = []  # the comparison systems' own training steps the evaluation reads
    for row, stage in BASELINE_STEPS.items():
        if row in rows:
            # Owens et al. decode the frames themselves unless owens.input=features (the video export's per-frame nu)
            after = ("shards",) if stage == "owens" and cfg.owens.input != "features" else ("video",)
            steps.append(Step(stage, stage, after=after))
            baselines.append(stage)
    reads: dict[str, str] = {}  # variant -> the step generation / evaluation read for it
    for v in diffusion_variants(cfg):
        over = (("diffusion.variant", v),)
        steps.append(Step(f"diffusion-{v}", "diffusion", over, after=("prior", "video") if v == "ours" else ("video",)))
        reads[v] = f"diffusion-{v}"
        if LATENT_NAME[v] is not None:
            steps.append(Step(f"index-{v}", "index", over, after=(f"diffusion-{v}",)))
            reads[v] = f"index-{v}"
    if "predicted_mu" in rows:  # Fig. 5b: nu -> mu learned from the "ours" run's exported mu
        steps.append(Step("mu_regressor", "mu_regressor", (("diffusion.variant", "ours"),),
                          after=("video", "diffusion-ours")))
        baselines.append("mu_regressor")
    steps.append(Step("generate", "generate", after=(reads[cfg.diffusion.variant],)))
    prior = ("prior",) if "modal_residual" in rows else ()  # Fig. 5b's retrieved (w, gamma)
    steps.append(Step("evaluate", "evaluate",
                      after=("classifier", "video", *prior, *baselines, *(reads[v] for v in cfg.eval.diffusion_variants))))
    return steps


# evaluation row -> the training stage (and pipeline step) whose run it reads, besides the diffusion variants
BASELINE_STEPS = {"convnet": "convnet", "tts": "tts", "owens_retrieval": "owens"}


def open_parent_run(cfg: Any) -> tuple[Any, Any]:
    """The pipeline's MLflow parent run (reopened by a rerun); returns (tracker, cfg nesting every stage under it)."""
    from physdiff.training.tracking import Tracker

    folder = identity.artifact_dir(cfg, "pipeline")
    tracker = Tracker(cfg, folder, "pipeline", identity.artifact_hash(cfg, "pipeline"))
    rid = tracker.start()
    if rid:
        return tracker, cfg.copy({"tracking.parent_run_id": rid})
    return tracker, cfg


def run_local(args: Any, cfg: Any, run_step: Any) -> Any:
    """Every step in order in this process; ``run_step(args, step_cfg, stage, label)`` launches one."""
    t0 = time.time()
    tracker, cfg = open_parent_run(cfg)
    last = None
    try:
        for step in pipeline_steps(cfg):
            log.info(f"[all] {step.name} ({time.time() - t0:.0f} s elapsed)")
            last = run_step(args, step.config(cfg), step.stage, step.name)
            if last.returncode:
                tracker.finish("FAILED")
                return last
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    log.info(f"[all] done in {time.time() - t0:.0f} s")
    return last


def submit_slurm(args: Any, cfg: Any, submit_step: Any) -> tuple[dict[str, str], Any]:
    """Submit every step still to run as a SLURM job chained by ``afterok``; returns ({step: job id}, last launch)."""
    tracker, cfg = open_parent_run(cfg)
    jobs: dict[str, str] = {}
    launches: list[Any] = []  # in submission order: each one's dependencies come before it
    for step in pipeline_steps(cfg):
        if step.complete(cfg):
            log.info(f"[all] {step.name}: complete, nothing submitted")
            continue
        after = [jobs[u] for u in step.after if u in jobs]
        launches.append(submit_step(args, step.config(cfg), step.stage, step.name, after))
        jobs[step.name] = str(launches[-1].job.job_id)
        log.info(f"[all] {step.name}: job {jobs[step.name]}" + (f" after {','.join(after)}" if after else ""))
    tracker.set_tags({"physdiff.slurm_jobs": ",".join(f"{k}={v}" for k, v in jobs.items())})
    log.info("[all] submitted: " + (", ".join(f"{k}={v}" for k, v in jobs.items()) or "nothing (all complete)"))
    if getattr(args, "wait", False):
        # every job in order, not only the last: when one fails, SLURM cancels its dependents before they run,
        # and without accounting submitit cannot tell a cancelled job from a pending one (it would wait forever)
        try:
            for launch in launches:
                launch.job.result()
        except BaseException:  # a failed job (its error re-raised, naming it) or an interrupted wait
            tracker.finish("FAILED")
            raise
    tracker.finish("FINISHED")
    return jobs, (launches[-1] if launches else None)


def print_chain(args: Any, cfg: Any, slurm: bool) -> list[Step]:
    """The dry run of ``--stage all``: every step, its dependencies, and on SLURM the script of its job."""
    from physdiff.launch.slurm import job_folder, sbatch_text, slurm_parameters
    from physdiff.stages import stage

    steps = pipeline_steps(cfg)
    print(f"# pipeline: {len(steps)} steps ({'SLURM jobs' if slurm else 'run here, in order'})")
    for step in steps:
        c = step.config(cfg)
        state = "complete" if step.complete(cfg) else "to run"
        deps = ", ".join(step.after) or "none"
        print(f"\n## {step.name}: stage {step.stage} ({stage(step.stage).kind}), after: {deps}; {state}")
        print(f"# output: {step.output(cfg)}")
        if step.overrides or step.derive:
            print("# config: " + ", ".join([f"{k}={v}" for k, v in step.overrides]
                                           + ([f"derived for {step.derive}"] if step.derive else [])))
        if slurm:
            tasks = "train" if stage(step.stage).kind == "train" else "one"
            # job ids do not exist yet: the dependency names the steps (afterok:prior:video)
            params = slurm_parameters(args, c, step.name, tasks=tasks, after=list(step.after))
            print(sbatch_text(job_folder(c, step.output(cfg).name), params))
    return steps
