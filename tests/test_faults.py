"""Fault injection: a training run killed (-9) and preempted (SIGTERM) at random moments,
non-finite steps under both NaN policies, and a two-process job losing a process.

The kill moments are random but seeded; a failure message shows the seed and the faults
so far, and HRGAN_FAULT_SEED=<seed> replays it.
"""
import errno
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from conftest import (edit_train_batches, free_port, latest_state, saved_states, subprocess_env,
                      train_config)
from hrgan_jax import trainer

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("HRGAN_FAULT_SEED", "2024"))
ONE = jax.devices()[:1]
PARTIAL = ".orbax-checkpoint-tmp"  # orbax writes a save here and renames it when complete


# ---- kill -9 and SIGTERM ------------------------------------------------------------------

STEPS = 20
# The model and data flags of train_config (conftest), on one device: the runs here
# share one compiled program through the persistent compilation cache.
TRAIN_FLAGS = ["--config=configs/default.py:micro", "--config.data.image_size=(64, 64)",
               "--config.data.heatmap_size=(16, 16)", "--config.train.batch_size=8",
               f"--config.train.steps={STEPS}", "--config.train.log_every=1",
               "--config.checkpoint.every_steps=2", "--config.checkpoint.keep=3",
               "--config.eval.every_epochs=-1"]
STEP_LINE = re.compile(r"step \d+/")
ANNOUNCE = ("resuming from step", "starting a new run")


def _run_config(root):
    """The config TRAIN_FLAGS make, for restoring the runs' checkpoints here."""
    return train_config(**{"data.root": root, "train.steps": STEPS, "train.log_every": 1,
                                "checkpoint.every_steps": 2, "checkpoint.keep": 3,
                                "eval.every_epochs": -1})


