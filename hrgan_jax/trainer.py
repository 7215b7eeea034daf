"""train_and_evaluate(config, workdir): builds everything from the config and owns the loop.

The workdir holds ``trainer.lock`` while a trainer runs, ``config.json`` (the config of
the latest accepted start; ``configs/`` keeps each one's: hrgan_jax/workdir.py), ``checkpoints/``
(orbax), TensorBoard event files, ``metrics.jsonl`` (every logged point, for
``curves.png``) and, after training, ``curves.png``.  A rerun with the same workdir
resumes from the latest complete checkpoint; the data stream resumes at the same batch,
since batch k is a function of (seed, k) only.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers, periodic_actions

from data_pipeline import keypoint_sets, pipeline
from hrgan_jax import checkpoints as ckpt_lib
from hrgan_jax import config_checks, draw, evaluation, models, parallel
from hrgan_jax import state as state_lib, step as step_lib, workdir as workdir_lib
from hrgan_jax.evaluation import inputs, runner


class NonFiniteError(FloatingPointError):
    """A loss or gradient was NaN or Inf (the update was not applied)."""


class _Preemption:
    """SIGTERM (and SIGINT) set a flag; the loop saves a checkpoint and returns."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        logging.warning("received signal %d: saving a checkpoint and stopping", signum)
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def agreed(self) -> bool:
        """Whether any process was asked to stop (every process must save the same step)."""
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils
        flags = multihost_utils.process_allgather(np.array(self.requested))
        return bool(np.any(flags))


