"""The trainer: a run writes what users rely on, and resuming is exact."""
import json
import os

import jax
import numpy as np
import pytest

from conftest import tiny_train_config
from hrgan_jax import checkpoints, parallel, state as state_lib, trainer


ONE = jax.devices()[:1]  # the sharded step is tested in test_step; one CPU device is fastest


def _config(root, steps):
    config = tiny_train_config(**{"data.root": root, "train.steps": steps,
                                  "train.log_every": 2, "checkpoint.every_steps": 3,
                                  "eval.every_epochs": -1})
    return config


def _final_state(config, workdir):
    g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=1)
    mesh = parallel.make_mesh(ONE)
    ckpt = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=1,
                                   keep=100, async_save=False)
    step = ckpt.latest_step()
    state, meta = ckpt.restore(step, trainer.abstract_state(config, g_tx, d_tx, mesh))
    ckpt.close()
    return step, jax.device_get(state), meta


@pytest.mark.slow
def test_resume_is_exact(train_coco_root, tmp_path, capsys):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    trainer.train_and_evaluate(_config(train_coco_root, 6), straight, devices=ONE)
    trainer.train_and_evaluate(_config(train_coco_root, 3), split, devices=ONE)
    out = capsys.readouterr().out
    assert "starting a new run" in out
    trainer.train_and_evaluate(_config(train_coco_root, 6), split, devices=ONE)
    assert "resuming from step 3 of 6" in capsys.readouterr().out

    step_a, a, meta = _final_state(_config(train_coco_root, 6), straight)
    step_b, b, _ = _final_state(_config(train_coco_root, 6), split)
    assert step_a == step_b == 6 and int(a.step) == int(b.step) == 6
    assert meta["global_batch"] == 8 and meta["step"] == 6
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):  # bitwise: same batches, same programs
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert float(a.k) == float(b.k)

    # What the workdir holds for users.
    files = set(os.listdir(straight))
    assert {"checkpoints", "config.json", "metrics.jsonl", "curves.png"} <= files
    assert any(f.startswith("events.out.tfevents") for f in files)
    assert json.load(open(os.path.join(straight, "config.json")))["train"]["steps"] == 6
    rows = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [2, 3, 4, 6]  # every log_every steps and at saves
    for key in ("content_loss", "l_real", "l_fake", "l_adv", "k", "m_global", "g_lr", "d_lr",
                "g_grad_norm", "d_grad_norm", "images_per_sec"):
        assert all(np.isfinite(r[key]) for r in rows), key
    kept = sorted(int(s) for s in os.listdir(os.path.join(straight, "checkpoints")) if s.isdigit())
    assert kept == [3, 6]


def _launch_train(root, workdir, steps):
    import subprocess
    import sys
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.Popen(
        [sys.executable, "launch.py", "--mode=train", "--config=configs/default.py:tiny",
         f"--workdir={workdir}", f"--config.data.root={root}", "--config.data.image_size=(64, 64)",
         "--config.data.heatmap_size=(16, 16)", "--config.train.batch_size=8",
         f"--config.train.steps={steps}", "--config.train.log_every=1",
         "--config.checkpoint.every_steps=1000", "--config.eval.every_epochs=-1"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(train_coco_root, tmp_path):
    import signal
    import time
    workdir = tmp_path / "run"
    proc = _launch_train(train_coco_root, workdir, 1000)
    lines = []
    for line in proc.stdout:  # wait until training is under way
        lines.append(line)
        if line.startswith("step 2/"):
            break
    else:
        pytest.fail("training never reached step 2:\n" + "".join(lines[-40:]))
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    elapsed = time.monotonic() - sent
    assert proc.returncode == 0, rest[-3000:]
    assert elapsed < 30, elapsed
    stopped = [line for line in rest.splitlines() if line.startswith("stopped at step")]
    assert stopped, rest[-3000:]
    step = int(stopped[0].split()[3].rstrip(":"))
    assert os.path.isdir(workdir / "checkpoints" / str(step))
    # The next run continues from it.
    proc = _launch_train(train_coco_root, workdir, step + 1)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert f"resuming from step {step} of {step + 1}" in out


def test_a_checkpoint_of_another_network_is_refused_naming_both(train_coco_root, tmp_path):
    from hrgan_jax import models
    made = _config(train_coco_root, 6)
    g_tx, d_tx, _, _ = state_lib.optimizers(made, steps_per_epoch=1)
    ckpt = checkpoints.Checkpoints(str(tmp_path / "checkpoints"), every_steps=1, keep=1,
                                   async_save=False)
    state = parallel.replicate(state_lib.create(made, g_tx, d_tx), parallel.make_mesh(ONE))
    ckpt.save(3, state, {"model": made.model.name, "num_joints": 17, "step": 3}, force=True)
    ckpt.close()
    where = str(tmp_path / "checkpoints" / "3")

    bigger = _config(train_coco_root, 6)
    bigger.model = models.hrnet_config("small", num_joints=17)
    with pytest.raises(checkpoints.CheckpointError,
                       match=f"{where} was made with model = 'tiny' \\(this run: 'small'\\)"):
        trainer.train_and_evaluate(bigger, str(tmp_path), devices=ONE)
    # The same network name with another head: the shapes tell.
    other_head = _config(train_coco_root, 6)
    other_head.model.final_conv_kernel = 3
    with pytest.raises(checkpoints.CheckpointError, match=f"{where} does not fit") as e:
        trainer.train_and_evaluate(other_head, str(tmp_path), devices=ONE)
    assert "g_params.final_layer.kernel: checkpoint (1, 1, 8, 17), this run (3, 3, 8, 17)" \
        in str(e.value)
    assert os.listdir(tmp_path / "checkpoints") == ["3"]  # nothing lost or overwritten