class _Training:
    """launch.py --mode=train in a subprocess, its output lines (and when each came,
    in seconds after the start) collected by a thread."""

    def __init__(self, root, workdir, *extra_flags, program=("launch.py",)):
        env = subprocess_env(1)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, *program, "--mode=train", f"--workdir={workdir}", *TRAIN_FLAGS,
             f"--config.data.root={root}", *extra_flags],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.monotonic() - self.started, line))

    def output(self) -> str:
        self._reader.join(timeout=10)
        return "".join(line for _, line in self.lines)

    def when(self, match) -> float | None:
        """Seconds after the start of the first line ``match(line)`` accepts (None: none yet)."""
        return next((t for t, line in list(self.lines) if match(line)), None)

    def steps_done(self) -> int:
        return sum(1 for _, line in list(self.lines) if STEP_LINE.match(line))

    def wait_until(self, condition, what: str, timeout: float = 300.0) -> None:
        """Poll ``condition`` every 5 ms; fail if the run ends or times out first."""
        end = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended (status {self.proc.returncode}) before "
                                     f"{what}:\n{self.output()[-3000:]}")
            if time.monotonic() > end:
                raise AssertionError(f"no {what} within {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.005)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:  # a failed check left it running
            self.kill()

    def finish(self, timeout: float = 600.0) -> str:
        self.proc.wait(timeout=timeout)
        out = self.output()
        assert self.proc.returncode == 0, out[-3000:]
        return out


def _complete(ckpt_dir) -> list[int]:
    """Steps of the complete checkpoints: directories named by their step alone."""
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(int(n) for n in os.listdir(ckpt_dir) if n.isdigit())


def _partial(ckpt_dir) -> list[int]:
    """Steps of the saves in progress (or cut short): orbax's temporary directories."""
    if not os.path.isdir(ckpt_dir):
        return []
    return sorted(int(n.split(".")[0]) for n in os.listdir(ckpt_dir) if PARTIAL in n)


def _resumed_from(out: str) -> int | None:
    """The step a run said it resumed from (0 for a new run), None if it said nothing yet."""
    m = re.search(r"resuming from step (\d+) of", out)
    if m:
        return int(m.group(1))
    return 0 if "starting a new run" in out else None


class _StartUp:
    """How long a run takes to announce itself (imports, checkpoint directory, restore)
    and then to its first step (compilation, the input pipeline): measured on the runs
    that got that far, so start-up kills land inside these phases on any machine."""

    def __init__(self):
        self.announce, self.first_step = [], []

    def measure(self, run: _Training) -> None:
        announced = run.when(lambda line: line.startswith(ANNOUNCE))
        stepped = run.when(STEP_LINE.match)
        if announced is not None and stepped is not None:
            self.announce.append(announced)
            self.first_step.append(stepped - announced)

    def typical(self) -> tuple[float, float]:
        assert self.announce, "no run reached its first step before a start-up kill"
        return float(np.median(self.announce)), float(np.median(self.first_step))


def _inject(fault: str, run: _Training, rng: random.Random, ckpt_dir, newest: int,
            startup: _StartUp):
    """Wait for the fault's moment in ``run`` and inject it.  Returns what happened and
    whether a checkpoint write was cut short."""
    if fault == "start-up: imports and restore":
        delay = rng.uniform(0.1, 1.0) * startup.typical()[0]
        deadline = time.monotonic() + delay
        run.wait_until(lambda: time.monotonic() > deadline, f"{delay:.1f} s of start-up")
        run.kill()
        return f"kill -9 {delay:.1f} s after start", False
    if fault == "start-up: compilation":
        run.wait_until(lambda: run.when(lambda line: line.startswith(ANNOUNCE)) is not None,
                       "the run's first line")
        delay = rng.uniform(0.0, 1.0) * startup.typical()[1]
        time.sleep(delay)
        run.kill()
        return f"kill -9 {delay:.1f} s after the run's first line", False
    if fault == "saving":  # the run's second save: the first one is progress
        def second_save() -> int | None:
            done = [s for s in _complete(ckpt_dir) if s > newest]
            writing = [s for s in _partial(ckpt_dir) if done and s > done[-1]]
            return writing[0] if writing else None
        run.wait_until(lambda: second_save() is not None, "a second checkpoint being written")
        run.kill()
        cut = second_save()  # still partial after the kill: the write was cut short
        return (f"kill -9 while writing step {cut}" if cut is not None else
                "kill -9 as a checkpoint completed"), cut is not None
    steps = rng.randint(1, 4)
    run.wait_until(lambda: run.steps_done() >= steps, f"{steps} steps")
    if fault == "between steps":
        pause = rng.uniform(0.0, 1.0)
        time.sleep(pause)
        run.kill()
        return f"kill -9 {pause:.2f} s after {steps} steps", False
    assert fault == "sigterm", fault
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    out = run.finish(timeout=60)  # status 0
    took = time.monotonic() - sent
    assert took < 30, f"SIGTERM took {took:.1f} s"
    stopped = re.search(r"stopped at step (\d+): checkpoint saved", out)
    assert stopped, f"no 'stopped at step' line:\n{out[-3000:]}"
    assert _complete(ckpt_dir)[-1] == int(stopped.group(1)), _complete(ckpt_dir)
    return f"SIGTERM after {steps} steps: saved step {stopped.group(1)} in {took:.1f} s", False


def _plan(rng: random.Random) -> list[str]:
    """The faults in a random order, except: the first run gets under way (it measures
    the start-up the start-up kills aim at) and the run after the SIGTERM does too (its
    first line shows that it resumes from the step the SIGTERM saved)."""
    under_way = ["saving"] * 2 + ["between steps"]
    rng.shuffle(under_way)
    first, after_sigterm, rest = under_way[0], under_way[1], under_way[2:]
    rest += ["start-up: imports and restore", "start-up: compilation"]
    rng.shuffle(rest)
    rest.insert(rng.randint(0, len(rest)), "sigterm")
    at = rest.index("sigterm") + 1
    return [first] + rest[:at] + [after_sigterm] + rest[at:]


@pytest.mark.slow
def test_kills_and_preemption_lose_nothing(train_coco_root, tmp_path):
    """Six faults in one training run, each in its own process: kill -9 while a
    checkpoint is being written (2, each run's second save), between steps (1), during
    start-up (2: imports and restore, compilation) and one SIGTERM (which must save
    the step it stopped at, exit 0 within 30 s, and be resumed from).  Every restart
    resumes from the newest complete checkpoint, a directory named like a checkpoint
    is always complete, and the final state is bitwise the state of a run that was
    never interrupted.  (Both runs are subprocesses like the faulted ones: programs
    compiled under this process's 8 fake devices are other cache entries, and the
    first of these runs compiles the one they all share.)"""
    rng = random.Random(SEED)
    reference, faulted = tmp_path / "reference", tmp_path / "faulted"
    ckpt_dir = faulted / "checkpoints"
    # The reference saves only its last step (saving never changes the state).
    with _Training(train_coco_root, reference, f"--config.checkpoint.every_steps={STEPS}") as run:
        run.finish()

    plan = _plan(rng)
    history: list[str] = []
    mid_save, startup, sigterm_saved = 0, _StartUp(), None

    def context() -> str:
        return f"(seed {SEED}; faults so far: {'; '.join(history) or 'none'})"

    for fault in plan:
        complete = _complete(ckpt_dir)
        newest = complete[-1] if complete else 0
        with _Training(train_coco_root, faulted) as run:
            try:
                event, cut = _inject(fault, run, rng, ckpt_dir, newest, startup)
            except AssertionError as e:
                raise AssertionError(f"{fault}: {e} {context()}") from None
        history.append(event)
        mid_save += cut
        startup.measure(run)
        resumed = _resumed_from(run.output())
        assert resumed in (None, newest), (
            f"restart resumed from step {resumed}, but the newest complete checkpoint was "
            f"{newest} {context()}")
        if sigterm_saved is not None:
            assert resumed == sigterm_saved, (resumed, sigterm_saved, context())
            sigterm_saved = None
        if fault == "sigterm":
            sigterm_saved = _complete(ckpt_dir)[-1]
        # What the next start will choose is complete.  (Only the newest: orbax deletes
        # old checkpoints file by file, so a kill then can leave an older step half gone;
        # it is never resumed from, and the next save's retention deletes it again.)
        if _complete(ckpt_dir):
            chosen = ckpt_dir / str(_complete(ckpt_dir)[-1])
            assert (chosen / "commit_success.txt").is_file(), (chosen, context())

    newest = max(_complete(ckpt_dir), default=0)
    assert 0 < newest < STEPS, f"the faults left nothing to resume from or to do {context()}"
    with _Training(train_coco_root, faulted) as run:
        out = run.finish()
    assert _resumed_from(out) == newest, context()
    assert not _partial(ckpt_dir), f"partial saves were not removed {context()}"
    assert len([h for h in history if h.startswith("kill")]) == 5
    # Kills aimed at a save (polled every 5 ms; a save takes hundreds): most land in it.
    assert mid_save >= 1, f"no kill interrupted a save {context()}"

    config = _run_config(train_coco_root)
    step_a, a, _ = latest_state(config, reference)
    step_b, b, _ = latest_state(config, faulted)
    assert step_a == step_b == STEPS and int(b.step) == STEPS and int(b.skipped) == 0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=context())