class _Progress:
    """A progress bar on a terminal, periodic log lines otherwise (and in logs always)."""

    def __init__(self, start: int, total: int, enabled: bool):
        self.total, self.start = total, start
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    @property
    def is_bar(self) -> bool:
        return self._bar is not None

    def update(self, step: int, summary: dict[str, float] | None = None) -> None:
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if summary:
                self._bar.set_postfix({k: f"{v:.3g}" for k, v in summary.items()}, refresh=False)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _format(values: dict[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in values.items())


def _log_line(step: int, total: int, epoch: float, summary: dict[str, float]) -> str:
    """The periodic line without a terminal: the few numbers a person watches (every
    metric is in TensorBoard and metrics.jsonl)."""
    parts = [f"step {step}/{total}", f"epoch {epoch:.2f}"]
    names = (("content_loss", "content"), ("d_loss", "L_D"), ("k", "k_t"))
    parts += [f"{label} {summary[key]:.4g}" for key, label in names if key in summary]
    rate = summary.get("steps_per_sec", 0.0)
    parts.append(f"{summary.get('images_per_sec', 0.0):.1f} img/s")
    if rate > 0 and step < total:
        eta = int(round((total - step) / rate))
        parts.append(f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}")
    return "  ".join(parts)


def _is_time(step: int, every: int) -> bool:
    """Whether periodic work that runs every ``every`` steps (never when <= 0) runs at
    ``step`` (the number of updates done)."""
    return every > 0 and step % every == 0


class _MetricWindow:
    """The metrics of the steps since the last report.

    A step's metrics come to the host one step later (``add``), so the device never
    waits for the host; ``report`` collects the last step too and averages the window.
    A non-finite step stops the run here when config.train.nan_policy is 'stop'.
    """

    def __init__(self, nan_policy: str, global_batch: int, ckpt: ckpt_lib.Checkpoints):
        self._nan_policy, self._global_batch, self._ckpt = nan_policy, global_batch, ckpt
        self._pending: tuple[int, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._count, self._skipped, self._start = 0, 0, time.perf_counter()

    def add(self, index: int, metrics: Any) -> None:
        """The device metrics of the update from step ``index`` to ``index + 1``."""
        if self._pending is not None:
            self._collect(*self._pending)
        self._pending = (index, metrics)

    def _collect(self, index: int, metrics: Any) -> None:
        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if values.pop("finite") < 1.0:
            if self._nan_policy == "stop":
                where = self._ckpt.last_good() or "none yet"
                raise NonFiniteError(
                    f"step {index + 1} (batch {index} of the data stream): a loss or gradient "
                    f"is not finite ({_format(values)}); the update was not applied and no "
                    f"checkpoint holds it. Last good checkpoint: {where}. Set "
                    f"--config.train.nan_policy=skip to skip such steps instead.")
            logging.warning("step %d (batch %d): non-finite loss or gradient, update skipped",
                            index + 1, index)
            self._skipped += 1
        for k, v in values.items():
            if math.isfinite(v):
                self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1

    def report(self) -> dict[str, float] | None:
        """The window's averages and rates (None when it is empty); starts a new window."""
        if self._pending is not None:
            self._collect(*self._pending)
            self._pending = None
        if not self._count:
            return None
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        summary = {k: v / self._count for k, v in self._sums.items()}
        summary["images_per_sec"] = self._count * self._global_batch / elapsed
        summary["steps_per_sec"] = self._count / elapsed
        summary["skipped_steps"] = self._skipped  # non-finite updates not applied (nan_policy=skip)
        self._reset()
        return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       evaluator: Callable | None = None, devices=None,
                       allow_changed_meaning: bool = False) -> dict:
    """Train (resuming from ``workdir`` when it holds checkpoints) and evaluate.

    evaluator: ``evaluator(generator_variables, step) -> dict`` of metrics; default:
    built from the config (evaluation on config.data.val_split) unless
    ``config.eval.every_epochs`` < 0.  devices: the devices to train on (default: every
    device of every process).  allow_changed_meaning: resume even when the config
    changes one of workdir.MEANING_FIELDS since the last start (launch.py's
    --allow_changed_meaning).  Returns the last evaluation's metrics (or {}).

    One trainer per workdir: process 0 holds ``trainer.lock`` until it returns or
    raises.  Every start first runs the evaluations that are due for saved checkpoints
    but missing (a killed or failed one, the final one); a finished run's rerun runs
    only those and draws curves.png.
    """
    # ---- what can be checked in seconds, before anything is built or written ----------
    config_checks.check(config)
    mesh = parallel.make_mesh(devices)
    global_batch = int(config.train.batch_size)
    parallel.check_batch_size(global_batch, mesh, int(config.model.get("bn_group", 0)))
    steps_per_epoch = pipeline.steps_per_epoch(config.data, global_batch,
                                               num_joints=int(config.model.num_joints))
    if evaluator is None and config.eval.every_epochs >= 0:
        inputs.check(config)
    os.makedirs(workdir, exist_ok=True)
    lead = jax.process_index() == 0
    with workdir_lib.Lock(workdir, _say) if lead else contextlib.nullcontext():
        return _train(config, workdir, evaluator, mesh, steps_per_epoch, allow_changed_meaning)


def _say(line: str) -> None:
    """A line about the workdir for the user (process 0 only), on stderr."""
    if jax.process_index() == 0:
        print(line, file=sys.stderr, flush=True)


_STEP_FUNCTIONS: dict = {}


def _step_functions(config, steps_per_epoch: int) -> tuple:
    """(g_tx, d_tx, g_lr, d_lr, train_step) for this config: the same functions for the
    same config and epoch length within a process, so that a second run there (a
    notebook's, a test's after another) finds its step traced and compiled in jit's own
    caches instead of tracing and compiling it again.  The key is what the step reads: the config's
    model, adversarial, data and optim sections (the keypoint file's joint weights with
    them) and the epoch length.  The four made last are kept."""
    sections = {name: config[name].to_dict() for name in ("model", "adversarial", "data", "optim")}
    key = (json.dumps(sections, sort_keys=True, default=repr), int(steps_per_epoch),
           tuple(keypoint_sets.of_config(config.data).weights()))
    if key not in _STEP_FUNCTIONS:
        g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch)
        train_step = step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr)
        while len(_STEP_FUNCTIONS) >= 4:
            _STEP_FUNCTIONS.pop(next(iter(_STEP_FUNCTIONS)))
        _STEP_FUNCTIONS[key] = (g_tx, d_tx, g_lr, d_lr, train_step)
    return _STEP_FUNCTIONS[key]


