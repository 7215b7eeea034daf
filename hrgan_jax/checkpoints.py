"""Checkpoints of the train state: orbax, asynchronous, the last K and the best kept.

Each checkpoint is a directory ``checkpoints/<step>/`` with the sharded train state, a
small JSON ``meta`` (where the data stood, the config's identity) and ``checksums``: a
CRC-32 of every array and of the meta, computed from the host values handed to orbax.
Orbax writes the three into a temporary directory and renames it when complete, so a
run killed mid-save leaves no checkpoint that could be mistaken for a complete one, and
a checkpoint with its checksums is one whose save completed.  A restore verifies every
array against them: a checkpoint that is incomplete, unreadable or fails its checksums
raises DamagedCheckpoint (the trainer sets it aside in ``checkpoints-damaged/`` and
resumes from the newest good one).

A checkpoint is saved before its evaluation runs (an evaluation that fails or is killed
loses nothing), so evaluation results are recorded afterwards, in
``checkpoints/evaluations.json`` ({step: metrics}), and the best-checkpoint policy reads
them from there.
"""
from __future__ import annotations

import errno
import json
import logging as logging_std
import os
import shutil
import threading
import time
import zlib
from concurrent import futures
from typing import Any

import jax
import orbax.checkpoint as ocp
import numpy as np
from etils import epath
from absl import logging
from orbax.checkpoint import checkpoint_managers as policies


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored into this run, with the reason."""


class DamagedCheckpoint(CheckpointError):
    """A checkpoint that is incomplete, cannot be read, or differs from what was saved."""


class SaveError(CheckpointError):
    """Writing a checkpoint failed (a full disk, an I/O error): the cause, in one line."""


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
        self._writer = remove_partial
        self._verified: set[int] = set()  # restored and verified here
        self._saved: list[int] = []  # saved here and on disk (checksums of the values written)
        self._pending: list[int] = []  # saves handed to orbax, maybe still being written
        self._failed = False  # a save failed (and SaveError said so)
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

    def evaluations(self) -> dict[int, dict]:
        """{step: metrics} of the recorded evaluations (evaluations.json)."""
        return dict(self._evaluations)

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
        """Save (asynchronously) when the interval says so, or always with ``force``.
        The checksums are computed here, from the host values of ``state``."""
        if not self.due(step, force):
            return False
        meta = {**meta, "checksums": "crc32"}  # a checkpoint without them is incomplete
        checksums = {"meta": _meta_checksum(meta), "arrays": array_checksums(state)}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  meta=ocp.args.JsonSave(meta),
                                  checksums=ocp.args.JsonSave(checksums))
        try:  # orbax first waits for the previous save, whose failure surfaces here
            saved = self._manager.save(step, args=args, force=force)
        except Exception as e:  # noqa: BLE001 - whatever the file system or orbax raises
            raise self._save_failed(e, self._pending or [step]) from e
        self._done()  # the previous save completed
        if saved:
            self._pending.append(step)
            logging.info("checkpoint: saving step %d to %s", step, self.directory)
        return saved

    def _done(self) -> None:
        self._saved += self._pending
        self._pending = []

    def _save_failed(self, e: BaseException, steps: list[int]) -> SaveError:
        """The one-line error of a failed save: where, the cause (ENOSPC, EIO, ...), and
        the last good checkpoint."""
        self._pending, self._failed = [], True
        _QUIET.failed = True
        where = ", ".join(self.path(s) for s in steps) or self.directory
        try:
            free = f" ({shutil.disk_usage(self.directory).free:,} bytes free there)"
        except OSError:
            free = ""
        return SaveError(f"saving checkpoint {where} failed: {io_error(e) or _first_line(e)}"
                         f"{free}; the last good checkpoint is {self.good_so_far() or 'none yet'}")

    def good_so_far(self) -> str | None:
        """The newest checkpoint verified or known saved, without waiting for pending
        saves (last_good() waits)."""
        good = set(self._verified) | set(self._saved)
        return self.path(max(good)) if good else None

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(step))

    def last_good(self) -> str | None:
        """The newest verified checkpoint (its path), after pending saves complete: one
        this run restored and verified, or one it saved (with the checksums of the values
        it wrote).  None when there is none."""
        self.wait()
        return self.good_so_far()

    def meta(self, step: int) -> dict:
        """The JSON meta saved with checkpoint ``step`` (no array is read)."""
        path = self.path(step)
        missing = [item for item in ("meta", "state") if not os.path.isdir(os.path.join(path, item))]
        if missing:
            raise DamagedCheckpoint(f"checkpoint {path} is incomplete: no {' or '.join(missing)}/")
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 - whatever orbax raises for a file it cannot parse
            raise DamagedCheckpoint(f"checkpoint {path}: its meta cannot be read "
                                    f"({_first_line(e)})") from e
        if not isinstance(restored["meta"], dict):
            raise DamagedCheckpoint(f"checkpoint {path}: its meta is not a JSON object")
        return dict(restored["meta"])

    def check_meta(self, step: int, run: dict, keys: tuple[str, ...]) -> None:
        """Raise CheckpointError when checkpoint ``step`` was made for another run: its
        meta differs from ``run`` in one of ``keys`` (model, joint count, ...)."""
        saved = self.meta(step)
        wrong = [f"{k} = {saved[k]!r} (this run: {run[k]!r})" for k in keys
                 if k in saved and saved[k] != run[k]]
        if wrong:
            raise CheckpointError(
                f"checkpoint {self.path(step)} was made with "
                f"{', '.join(wrong)}: it cannot be restored into this run. Train in another "
                f"--workdir, or use the config the checkpoint was made with.")

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """(state, meta) of checkpoint ``step``, placed as ``abstract_state`` says
        (a pytree of jax.ShapeDtypeStruct with shardings), every array and the meta
        verified against the checksums saved with them.  Raises CheckpointError when
        the checkpoint does not fit this run, DamagedCheckpoint when it is incomplete,
        unreadable or differs from what was saved."""
        path = self.path(step)
        meta = self.meta(step)
        # Shapes first, from the saved metadata: a restore that fails half-way leaves
        # orbax's reads of every array pending.
        differences = _differences(os.path.join(path, "state"), abstract_state)
        if differences:
            raise CheckpointError(
                f"checkpoint {path} does not fit this run's train state (another model size, "
                f"joint count or switch setting?): {differences}")
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if os.path.isdir(os.path.join(path, "checksums")):
            items["checksums"] = ocp.args.JsonRestore()
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as e:  # noqa: BLE001 - a damaged file fails in tensorstore, orbax or json
            raise DamagedCheckpoint(f"checkpoint {path} cannot be read: {_first_line(e)}") from e
        state, checksums = restored["state"], restored.get("checksums")
        if checksums is None:
            if meta.get("checksums"):  # saved with checksums, which are gone
                raise DamagedCheckpoint(f"checkpoint {path} is incomplete: no checksums/")
            logging.warning("checkpoint %s was saved without checksums: restored unverified", path)
        else:
            _verify(path, state, meta, checksums)
        self._verified.add(step)
        return state, meta

    def set_aside(self, step: int) -> str:
        """Move damaged checkpoint ``step`` out of the way (into ``checkpoints-damaged/``,
        never deleted) and return where it went.  Only the writer (process 0) moves it."""
        if not self._writer:
            raise RuntimeError("a reader of the checkpoints must not move them")
        where = os.path.join(self.directory + "-damaged",
                             f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(where), exist_ok=True)
            os.rename(self.path(step), where)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices(f"checkpoint {step} set aside")
        self._manager.reload()
        return where

    def restore_newest_good(self, abstract_state: Any, run: dict, keys: tuple[str, ...],
                            say=print) -> tuple[int, Any, dict] | None:
        """(step, state, meta) of the newest checkpoint that restores and verifies, or
        None when there is none.  Each damaged one on the way is set aside, with one
        line (``say``) naming it, why, and where it went; a checkpoint made for another
        run (``check_meta``) or that does not fit ``abstract_state`` raises CheckpointError."""
        for step in sorted(self.all_steps(), reverse=True):
            try:
                self.check_meta(step, run, keys)
                state, meta = self.restore(step, abstract_state)
            except DamagedCheckpoint as e:
                where = self.set_aside(step)
                say(f"{e}: skipped, moved to {where}")
                continue
            return step, state, meta
        return None

    def wait(self) -> None:
        """Block until pending asynchronous saves are on disk (SaveError when one failed)."""
        try:
            self._manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - whatever the file system or orbax raises
            raise self._save_failed(e, self._pending) from e
        self._done()

    def close(self) -> None:
        """Wait for pending saves and release orbax's threads; after a SaveError, quietly
        (orbax would raise the same failure again)."""
        if not self._failed:
            self.wait()
            self._manager.close()
            return
        try:
            self._manager.close()
        except Exception:  # noqa: BLE001 - the failure SaveError reported
            pass


EVALUATIONS_FILE = "evaluations.json"


def _crc32(x) -> int:
    """CRC-32 of an array's bytes (C order)."""
    return zlib.crc32(np.ascontiguousarray(x).reshape(-1).view(np.uint8))