# ---- NaN and Inf --------------------------------------------------------------------------

POISONED = 4  # batch index: the update from step 4 to step 5


def _poison_batch(monkeypatch, index: int) -> None:
    """Every training stream's batch ``index`` gets NaN joint visibilities: its target
    weights, content loss and every gradient are NaN."""
    edit_train_batches(monkeypatch, lambda k, batch: dict(
        batch, joints_vis=np.full_like(batch["joints_vis"], np.nan)) if k == index else batch)


def _nan_config(root, policy, every_steps):
    return train_config(**{"data.root": root, "train.steps": 6, "train.log_every": 2,
                                "train.nan_policy": policy, "eval.every_epochs": -1,
                                "checkpoint.every_steps": every_steps, "checkpoint.keep": 10})


def _saved_states(config, workdir) -> dict[int, object]:
    return {step: state for step, (state, _) in saved_states(config, workdir).items()}


def _all_finite(state) -> bool:
    return all(np.isfinite(np.asarray(x, np.float64)).all() for x in jax.tree.leaves(state))


@pytest.mark.slow
def test_nan_stop_names_the_step_and_the_last_good_checkpoint(train_coco_root, tmp_path,
                                                               monkeypatch):
    _poison_batch(monkeypatch, POISONED)
    config = _nan_config(train_coco_root, "stop", every_steps=2)
    # Step 5 is not a log step, so its metrics are read one step late, after step 6 ran.
    with pytest.raises(trainer.NonFiniteError) as e:
        trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
    message = str(e.value)
    assert message.startswith("step 5 (batch 4 of the data stream): a loss or gradient is "
                              "not finite"), message
    assert f"Last good checkpoint: {tmp_path / 'checkpoints' / '4'}." in message
    assert "nan_policy=skip" in message
    states = _saved_states(config, tmp_path)
    assert sorted(states) == [2, 4]  # nothing at or after the poisoned step
    assert all(_all_finite(s) and int(s.skipped) == 0 for s in states.values())