def _train(config, workdir: str, evaluator: Callable | None, mesh, steps_per_epoch: int,
           allow_changed_meaning: bool) -> dict:
    """train_and_evaluate once the config is checked and the workdir is locked."""
    lead = jax.process_index() == 0
    global_batch = int(config.train.batch_size)
    num_joints = int(config.model.num_joints)

    # ---- the step ----------------------------------------------------------------------
    total = int(config.train.steps) if config.train.steps > 0 else int(
        config.train.epochs) * steps_per_epoch
    g_tx, d_tx, g_lr, d_lr, train_step = _step_functions(config, steps_per_epoch)
    rep, batch_sharding = parallel.replicated(mesh), parallel.data_sharded(mesh)
    # On accelerators the step takes and returns the state as a few flat buffers
    # (state_lib.FlatLayout): handing ~5,500 leaves to every call would cost the host more
    # than a GPU step's tenth.  On the CPU the pytree compiles in half the time.
    target = state_lib.abstract_state(config, g_tx, d_tx, mesh)
    layout = (state_lib.FlatLayout(target) if flat_state(config, mesh)
              else state_lib.TreeLayout())
    jit_step = jax.jit(layout.step(train_step), in_shardings=(rep, batch_sharding),
                       out_shardings=(rep, rep), donate_argnums=0)
    to_buffers = jax.jit(layout.ravel, out_shardings=rep)
    to_state = jax.jit(layout.unravel, out_shardings=rep)

    # ---- initialise, or restore the latest checkpoint ----------------------------------
    ckpt = ckpt_lib.Checkpoints(os.path.join(workdir, "checkpoints"),
                                every_steps=int(config.checkpoint.every_steps),
                                keep=int(config.checkpoint.keep),
                                best_metric=evaluation.best_metric(config) or None,
                                remove_partial=True)
    meta = {"global_batch": global_batch, "seed": int(config.seed), "data": config.data.name,
            "model": config.model.name, "num_joints": num_joints,
            "discriminator": models.network_config(config, "discriminator").name,
            "d_output": str(config.adversarial.get("d_output", "reconstruct")),
            "steps_per_epoch": steps_per_epoch}
    config_json = config.to_json_best_effort(indent=2, sort_keys=True)
    changed = workdir_lib.changes(workdir_lib.previous_config(workdir), config_json)
    found = None
    try:
        if ckpt.all_steps():
            workdir_lib.check_meaning(changed, workdir, ckpt.latest_step(), allow_changed_meaning)
            # The newest checkpoint that verifies; damaged ones are set aside, each said.
            found = ckpt.restore_newest_good(
                target, meta, ("model", "discriminator", "d_output", "num_joints"), say=_say)
    except (ckpt_lib.CheckpointError, workdir_lib.WorkdirError):
        ckpt.close()
        raise
    if found is None:
        state = parallel.replicate(state_lib.create(config, g_tx, d_tx), mesh)
        start = 0
        if lead:
            print(f"starting a new run in {workdir}: {total} steps ({steps_per_epoch} per epoch, "
                  f"global batch {global_batch} on {mesh.devices.size} devices)", flush=True)
    else:
        start, state, saved = found
        for key in ("global_batch", "seed", "steps_per_epoch"):
            if key in saved and saved[key] != meta[key]:
                logging.warning("resuming with %s = %s, but the checkpoint was made with %s: the "
                                "data stream will not continue exactly", key, meta[key], saved[key])
        if lead:
            print(f"the run in {workdir} is finished: step {start} of {total} "
                  f"({ckpt.directory}/{start})" if start >= total else
                  f"resuming from step {start} of {total} ({ckpt.directory}/{start})", flush=True)
            for key, (before, now) in changed.items():
                print(f"changed since the last start: {key} = {now!r} (was {before!r})",
                      flush=True)
    if lead:  # the start is accepted: the run's record
        workdir_lib.record_start(workdir, config_json, start)

    # ---- data, evaluation and reports --------------------------------------------------
    writer = metric_writers.create_default_writer(workdir, just_logging=not lead)
    if evaluator is None and config.eval.every_epochs >= 0:
        evaluator = runner.make_evaluator(config, mesh, workdir, writer)
    batches = device_batches = None
    if start < total:
        batches = pipeline.train(config.data, num_joints=num_joints, global_batch=global_batch,
                                 seed=int(config.seed), process_index=jax.process_index(),
                                 process_count=jax.process_count(), start_step=start)
        device_batches = parallel.prefetch_to_mesh(batches, mesh)  # next batch's transfer overlaps the step
    history_path = os.path.join(workdir, "metrics.jsonl")
    log_every = max(1, int(config.train.log_every))
    eval_every = steps_per_epoch * int(config.eval.every_epochs)  # <= 0: only at the end
    save_every = ckpt_every(config)
    progress = _Progress(start, total, lead)
    # Steps/s, ETA and the share of time spent evaluating, in the log every minute.
    timing = periodic_actions.ReportProgress(num_train_steps=total, every_secs=60)
    window = _MetricWindow(config.train.nan_policy, global_batch, ckpt)
    last_eval: dict = {}
    evaluated = 0  # evaluations left undone that this start ran

    def report(step: int) -> None:
        """One report per log step: TensorBoard and the log (the writer), metrics.jsonl,
        and the progress bar or a printed line."""
        summary = window.report()
        if summary is None:
            return
        # TensorBoard groups tags by their prefix: train/ here, eval/ for the evaluations.
        writer.write_scalars(step, {f"train/{k}": v for k, v in summary.items()})
        if lead:
            with open(history_path, "a") as f:
                f.write(json.dumps({"step": step, **summary}) + "\n")
        progress.update(step, {k: summary[k] for k in ("content_loss", "k") if k in summary})
        if lead and not progress.is_bar:
            print(_log_line(step, total, step / steps_per_epoch, summary), flush=True)

    # ---- the loop ----------------------------------------------------------------------
    step, failed = start, False
    with _Preemption() as preemption:
        try:
            # Work left undone first: evaluations due for saved checkpoints but missing.
            if evaluator is not None:
                evaluated, last_eval = _evaluate_missing(
                    evaluator, ckpt, lambda s: _is_time(s, eval_every) or s == total, start,
                    state, target, writer)
            buffers = to_buffers(state)
            del state  # from here on the state lives in ``buffers``; to_state(buffers) rebuilds it
            while step < total:
                with jax.profiler.StepTraceAnnotation("train", step_num=step):
                    batch = next(device_batches)
                    if step == start:  # compile first, then start every process's collectives together
                        jit_step = jit_step.lower(buffers, batch).compile()
                        parallel.barrier("train_step_compiled")
                    buffers, metrics = jit_step(buffers, batch)
                window.add(step, metrics)
                step += 1
                timing(step)

                evaluate_now = evaluator is not None and (_is_time(step, eval_every) or step == total)
                save_now = evaluate_now or step == total or _is_time(step, save_every)
                logged = save_now or _is_time(step, log_every)
                if logged:
                    report(step)
                # One process reacts at once; several agree at log steps (a collective).
                if jax.process_count() > 1:
                    stop = preemption.agreed() if logged else False
                else:
                    stop = preemption.requested
                # Save before evaluating: an evaluation that fails (or is killed) loses nothing.
                force = save_now or stop
                saving = ckpt.due(step, force)
                snapshot = to_state(buffers) if saving or evaluate_now else None
                if saving:
                    ckpt.save(step, snapshot, {**meta, "step": step}, force=force)
                if evaluate_now:
                    with timing.timed("evaluate"):
                        last_eval = _evaluate(evaluator, snapshot, step, ckpt)
                    writer.write_scalars(step, evaluation.tensorboard_scalars(last_eval))
                del snapshot
                if stop:
                    ckpt.wait()
                    logging.warning("stopped at step %d by a signal; checkpoint saved", step)
                    print(f"stopped at step {step}: checkpoint saved in {ckpt.directory}/{step}",
                          flush=True)
                    break

            # ---- the end ---------------------------------------------------------------
            report(step)
            total_skipped = int(parallel.to_host(to_state(buffers).skipped))
            if lead and total_skipped:
                print(f"{total_skipped} of {step} updates were skipped as non-finite "
                      f"(config.train.nan_policy=skip)", flush=True)
        except ckpt_lib.SaveError:
            failed = True
            raise
        except Exception as e:
            failed = True
            cause = ckpt_lib.io_error(e)  # a full disk, say, under metrics.jsonl or events
            if cause is None:
                raise
            raise ckpt_lib.SaveError(f"writing to {workdir} failed: {cause}; the last good "
                                     f"checkpoint is {ckpt.good_so_far() or 'none yet'}") from e
        finally:
            progress.close()
            batches_close = getattr(batches, "close", None)
            if batches_close:
                batches_close()
            # After a failure (a full disk fails these too), the failure is what is said.
            with contextlib.suppress(Exception) if failed else contextlib.nullcontext():
                ckpt.close()
                writer.flush()
    curves = os.path.join(workdir, "curves.png")
    if lead and step >= total and (step > start or evaluated or not os.path.exists(curves)):
        draw.training_curves(workdir)
    if not last_eval and step >= total:  # a finished run's rerun: its final evaluation
        last_eval = ckpt.evaluations().get(step, {})
    return last_eval


