"""The COCO config's train steps lower for CUDA on this CPU (no GPU, no compilation): a GPU
user never meets a lowering error that could have been seen here."""
import jax
import numpy as np
import pytest

from hrgan_jax import parallel, state as state_lib, step as step_lib


def _lower_for_cuda(adversarial: bool):
    from hrgan_jax.configs import coco_w32_256x192
    config = coco_w32_256x192.get_config("hrgan" if adversarial else "hrnet")
    batch = config.model.bn_group  # one device's batch: one BatchNorm group (16 / 32)
    config.train.batch_size = batch
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=1000)
    state = state_lib.abstract(config, g_tx, d_tx)
    # as the trainer runs it on a GPU (train.flat_state=auto): one buffer per dtype
    layout = state_lib.FlatLayout(state)
    buffers = jax.eval_shape(layout.ravel, state)
    w, h = config.data.image_size
    j = config.model.num_joints
    host = {"image": jax.ShapeDtypeStruct((batch, h, w, 3), np.uint8),
            "joints": jax.ShapeDtypeStruct((batch, j, 2), np.float32),
            "joints_vis": jax.ShapeDtypeStruct((batch, j), np.float32)}
    mesh = parallel.make_mesh(jax.devices()[:1])
    rep, data = parallel.replicated(mesh), parallel.data_sharded(mesh)
    step = jax.jit(layout.step(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr)),
                   in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=0)
    return step.trace(buffers, host).lower(lowering_platforms=("cuda",))


@pytest.mark.slow  # traces and lowers W32's ~3,200-convolution GAN step (no compilation)
@pytest.mark.parametrize("adversarial", [True, False], ids=["gan", "hrnet"])
def test_coco_w32_steps_lower_for_cuda(adversarial):
    lowered = _lower_for_cuda(adversarial)  # raises where a GPU's lowering would
    out_buffers, metrics = lowered.out_info
    assert set(out_buffers) == {"float32", "int32"}  # the state comes back as it went in
    assert ("l_real" in metrics) == adversarial and "content_loss" in metrics