@pytest.mark.slow
def test_nan_skip_skips_the_update_and_counts_it(train_coco_root, tmp_path, monkeypatch, capsys):
    _poison_batch(monkeypatch, POISONED)
    config = _nan_config(train_coco_root, "skip", every_steps=1)
    trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
    assert "1 of 6 updates were skipped as non-finite" in capsys.readouterr().out
    states = _saved_states(config, tmp_path)
    assert sorted(states) == [1, 2, 3, 4, 5, 6]
    assert all(_all_finite(s) for s in states.values())
    assert [int(states[s].skipped) for s in range(1, 7)] == [0, 0, 0, 0, 1, 1]
    # The skipped update changed nothing but the step counters; the next one trained on.
    before, skipped, after = states[4], states[5], states[6]
    for field in ("g_params", "g_stats", "g_opt", "d_params", "d_stats", "d_opt", "k"):
        for x, y in zip(jax.tree.leaves(getattr(before, field)),
                        jax.tree.leaves(getattr(skipped, field)), strict=True):
            np.testing.assert_array_equal(x, y, err_msg=field)
    assert not np.array_equal(jax.tree.leaves(after.g_params)[0],
                              jax.tree.leaves(skipped.g_params)[0])
    rows = {r["step"]: r for r in map(json.loads, open(tmp_path / "metrics.jsonl"))}
    assert rows[5]["skipped_steps"] == 1 and rows[6]["skipped_steps"] == 0
    assert np.isfinite(rows[6]["content_loss"])


# ---- a lost process -----------------------------------------------------------------------

HEARTBEAT_S = 10  # launch.py's --heartbeat_timeout_s is 60 by default; short here to save time


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0], ids=["worker dies", "coordinator dies"])
def test_the_survivor_of_a_lost_process_exits_with_an_error_naming_it(tmp_path, victim):
    """Two processes all-reduce in a loop; one is killed (-9).  The other must end with a
    non-zero status within the heartbeat timeout (plus start-up slack), saying which
    process it lost: a dead worker is named by its index once its heartbeats stop, a
    dead coordinator (process 0) as the coordination service / leader."""
    port = free_port()
    logs = [open(tmp_path / f"process{i}.log", "w+") for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "peer_loss_worker.py"),
                               f"--process_id={i}", f"--coordinator=localhost:{port}",
                               f"--heartbeat_timeout_s={HEARTBEAT_S}"],
                              stdout=logs[i], stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    survivor = procs[1 - victim]
    try:
        end = time.monotonic() + 300
        while "round 3," not in (tmp_path / f"process{1 - victim}.log").read_text():
            assert time.monotonic() < end and all(p.poll() is None for p in procs), \
                "the two processes never got going:\n" + "\n".join(
                    (tmp_path / f"process{i}.log").read_text()[-2000:] for i in range(2))
            time.sleep(0.1)
        procs[victim].kill()
        killed = time.monotonic()
        status = survivor.wait(timeout=HEARTBEAT_S + 60)
        took = time.monotonic() - killed
    finally:
        for p in procs:
            p.kill()
            p.wait()
    out = (tmp_path / f"process{1 - victim}.log").read_text()
    assert status != 0, out[-3000:]
    assert took < HEARTBEAT_S + 30, f"the survivor took {took:.1f} s to stop:\n{out[-3000:]}"
    if victim == 1:
        named = ("stopped sending heartbeats):\n1" in out or "Task 1 heartbeat timeout" in out)
    else:
        named = "coordination service" in out and "leader" in out
    assert named, out[-5000:]


# ---- damaged checkpoints ------------------------------------------------------------------

def _largest_array_file(step_dir) -> pathlib.Path:
    """The biggest stored chunk file of a checkpoint's state (OCDBT data)."""
    return max((step_dir / "state").glob("ocdbt.process_*/d/*"), key=lambda f: f.stat().st_size)