def _evaluate_missing(evaluator: Callable, ckpt: ckpt_lib.Checkpoints, due: Callable,
                      start: int, state, target, writer) -> tuple[int, dict]:
    """Evaluate the saved checkpoints whose evaluation is ``due(step)`` but missing from
    ``ckpt``'s record (killed, failed, or the final one), oldest first; ``state`` is the
    restored checkpoint ``start``.  Returns how many ran and the last one's metrics."""
    recorded = ckpt.evaluations()
    missing = [s for s in ckpt.all_steps() if s <= start and due(s) and s not in recorded]
    metrics, ran = {}, 0
    for step in missing:
        _say(f"checkpoint {ckpt.path(step)} has no evaluation yet: evaluating it first")
        if step == start:
            saved = state
        else:
            try:
                saved, _ = ckpt.restore(step, target)
            except ckpt_lib.DamagedCheckpoint as e:
                _say(f"{e}: skipped, moved to {ckpt.set_aside(step)}")
                continue
        metrics = _evaluate(evaluator, saved, step, ckpt)
        writer.write_scalars(step, evaluation.tensorboard_scalars(metrics))
        ran += 1
        del saved
    return ran, metrics


def _evaluate(evaluator: Callable, state, step: int, ckpt: ckpt_lib.Checkpoints) -> dict:
    """Evaluate the generator of ``state`` (already saved as checkpoint ``step``) and record
    the result with the checkpoint; a failure says that the checkpoint is safe."""
    try:
        metrics = evaluator(parallel.to_host(state.generator_variables()), step)
    except Exception:
        ckpt.wait()
        logging.error("the evaluation at step %d failed; checkpoint %s/%d is saved and a rerun "
                      "resumes from it", step, ckpt.directory, step)
        print(f"the evaluation at step {step} failed; checkpoint {ckpt.directory}/{step} is "
              f"saved: fix the cause below and rerun to resume from it", file=sys.stderr,
              flush=True)
        raise
    ckpt.record_evaluation(step, metrics)
    return metrics


def flat_state(config, mesh) -> bool:
    """config.train.flat_state: 'on', 'off', or 'auto' (flat on accelerators, not on the CPU)."""
    mode = config.train.get("flat_state", "auto")
    if mode == "auto":
        return mesh.devices.flat[0].platform != "cpu"
    return mode == "on"


def ckpt_every(config) -> int:
    return max(1, int(config.checkpoint.every_steps))
