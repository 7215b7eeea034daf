"""Checkpoints of the train state: orbax, asynchronous, the last K and the best kept.

Each checkpoint is a directory ``checkpoints/<step>/`` with the sharded train state and
a small JSON ``meta`` (where the data stood, the config's identity).  Orbax writes into
a temporary directory and renames it when complete, so a run killed mid-save leaves no
checkpoint that could be mistaken for a complete one.

A checkpoint is saved before its evaluation runs (an evaluation that fails or is killed
loses nothing), so evaluation results are recorded afterwards, in
``checkpoints/evaluations.json`` ({step: metrics}), and the best-checkpoint policy reads
them from there.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath
from absl import logging
from orbax.checkpoint import checkpoint_managers as policies


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored into this run, with the reason."""


class Checkpoints:
    """The run's checkpoint directory.

    every_steps: interval of regular saves; keep: the most recent checkpoints kept;
    best_metric: evaluation metric whose best checkpoint is kept too (``best_mode``
    'max' or 'min'); remove_partial: delete the temporary directories of saves that
    never completed (a killed run's), which only the run that writes here may do: a
    reader (evaluate, export) would delete a save in progress.
    """

    def __init__(self, directory: str, *, every_steps: int, keep: int,
                 best_metric: str | None = None, best_mode: str = "max",
                 async_save: bool = True, remove_partial: bool = False):
        self.directory = os.path.abspath(directory)
        self.best_metric, self.best_mode = best_metric, best_mode
        self._evaluations = self._read_evaluations()
        preserve = [policies.LatestN(n=max(1, keep))]
        if best_metric:
            preserve.append(_KeepBest(self))
        options = ocp.CheckpointManagerOptions(
            save_decision_policy=policies.FixedIntervalPolicy(max(1, every_steps)),
            preservation_policy=policies.AnyPreservationPolicy(preserve),
            enable_async_checkpointing=async_save, create=True,
            cleanup_tmp_directories=remove_partial)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    @property
    def _evaluations_file(self) -> str:
        return os.path.join(self.directory, EVALUATIONS_FILE)

    def _read_evaluations(self) -> dict[int, dict]:
        try:
            with open(self._evaluations_file) as f:
                return {int(k): v for k, v in json.load(f).items()}
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{self._evaluations_file}: unreadable ({e}); it records "
                                  f"the evaluations of the checkpoints: repair or delete it") from e

    def record_evaluation(self, step: int, metrics: dict) -> None:
        """Record the evaluation of (saved) checkpoint ``step``: the best-checkpoint policy
        and best_step() read it.  Process 0 writes the file (atomically)."""
        self._evaluations[int(step)] = {k: float(v) for k, v in metrics.items()
                                        if isinstance(v, (int, float))}
        if jax.process_index() == 0:
            os.makedirs(self.directory, exist_ok=True)
            tmp = self._evaluations_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump({str(k): v for k, v in sorted(self._evaluations.items())}, f, indent=1)
            os.replace(tmp, self._evaluations_file)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def best_step(self) -> int | None:
        """The step whose evaluation scored best, or None before any evaluation."""
        if not self.best_metric:
            return None
        scored = []
        for s in self.all_steps():
            # Runs saved before evaluations.json existed kept their metrics in orbax.
            m = self._evaluations.get(s) or self._manager.metrics(s)
            if m and self.best_metric in m:
                scored.append((float(m[self.best_metric]), s))
        if not scored:
            return None
        pick = max if self.best_mode == "max" else min
        return pick(scored)[1]

    def due(self, step: int, force: bool = False) -> bool:
        """Whether ``save(step, ..., force)`` would write a checkpoint (so a caller builds
        the state it saves only then)."""
        return step not in self.all_steps() and (force or self._manager.should_save(step))

    def save(self, step: int, state: Any, meta: dict, force: bool = False) -> bool:
        """Save (asynchronously) when the interval says so, or always with ``force``."""
        if not self.due(step, force):
            return False
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  meta=ocp.args.JsonSave(meta))
        saved = self._manager.save(step, args=args, force=force)
        if saved:
            logging.info("checkpoint: saving step %d to %s", step, self.directory)
        return saved

    def meta(self, step: int) -> dict:
        """The JSON meta saved with checkpoint ``step`` (no array is read)."""
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(restored["meta"] or {})

    def check_meta(self, step: int, run: dict, keys: tuple[str, ...]) -> None:
        """Raise CheckpointError when checkpoint ``step`` was made for another run: its
        meta differs from ``run`` in one of ``keys`` (model, joint count, ...)."""
        saved = self.meta(step)
        wrong = [f"{k} = {saved[k]!r} (this run: {run[k]!r})" for k in keys
                 if k in saved and saved[k] != run[k]]
        if wrong:
            raise CheckpointError(
                f"checkpoint {os.path.join(self.directory, str(step))} was made with "
                f"{', '.join(wrong)}: it cannot be restored into this run. Train in another "
                f"--workdir, or use the config the checkpoint was made with.")

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """(state, meta) of checkpoint ``step``, placed as ``abstract_state`` says
        (a pytree of jax.ShapeDtypeStruct with shardings)."""
        path = os.path.join(self.directory, str(step))
        problem = "checkpoint {} does not fit this run's train state (another model size, " \
                  "joint count or switch setting?): {}"
        # Shapes first, from the saved metadata: a restore that fails half-way leaves
        # orbax's reads of every array pending.
        differences = _differences(os.path.join(path, "state"), abstract_state)
        if differences:
            raise CheckpointError(problem.format(path, differences))
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(problem.format(path, e)) from e
        return restored["state"], dict(restored["meta"] or {})

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


EVALUATIONS_FILE = "evaluations.json"


class _KeepBest:
    """Orbax preservation policy: keep the checkpoint whose recorded evaluation is best
    (Checkpoints.best_step); the others are left to the remaining policies."""

    def __init__(self, checkpoints: Checkpoints):
        self._checkpoints = checkpoints

    def should_preserve(self, infos, *, context) -> list[bool]:
        best = self._checkpoints.best_step()
        return [info.step == best for info in infos]


def _leaf_name(path) -> str:
    """A pytree path as orbax names the array: field names and indices joined by dots."""
    return ".".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _differences(state_dir: str, abstract_state: Any, most: int = 10) -> str:
    """The arrays whose shapes differ between a saved state and ``abstract_state``, and
    those on one side only ('' when the saved shapes cannot be read)."""
    # The item's handler reads the item's own _METADATA; a Checkpointer would also look
    # for step metadata inside the item directory and warn that it is missing.
    handler = ocp.StandardCheckpointHandler()
    try:
        saved = handler.metadata(epath.Path(state_dir))
    except Exception:  # noqa: BLE001 - the caller reports the restore error instead
        return ""
    finally:
        handler.close()  # no async work left behind
    stored = {m.name: tuple(m.shape) for m in jax.tree.leaves(saved)}
    wanted = {_leaf_name(p): tuple(x.shape)
              for p, x in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    lines = [f"{name}: checkpoint {stored.get(name, 'has no such array')}, this run "
             f"{wanted.get(name, 'has no such array')}"
             for name in sorted(set(stored) | set(wanted)) if stored.get(name) != wanted.get(name)]
    more = f"; ... and {len(lines) - most} more" if len(lines) > most else ""
    return "; ".join(lines[:most]) + more