def _flip_bit(path: pathlib.Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_damaged_checkpoints_are_set_aside_and_the_run_resumes_from_the_newest_good_one(
        train_coco_root, tmp_path, capsys):
    """A flipped bit in a stored chunk of the newest checkpoint (it still decodes: only
    the checksum tells) and a truncated chunk file in the one before: the rerun names
    each, why, and where it moved it (never deleted), resumes from the newest good one
    and ends bitwise where the undamaged run ended.  A garbage meta, a deleted
    state/_METADATA and an empty step directory are skipped the same way."""
    from hrgan_jax import checkpoints, parallel, state as state_lib
    config = train_config(**{"data.root": train_coco_root, "train.steps": 6,
                                  "train.log_every": 2, "checkpoint.every_steps": 2,
                                  "checkpoint.keep": 3, "eval.every_epochs": -1})
    trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
    ckpt_dir = tmp_path / "checkpoints"
    assert _complete(ckpt_dir) == [2, 4, 6]
    _, undamaged = saved_states(config, tmp_path, [6])[6]
    _flip_bit(_largest_array_file(ckpt_dir / "6"))
    truncated = _largest_array_file(ckpt_dir / "4")
    os.truncate(truncated, truncated.stat().st_size // 2)
    capsys.readouterr()

    trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
    captured = capsys.readouterr()
    skipped = [line for line in captured.err.splitlines() if "skipped, moved to" in line]
    damaged = sorted(os.listdir(tmp_path / "checkpoints-damaged"))
    assert [d.split("-")[0] for d in damaged] == ["4", "6"]
    assert len(skipped) == 2, captured.err
    assert skipped[0].startswith(f"checkpoint {ckpt_dir / '6'}: 1 array(s) differ from what was "
                                 f"saved (checksum): ")
    assert skipped[0].endswith(f"moved to {tmp_path / 'checkpoints-damaged' / damaged[1]}")
    assert skipped[1].startswith(f"checkpoint {ckpt_dir / '4'} cannot be read: ")
    assert "is not valid for value of size" in skipped[1]  # tensorstore's cause, one line
    assert "resuming from step 2 of 6" in captured.out
    _, rerun = saved_states(config, tmp_path, [6])[6]
    for x, y in zip(jax.tree.leaves(undamaged), jax.tree.leaves(rerun), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # Incomplete and unreadable: copies of step 2, damaged otherwise.
    for step in (7, 8, 9):
        shutil.copytree(ckpt_dir / "2", ckpt_dir / str(step))
    (ckpt_dir / "7" / "meta" / "metadata").write_text("{garbage")
    os.remove(ckpt_dir / "8" / "state" / "_METADATA")
    shutil.rmtree(ckpt_dir / "9")
    os.makedirs(ckpt_dir / "9")
    g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=1)
    ckpt = checkpoints.Checkpoints(str(ckpt_dir), every_steps=1, keep=10, remove_partial=True)
    lines = []
    try:
        step, _, meta = ckpt.restore_newest_good(
            state_lib.abstract_state(config, g_tx, d_tx, parallel.make_mesh(ONE)),
            {"model": "micro"}, ("model",), say=lines.append)
    finally:
        ckpt.close()
    assert step == meta["step"] == 6
    assert [line.split(": skipped")[0] for line in lines] == [
        f"checkpoint {ckpt_dir / '9'} is incomplete: no meta or state/",
        f"checkpoint {ckpt_dir / '8'} is incomplete: no state/_METADATA",
        f"checkpoint {ckpt_dir / '7'}: its meta cannot be read (Expecting property name "
        f"enclosed in double quotes: line 1 column 2 (char 1))"]
    assert _complete(ckpt_dir) == [2, 4, 6] and len(os.listdir(tmp_path / "checkpoints-damaged")) == 5


# ---- one trainer per workdir ------------------------------------------------------------

def test_a_second_trainer_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken_over(
        train_coco_root, tmp_path):
    """A trainer finds the workdir locked by another (live) process: refused in one line
    naming the holder, before anything is built or written.  The lock of a process that
    is gone, or whose process id now belongs to a later process, is taken over with a
    line saying so; one held on another host is refused (it cannot be checked)."""
    import socket

    from hrgan_jax import workdir
    config = train_config(**{"data.root": train_coco_root, "train.steps": 2,
                                  "eval.every_epochs": -1})
    host, lock_file = socket.gethostname(), tmp_path / workdir.LOCK_FILE
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hrgan_jax import "
                               "workdir; workdir.Lock(sys.argv[1]).acquire(); print(flush=True); "
                               "time.sleep(600)", str(tmp_path)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()  # the lock is held
        since = json.loads(lock_file.read_text())["since"]
        with pytest.raises(workdir.WorkdirError) as e:
            trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
        assert str(e.value) == (
            f"{tmp_path} is being trained by process {holder.pid} on this host since {since} "
            f"({lock_file}): one trainer per workdir; wait for it, stop it, or train in "
            f"another --workdir")
        assert os.listdir(tmp_path) == [workdir.LOCK_FILE]  # nothing built or written
    finally:
        holder.kill()
        holder.wait()

    lines = []
    lock = workdir.Lock(str(tmp_path), lines.append)
    lock.acquire()  # the killed holder's lock
    assert lines == [f"taking over {lock_file}: its trainer (process {holder.pid} on {host}, "
                     f"since {since}) is no longer running"]
    assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    lock.release()
    assert not lock_file.exists()
    # A live process id whose process started after the lock was written: reused.
    lock_file.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": "1",
                                     "since": "then"}))
    with workdir.Lock(str(tmp_path), lines.append):
        assert lines[-1].startswith(f"taking over {lock_file}: its trainer (process "
                                    f"{os.getpid()} on {host}, since then)")
    lock_file.write_text(json.dumps({"pid": 1, "host": "node-7", "since": "then"}))
    with pytest.raises(workdir.WorkdirError, match="by process 1 on host node-7 since then .*"
                       "if that process is gone, delete the lock file"):
        workdir.Lock(str(tmp_path)).acquire()
    assert json.loads(lock_file.read_text())["host"] == "node-7"  # left alone