def array_checksums(state: Any) -> dict[str, dict]:
    """{array name: {crc32, dtype, shape}} of a pytree's leaves, from their host values
    (the device-to-host copies come in one transfer; the CRCs, which release the GIL, in
    parallel).  Every process of a replicated state computes the same."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    host = [np.asarray(x) for x in jax.device_get([x for _, x in leaves])]
    with futures.ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        crcs = list(pool.map(_crc32, host))
    return {_leaf_name(p): {"crc32": c, "dtype": x.dtype.name, "shape": list(x.shape)}
            for (p, _), x, c in zip(leaves, host, crcs)}


def _meta_checksum(meta: dict) -> int:
    return zlib.crc32(json.dumps(meta, sort_keys=True).encode())


def _verify(path: str, state: Any, meta: dict, saved: dict, most: int = 5) -> None:
    """Raise DamagedCheckpoint when the restored ``state`` or ``meta`` differs from the
    checksums saved with them."""
    if not isinstance(saved, dict) or not isinstance(saved.get("arrays"), dict):
        raise DamagedCheckpoint(f"checkpoint {path}: its checksums cannot be read")
    if saved.get("meta") != _meta_checksum(meta):
        raise DamagedCheckpoint(f"checkpoint {path}: its meta differs from the one saved "
                                f"(checksum)")
    now = array_checksums(state)
    expected = saved["arrays"]
    bad = [name for name in sorted(set(now) | set(expected))
           if now.get(name, {}).get("crc32") != (expected.get(name) or {}).get("crc32")]
    if bad:
        more = f" and {len(bad) - most} more" if len(bad) > most else ""
        raise DamagedCheckpoint(f"checkpoint {path}: {len(bad)} array(s) differ from what was "
                                f"saved (checksum): {', '.join(bad[:most])}{more}")


# The I/O errors a save meets, recognised in tensorstore's words too (its errors are not
# OSErrors: "... Failed to write 114366 bytes to file 5: No space left on device").
_SAVE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.ENOENT, errno.EFBIG, errno.EMFILE, errno.ENFILE)


def io_error(e: BaseException) -> str | None:
    """``ENOSPC: No space left on device`` for the I/O error in an exception's chain (an
    OSError, or one in tensorstore's or TensorFlow's words), None when there is none."""
    seen, cause = set(), e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        code = cause.errno if isinstance(cause, OSError) else next(
            (c for c in _SAVE_ERRNOS if os.strerror(c) in str(cause)), None)
        if code in errno.errorcode:
            return f"{errno.errorcode[code]}: {os.strerror(code)}"
        cause = cause.__cause__ or cause.__context__
    return None


class _QuietBackgroundErrors(logging_std.Filter):
    """A failed asynchronous write is logged with its traceback by each thread it passed
    through (orbax's save threads, clu's TensorBoard writer: hundreds to thousands of
    lines for one full disk) and raised to the caller too, where it becomes one line
    (SaveError; the traceback stays on its chain).  Dropped: orbax's error records with
    a traceback, other threads' records of an I/O error (ENOSPC, EIO, ...), and, once a
    save failed, asyncio's "exception was never retrieved" records of the same error
    (tensorstore's writes left behind, reported when they are collected)."""

    failed = False  # a SaveError was raised in this process

    def filter(self, record) -> bool:
        if record.levelno < logging_std.ERROR or not record.exc_info:
            return True
        if f"{os.sep}orbax{os.sep}" in record.pathname:
            return False
        if io_error(record.exc_info[1]) is None:
            return True
        if record.name == "asyncio":
            return not self.failed
        return record.threadName == threading.main_thread().name


_QUIET = _QuietBackgroundErrors()
logging_std.getLogger("absl").addFilter(_QUIET)
logging_std.getLogger("asyncio").addFilter(_QUIET)


def _first_line(e: BaseException) -> str:
    """An exception as one short line: its root cause, which names the file (orbax wraps
    tensorstore's error in pages of its spec)."""
    seen = {id(e)}
    while (e.__cause__ or e.__context__) is not None and id(e.__cause__ or e.__context__) not in seen:
        e = e.__cause__ or e.__context__
        seen.add(id(e))
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:300] + " ..."


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
    those on one side only; DamagedCheckpoint when the saved shapes cannot be read."""
    where = os.path.dirname(state_dir)
    if not os.path.isfile(os.path.join(state_dir, "_METADATA")):
        raise DamagedCheckpoint(f"checkpoint {where} is incomplete: no state/_METADATA")
    # The item's handler reads the item's own _METADATA; a Checkpointer would also look
    # for step metadata inside the item directory and warn that it is missing.
    handler = ocp.StandardCheckpointHandler()
    try:
        saved = handler.metadata(epath.Path(state_dir))
        stored = {m.name: tuple(m.shape) for m in jax.tree.leaves(saved)}
    except Exception as e:  # noqa: BLE001 - a garbled _METADATA, in orbax's words
        raise DamagedCheckpoint(f"checkpoint {where}: the shapes of its state cannot be read "
                                f"({_first_line(e)})") from e
    finally:
        handler.close()  # no async work left behind
    if not stored:
        raise DamagedCheckpoint(f"checkpoint {where}: state/_METADATA lists no arrays")
    wanted = {_leaf_name(p): tuple(x.shape)
              for p, x in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
    lines = [f"{name}: checkpoint {stored.get(name, 'has no such array')}, this run "
             f"{wanted.get(name, 'has no such array')}"
             for name in sorted(set(stored) | set(wanted)) if stored.get(name) != wanted.get(name)]
    more = f"; ... and {len(lines) - most} more" if len(lines) > most else ""
    return "; ".join(lines[:most]) + more
