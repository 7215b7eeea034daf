"""A training workdir's record besides its checkpoints: the lock of the one trainer that
writes it, and the configs it was started with.

``trainer.lock`` holds the process id and host of the trainer that writes the workdir
(process 0 of a multi-process job takes it); evaluate, export, predict and compare only
read and take none.  ``config.json`` is the config of the latest accepted start, and
``configs/<step>-<time>.json`` keeps every accepted start's.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Callable

LOCK_FILE = "trainer.lock"
CONFIG_FILE = "config.json"
CONFIGS_DIR = "configs"

# Fields whose change makes a resumed run another experiment (a change of network, which
# the checkpoint's meta refuses, aside): resuming with another value needs the override.
MEANING_FIELDS = ("data.name", "data.image_size", "data.heatmap_size", "data.keypoints",
                  "data.category_id", "adversarial.enabled")
OVERRIDE_FLAG = "--allow_changed_meaning"


class WorkdirError(RuntimeError):
    """A start refused by the workdir's record: another trainer holds it (its lock), or
    the config changes what the run means."""


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, /proc), None where unknown:
    a pid reused by another process, or by this one in a restarted container, is told
    apart from the lock's holder by it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    now = _started(pid)
    return started is None or now is None or now == started


class Lock:
    """``with Lock(workdir, say):`` one trainer per workdir.  A second one is refused
    (WorkdirError, naming the holder); the lock of a process that is gone from this host
    is taken over, with one line (``say``) saying so.  A holder on another host cannot be
    checked from here: the message says how to release its lock by hand."""

    def __init__(self, workdir: str, say: Callable[[str], None] = print):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_FILE)
        self._say = say
        pid = os.getpid()
        self._mine = {"pid": pid, "host": socket.gethostname(), "started": _started(pid)}
        self._held = False

    def _holder(self) -> dict | None:
        """The lock file's content; {} when there is none, None when it cannot be read."""
        try:
            with open(self.path) as f:
                holder = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def acquire(self) -> None:
        # The content is written first and linked into place: the lock file never exists
        # half-written, and link() fails when another trainer's lock is there.
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({**self._mine, "since": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        try:
            for _ in range(3):  # a stale lock removed, or one released while we looked
                try:
                    os.link(tmp, self.path)
                    self._held = True
                    return
                except FileExistsError:
                    pass
                holder = self._holder()
                if holder == {}:
                    continue
                if holder is None:
                    raise WorkdirError(f"{self.path} exists but cannot be read: another trainer "
                                       f"may be writing this workdir; if none is, delete the file")
                pid, host, since = holder.get("pid"), holder.get("host"), holder.get("since", "?")
                here = host == self._mine["host"]
                if here and isinstance(pid, int) and not _alive(pid, holder.get("started")):
                    self._say(f"taking over {self.path}: its trainer (process {pid} on {host}, "
                              f"since {since}) is no longer running")
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                raise WorkdirError(
                    f"{os.path.dirname(self.path)} is being trained by process {pid} on "
                    f"{'this host' if here else f'host {host}'} since {since} ({self.path}): "
                    f"one trainer per workdir; wait for it, stop it, or train in another "
                    f"--workdir" + ("" if here else "; if that process is gone, delete the lock "
                                                    "file"))
            raise WorkdirError(f"{self.path}: could not take the lock (other trainers are "
                               f"starting in this workdir)")
        finally:
            os.remove(tmp)

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        holder = self._holder()
        if self._held and holder and all(holder.get(k) == v for k, v in self._mine.items()):
            os.remove(self.path)
        self._held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def previous_config(workdir: str) -> dict | None:
    """The config (as JSON) of the workdir's latest accepted start, or None."""
    try:
        with open(os.path.join(workdir, CONFIG_FILE)) as f:
            previous = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    return previous if isinstance(previous, dict) else None


def changes(previous: dict | None, config_json: str) -> dict[str, tuple]:
    """{field: (before, now)} of the config fields that differ from ``previous``."""
    if previous is None:
        return {}
    before, now = _flat(previous), _flat(json.loads(config_json))
    return {k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)}


def check_meaning(changed: dict[str, tuple], workdir: str, step: int, allowed: bool) -> None:
    """Raise WorkdirError when a resume changes one of MEANING_FIELDS without the override."""
    wrong = [f"{k} = {changed[k][0]!r} (this run: {changed[k][1]!r})" for k in MEANING_FIELDS
             if k in changed]
    if wrong and not allowed:
        raise WorkdirError(
            f"{workdir} was trained to step {step} with {', '.join(wrong)}: resuming with "
            f"this would change what the run means. Train in another --workdir, use the "
            f"config it was made with, or pass {OVERRIDE_FLAG} to resume anyway.")


def record_start(workdir: str, config_json: str, step: int) -> str:
    """Write an accepted start's config: ``config.json`` and ``configs/<step>-<time>.json``
    (its path is returned)."""
    stem = os.path.join(workdir, CONFIGS_DIR, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    kept, n = stem + ".json", 1
    while os.path.exists(kept):  # two starts within a second
        kept, n = f"{stem}-{n}.json", n + 1
    for path in (kept, os.path.join(workdir, CONFIG_FILE)):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(config_json)
        os.replace(tmp, path)
    return kept