# ---- work left undone, the run's record ----------------------------------------------------

def _scoring(fail_at=None):
    """An evaluator scoring a checkpoint AP = step / 10 (so the last is best), failing at
    ``fail_at`` as a killed or failed evaluation would: nothing recorded for that step.
    ``.steps`` lists the steps it was asked to evaluate."""
    def evaluate(variables, step):
        evaluate.steps.append(step)
        if step == fail_at:
            raise RuntimeError(f"the evaluation at step {step} was cut short")
        return {"AP": step / 10}
    evaluate.steps = []
    return evaluate


def _recorded(ckpt_dir, best: bool = False):
    """The evaluations recorded in ``ckpt_dir`` ({step: metrics}), or with ``best`` the
    step of the best one by AP."""
    from hrgan_jax import checkpoints
    ckpt = checkpoints.Checkpoints(str(ckpt_dir), every_steps=1, keep=9, best_metric="AP")
    try:
        return ckpt.best_step() if best else ckpt.evaluations()
    finally:
        ckpt.close()


def _record(workdir) -> tuple[str, list[str]]:
    """config.json's bytes and the kept configs of every accepted start."""
    return ((workdir / "config.json").read_text(), sorted(os.listdir(workdir / "configs")))


@pytest.mark.slow
def test_a_finished_run_whose_final_evaluation_failed_only_finishes_and_the_record_holds(
        train_coco_root, tmp_path, capsys):
    """The final evaluation fails (as a kill during it leaves the workdir: its checkpoint
    saved, its evaluation not recorded): the rerun says the run is finished, evaluates
    only that step, draws curves.png and trains nothing; evaluations.json then holds
    every due step and the last is best.  (The same for a mid-run evaluation, with the
    real evaluator: tests/test_official_formats.py::
    test_a_failing_evaluation_keeps_its_checkpoint_and_the_rerun_resumes.)  The same
    workdir then shows the run's record: a start refused for another D or for another
    image size leaves config.json and configs/ as they were; an accepted resume prints
    each changed field and keeps its config; --allow_changed_meaning lets the image
    size change."""
    from data_pipeline import pipeline
    from hrgan_jax import checkpoints, workdir
    config = train_config(**{"data.root": train_coco_root, "train.log_every": 2,
                                  "checkpoint.every_steps": 1000, "eval.every_epochs": 1})
    mid = pipeline.steps_per_epoch(config.data, 8)  # the end of epoch 1
    config.train.steps = end = mid + 1
    ckpt_dir = tmp_path / "checkpoints"

    def evaluations() -> dict[int, dict]:
        return {**_recorded(ckpt_dir), "best": _recorded(ckpt_dir, best=True)}

    first = _scoring(fail_at=end)
    with pytest.raises(RuntimeError, match=f"step {end} was cut short"):
        trainer.train_and_evaluate(config, str(tmp_path), evaluator=first, devices=ONE)
    assert first.steps == [mid, end] and _complete(ckpt_dir) == [mid, end]
    assert evaluations() == {mid: {"AP": mid / 10}, "best": mid}
    assert not (tmp_path / workdir.LOCK_FILE).exists()  # released on the way out
    assert not (tmp_path / "curves.png").exists()
    capsys.readouterr()

    third = _scoring()
    assert trainer.train_and_evaluate(config, str(tmp_path), evaluator=third,
                                      devices=ONE) == {"AP": end / 10}
    captured = capsys.readouterr()
    assert f"the run in {tmp_path} is finished: step {end} of {end} ({ckpt_dir}/{end})" \
        in captured.out
    assert (f"checkpoint {ckpt_dir / str(end)} has no evaluation yet: evaluating it first"
            in captured.err)
    assert third.steps == [end] and not STEP_LINE.search(captured.out)  # nothing trained
    assert evaluations() == {mid: {"AP": mid / 10}, end: {"AP": end / 10}, "best": end}
    assert (tmp_path / "curves.png").is_file()
    # The run's record: two accepted starts so far.
    before = _record(tmp_path)
    assert len(before[1]) == 2 and before[1][0].startswith("0-")
    assert before[1][-1].startswith(f"{end}-")
    other_d = config.copy_and_resolve_references()
    other_d.adversarial.d_network = "tiny"
    with pytest.raises(checkpoints.CheckpointError, match="discriminator = 'micro'"):
        trainer.train_and_evaluate(other_d, str(tmp_path), evaluator=_scoring(), devices=ONE)
    assert _record(tmp_path) == before
    smaller = config.copy_and_resolve_references()
    smaller.data.image_size, smaller.data.heatmap_size = (48, 48), (12, 12)
    with pytest.raises(workdir.WorkdirError) as e:
        trainer.train_and_evaluate(smaller, str(tmp_path), evaluator=_scoring(), devices=ONE)
    assert str(e.value) == (
        f"{tmp_path} was trained to step {end} with data.image_size = [64, 64] (this run: [48, 48]), "
        f"data.heatmap_size = [16, 16] (this run: [12, 12]): resuming with this would change "
        f"what the run means. Train in another --workdir, use the config it was made with, or "
        f"pass --allow_changed_meaning to resume anyway.")
    assert _record(tmp_path) == before and not (tmp_path / workdir.LOCK_FILE).exists()

    capsys.readouterr()
    config.optim.g_lr, config.train.log_every = 1e-4, 1
    fourth = _scoring()
    assert trainer.train_and_evaluate(config, str(tmp_path), evaluator=fourth,
                                      devices=ONE) == {"AP": end / 10}
    captured = capsys.readouterr()
    assert fourth.steps == [] and "is finished" in captured.out  # nothing left to do
    changed = [line for line in captured.out.splitlines()
               if line.startswith("changed since the last start")]
    assert changed == ["changed since the last start: optim.g_lr = 0.0001 (was 0.00025)",
                       "changed since the last start: train.log_every = 1 (was 2)"]
    after = _record(tmp_path)
    assert json.loads(after[0])["optim"]["g_lr"] == 1e-4 and len(after[1]) == 3
    trainer.train_and_evaluate(smaller, str(tmp_path), evaluator=_scoring(), devices=ONE,
                               allow_changed_meaning=True)
    assert "data.image_size = [48, 48] (was [64, 64])" in capsys.readouterr().out
    assert json.loads(_record(tmp_path)[0])["data"]["image_size"] == [48, 48]
    assert len(_record(tmp_path)[1]) == 4


