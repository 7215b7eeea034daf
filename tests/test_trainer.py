"""The trainer: a run writes what users rely on, and resuming is exact."""
import json
import os
import signal

import jax
import numpy as np
import pytest

from conftest import edit_train_batches, latest_state, train_config
from hrgan_jax import checkpoints, parallel, state as state_lib, trainer


ONE = jax.devices()[:1]  # the sharded step is tested in test_step; one CPU device is fastest


def _config(root, steps, **fields):
    config = train_config(**{"data.root": root, "train.steps": steps,
                                  "train.log_every": 2, "checkpoint.every_steps": 3,
                                  "eval.every_epochs": -1, **fields})
    return config


@pytest.mark.slow
def test_resume_is_exact(train_coco_root, tmp_path, capsys):
    """Six steps straight equal three, a restart and three more, bit for bit; the split
    run's step takes the state as flat buffers (the accelerators' layout), the straight
    run's as the pytree (the CPU's), so the two layouts are shown equal as well."""
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    trainer.train_and_evaluate(_config(train_coco_root, 6), straight, devices=ONE)
    trainer.train_and_evaluate(_config(train_coco_root, 3, **{"train.flat_state": "on"}), split,
                               devices=ONE)
    out = capsys.readouterr().out
    assert "starting a new run" in out
    trainer.train_and_evaluate(_config(train_coco_root, 6, **{"train.flat_state": "on"}), split,
                               devices=ONE)
    assert "resuming from step 3 of 6" in capsys.readouterr().out

    step_a, a, meta = latest_state(_config(train_coco_root, 6), straight)
    step_b, b, _ = latest_state(_config(train_coco_root, 6), split)
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
    events = [f for f in files if f.startswith("events.out.tfevents")]
    assert events
    import tensorflow as tf  # TensorBoard's tags: the training scalars under train/
    tags = {v.tag for e in tf.compat.v1.train.summary_iterator(os.path.join(straight, events[0]))
            for v in e.summary.value}
    assert {"train/content_loss", "train/k", "train/images_per_sec"} <= tags
    assert not [t for t in tags if "/" not in t], tags
    assert json.load(open(os.path.join(straight, "config.json")))["train"]["steps"] == 6
    rows = [json.loads(line) for line in open(os.path.join(straight, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [2, 3, 4, 6]  # every log_every steps and at saves
    for key in ("content_loss", "l_real", "l_fake", "l_adv", "k", "m_global", "g_lr", "d_lr",
                "g_grad_norm", "d_grad_norm", "images_per_sec"):
        assert all(np.isfinite(r[key]) for r in rows), key
    kept = sorted(int(s) for s in os.listdir(os.path.join(straight, "checkpoints")) if s.isdigit())
    assert kept == [3, 6]


@pytest.mark.slow
def test_sigterm_saves_the_step_it_stopped_at_and_the_next_run_continues(
        train_coco_root, tmp_path, monkeypatch, capsys):
    config = train_config(**{"data.root": train_coco_root, "train.steps": 1000,
                                  "train.log_every": 1, "checkpoint.every_steps": 1000,
                                  "eval.every_epochs": -1})
    previous = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as patch:
        # Reading batch 3 comes with a SIGTERM to this process (a real one to a training
        # subprocess: tests/test_faults.py, status and timing too).  The trainer reads two
        # batches ahead (parallel.prefetch_to_mesh), so batch 3 is read just before the
        # update to step 2, and the run stops after that update.
        edit_train_batches(patch, lambda k, batch: (k == 3 and os.kill(os.getpid(), signal.SIGTERM))
                           or batch)
        trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
    assert signal.getsignal(signal.SIGTERM) is previous  # the trainer's handler is gone
    out = capsys.readouterr().out
    stopped = [line for line in out.splitlines() if line.startswith("stopped at step")]
    assert stopped == [f"stopped at step 2: checkpoint saved in {tmp_path / 'checkpoints'}/2"], out
    # No regular save before step 1000: this one exists because of the signal.
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
    assert not os.path.exists(tmp_path / "curves.png")  # drawn when a run completes

    config.train.steps = 3
    trainer.train_and_evaluate(config, str(tmp_path), devices=ONE)
    assert "resuming from step 2 of 3" in capsys.readouterr().out
    assert latest_state(config, str(tmp_path))[0] == 3


def test_a_checkpoint_of_another_network_is_refused_naming_both(train_coco_root, tmp_path):
    from hrgan_jax import models
    made = _config(train_coco_root, 6)
    g_tx, d_tx, _, _ = state_lib.optimizers(made, steps_per_epoch=1)
    ckpt = checkpoints.Checkpoints(str(tmp_path / "checkpoints"), every_steps=1, keep=1,
                                   async_save=False)
    state = parallel.replicate(state_lib.create(made, g_tx, d_tx), parallel.make_mesh(ONE))
    ckpt.save(3, state, {"model": made.model.name, "discriminator": made.model.name,
                         "d_output": "reconstruct", "num_joints": 17, "step": 3}, force=True)
    ckpt.close()
    where = str(tmp_path / "checkpoints" / "3")

    bigger = _config(train_coco_root, 6)
    bigger.model = models.hrnet_config("small", num_joints=17)
    with pytest.raises(checkpoints.CheckpointError,
                       match=f"{where} was made with model = 'micro' \\(this run: 'small'\\)"):
        trainer.train_and_evaluate(bigger, str(tmp_path), devices=ONE)
    other_d = _config(train_coco_root, 6)
    other_d.adversarial.d_network = "tiny"
    with pytest.raises(checkpoints.CheckpointError,
                       match=f"{where} was made with discriminator = 'micro' \\(this run: 'tiny'\\)"):
        trainer.train_and_evaluate(other_d, str(tmp_path), devices=ONE)
    other_output = _config(train_coco_root, 6)
    other_output.adversarial.update(d_output="image", equilibrium=False)
    with pytest.raises(checkpoints.CheckpointError, match=f"{where} was made with d_output = "
                       f"'reconstruct' \\(this run: 'image'\\)"):
        trainer.train_and_evaluate(other_output, str(tmp_path), devices=ONE)
    # The same network name with another head: the shapes tell.
    other_head = _config(train_coco_root, 6)
    other_head.model.final_conv_kernel = 3
    with pytest.raises(checkpoints.CheckpointError, match=f"{where} does not fit") as e:
        trainer.train_and_evaluate(other_head, str(tmp_path), devices=ONE)
    assert "g_params.final_layer.kernel: checkpoint (1, 1, 4, 17), this run (3, 3, 4, 17)" \
        in str(e.value)
    assert os.listdir(tmp_path / "checkpoints") == ["3"]  # nothing lost or overwritten
    assert sorted(os.listdir(tmp_path)) == ["checkpoints"]  # no config.json, the lock released


@pytest.mark.slow  # compiles a train step or starts a fresh interpreter
def test_the_flat_state_the_step_takes_is_the_state_exactly():
    """state_lib.FlatLayout: one buffer per dtype (the trainer's jitted step takes these,
    not ~5,500 leaves), and back to the same pytree, bit for bit, inside jit."""
    config = train_config()
    g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=2)
    state = state_lib.create(config, g_tx, d_tx).replace(step=jax.numpy.int32(7))
    layout = state_lib.FlatLayout(state_lib.abstract(config, g_tx, d_tx))
    buffers = jax.jit(layout.ravel)(state)
    leaves = jax.tree.leaves(state)
    assert sorted(buffers) == sorted({x.dtype.name for x in leaves})
    assert sum(b.size for b in buffers.values()) == sum(x.size for x in leaves)
    back = jax.jit(layout.unravel)(buffers)
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for x, y in zip(leaves, jax.tree.leaves(back), strict=True):
        assert (x.shape, x.dtype) == (y.shape, y.dtype)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_the_step_takes_flat_buffers_on_accelerators_and_the_pytree_on_the_cpu():
    """config.train.flat_state: 'auto' is flat off the CPU only; the CPU's TreeLayout
    hands back a snapshot in buffers of its own, which the next (donating) step leaves
    alone; an unknown value is an error naming the field."""
    from hrgan_jax import config_checks
    config, mesh = train_config(), parallel.make_mesh(ONE)
    assert trainer.flat_state(config, mesh) is False  # 'auto' on the CPU
    config.train.flat_state = "on"
    assert trainer.flat_state(config, mesh) is True
    config.train.flat_state = "off"
    assert trainer.flat_state(config, mesh) is False
    config.train.flat_state = "flat"
    with pytest.raises(ValueError,
                       match="config.train.flat_state = 'flat': choose one of auto, on, off"):
        config_checks.check(config)

    tree = {"a": jax.numpy.arange(4.0), "b": jax.numpy.ones((2, 3), jax.numpy.int32)}
    layout = state_lib.TreeLayout()
    assert layout.ravel(tree) is tree and layout.step(len) is len  # the step as it is
    snapshot = jax.jit(layout.unravel)(tree)
    for x, y in zip(jax.tree.leaves(tree), jax.tree.leaves(snapshot)):
        assert x.unsafe_buffer_pointer() != y.unsafe_buffer_pointer()
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_second_run_with_the_same_step_reuses_its_functions():
    """trainer._step_functions: the same step functions (so jit's caches hold its trace and
    program) for a config that differs only where the step does not read (steps, seed,
    checkpoints), new ones when the network, the losses, the data or the epoch differ."""
    base = train_config()
    first = trainer._step_functions(base, 3)
    same = train_config(**{"train.steps": 99, "seed": 5, "checkpoint.every_steps": 7})
    assert trainer._step_functions(same, 3) is first
    for path, value in (("model.dtype", "bfloat16"), ("adversarial.beta_g", 0.5),
                        ("data.sigma", 3.0), ("optim.g_lr", 1e-2)):
        assert trainer._step_functions(train_config(**{path: value}), 3) is not first, path
    assert trainer._step_functions(base, 4) is not first