# launch.py whose evaluator, once it has evaluated the step given as the first argument (its
# results files written, its table printed), says so and waits to be killed before
# returning: a kill -9 then lands inside the evaluation, after everything but its record.
_STALLING_LAUNCH = """
import json, runpy, sys, time
sys.path.insert(0, {root!r})
from hrgan_jax.evaluation import runner
stall_at = int(sys.argv.pop(1))
make = runner.make_evaluator

def make_stalling(*args, **kwargs):
    evaluate = make(*args, **kwargs)
    def stalling(variables, step):
        metrics = evaluate(variables, step)
        if step == stall_at:
            print("evaluated step", step, "unrecorded:", json.dumps(metrics), flush=True)
            time.sleep(600)
        return metrics
    return stalling

runner.make_evaluator = make_stalling
sys.argv[0] = "launch.py"
runpy.run_path("launch.py", run_name="__main__")
"""


@pytest.mark.slow
def test_kill_9_during_a_mid_run_and_the_final_evaluation_loses_nothing(train_coco_root,
                                                                       tmp_path):
    """A real kill -9 inside the evaluation at the end of epoch 1, then inside the final
    one (the end of epoch 2), the real evaluator each time: every rerun takes over the dead
    trainer's lock, evaluates the checkpoint whose evaluation was killed before anything
    else, and records the same metrics the killed evaluation had computed; the last
    rerun trains nothing, says the run is finished, draws curves.png and exits 0."""
    from data_pipeline import pipeline
    mid = pipeline.steps_per_epoch(train_config(**{"data.root": train_coco_root}).data, 8)
    end = 2 * mid
    workdir, ckpt_dir = tmp_path / "run", tmp_path / "run" / "checkpoints"
    launch = tmp_path / "stalling_launch.py"
    launch.write_text(_STALLING_LAUNCH.format(root=str(ROOT)))
    flags = [f"--config.train.steps={end}", "--config.eval.every_epochs=1",
             "--config.checkpoint.every_steps=1000"]  # saved only to be evaluated
    unrecorded = re.compile(r"evaluated step (\d+) unrecorded: (.*)")

    computed = {}
    for stall_at in (mid, end):
        with _Training(train_coco_root, workdir, *flags,
                       program=(str(launch), str(stall_at))) as run:
            run.wait_until(lambda: any(unrecorded.match(line) for _, line in list(run.lines)),
                           f"the evaluation of step {stall_at}")
            run.kill()
        out = run.output()
        step, metrics = unrecorded.search(out).groups()
        computed[int(step)] = json.loads(metrics)
        assert int(step) == stall_at and _complete(ckpt_dir)[-1] == stall_at, out[-3000:]
        assert stall_at not in _recorded(ckpt_dir), out[-3000:]  # killed before its record
        if stall_at == end:  # the rerun finished what the kill left undone, first
            assert f"resuming from step {mid} of {end}" in out and "taking over" in out, \
                out[-3000:]
            first = out.index(f"checkpoint {ckpt_dir / str(mid)} has no evaluation yet: "
                              f"evaluating it first")
            assert first < out.index(f"step {mid + 1}/"), out[-3000:]
            assert _recorded(ckpt_dir) == {mid: computed[mid]}, out[-3000:]
    assert "AP" in computed[mid] and not (workdir / "curves.png").exists()

    with _Training(train_coco_root, workdir, *flags) as run:
        out = run.finish()
    assert f"the run in {workdir} is finished: step {end} of {end}" in out, out[-3000:]
    assert f"checkpoint {ckpt_dir / str(end)} has no evaluation yet: evaluating it first" in out
    assert "taking over" in out and not STEP_LINE.search(out), out[-3000:]  # nothing trained
    assert _recorded(ckpt_dir) == computed  # each as the killed evaluation had computed it
    assert (workdir / "curves.png").is_file()


# ---- a full disk ----------------------------------------------------------------------------

def _mount_tmpfs(where, size: str) -> bool:
    """Mount a tmpfs of ``size`` at ``where`` where this machine allows it (root)."""
    os.makedirs(where, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
# After the failed save, orbax's writer thread may still schedule a callback on its event
# loop once the loop has closed: Python reports it as unraisable when it is collected,
# at a moment that depends on the machine's timing.  What the run reports is checked here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_full_disk_while_saving_is_one_line_naming_the_checkpoint_the_cause_and_the_last_good(
        train_coco_root, tmp_path, monkeypatch, caplog):
    """The disk fills up after checkpoint 2 (a tmpfs filled by a file where the machine
    allows mounting, else orbax's writes of checkpoint 4 fail with ENOSPC): the run
    stops with one SaveError naming the checkpoint, the cause and the last good
    checkpoint; orbax's background threads log no tracebacks; checkpoint 2 restores and
    verifies, and the lock is released."""
    from orbax.checkpoint._src.path import async_path

    from hrgan_jax import checkpoints, workdir
    disk = tmp_path / "disk"
    mounted = _mount_tmpfs(disk, "16m")
    run = disk / "run"
    ckpt_dir = run / "checkpoints"
    config = train_config(**{"data.root": train_coco_root, "train.steps": 6,
                                  "train.log_every": 1, "checkpoint.every_steps": 2,
                                  "checkpoint.keep": 3, "eval.every_epochs": -1})

    def fill_after_checkpoint_2(index, batch):
        if index == 5:  # read before the update to step 4
            deadline = time.monotonic() + 120
            while not (ckpt_dir / "2" / "commit_success.txt").exists():
                assert time.monotonic() < deadline, "checkpoint 2 was not saved"
                time.sleep(0.05)
            if mounted:  # leave 64 KiB: the metrics lines fit, a checkpoint does not
                free = shutil.disk_usage(disk).free
                with open(disk / "filler", "wb") as f:
                    f.write(b"\0" * max(0, free - 65536))
        return batch

    clean_write = async_path.write_text

    async def full_disk(path, text):  # the simulation: checkpoint 4's files do not fit
        if f"{os.sep}4." in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return await clean_write(path, text)

    if not mounted:
        monkeypatch.setattr(async_path, "write_text", full_disk)
    edit_train_batches(monkeypatch, fill_after_checkpoint_2)
    try:
        with pytest.raises(checkpoints.SaveError) as e:
            trainer.train_and_evaluate(config, str(run), devices=ONE)
        # On a real disk the TensorBoard events may be the first write to fail.
        failed = (f"saving checkpoint {re.escape(str(ckpt_dir / '4'))} failed: ENOSPC: No space "
                  f"left on device \\([\\d,]+ bytes free there\\)")
        if mounted:
            failed = f"({failed}|writing to {re.escape(str(run))} failed: ENOSPC: No space left on device)"
        assert re.fullmatch(f"{failed}; the last good checkpoint is "
                            f"{re.escape(str(ckpt_dir / '2'))}", str(e.value)), str(e.value)
        tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
        assert not tracebacks, tracebacks
        assert not (run / workdir.LOCK_FILE).exists()
        assert _complete(ckpt_dir) == [2]
        assert saved_states(config, run, [2])[2][1]["step"] == 2  # restores and verifies
    finally:
        if mounted:
            subprocess.run(["umount", "--lazy", str(disk)], check=True)
