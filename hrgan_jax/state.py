"""The GAN train state and the optimisers that update it.

GANState is a pytree: everything a resumed run needs to continue exactly (both
networks' parameters, BatchNorm running statistics and optimiser states, the
equilibrium term k_t, the step).  The optimisers themselves are functions built from
the config (``optimizers``), not state.
"""
from __future__ import annotations

import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from hrgan_jax import models, parallel, weights


@flax.struct.dataclass
class GANState:
    step: jax.Array  # int32 (): updates applied or skipped so far = batches consumed
    g_params: Any  # generator parameters
    g_stats: Any  # generator BatchNorm running statistics
    g_opt: Any  # generator optimiser state
    d_params: Any  # discriminator parameters
    d_stats: Any  # discriminator BatchNorm running statistics
    d_opt: Any  # discriminator optimiser state
    k: jax.Array  # float32 (): the equilibrium term k_t (eq. 5)
    skipped: jax.Array  # int32 (): updates skipped because a loss or gradient was not finite

    def generator_variables(self) -> dict:
        return {"params": self.g_params, "batch_stats": self.g_stats}


class FlatLayout:
    """The train state as one 1-D buffer per dtype, and back.

    Launching a jitted call costs the host time per argument leaf: the W32 state has
    ~5,500 leaves, which on a GPU would take longer to hand over than a tenth of the
    step (benchmarks/NOTES.md, "Host dispatch").  The trainer's jitted step therefore
    takes and returns ``ravel(state)`` (a few buffers) and unravels it inside, where
    the slices and the concatenation are device work XLA fuses.  Exact: the leaves are
    copied, never cast.  The price is compile time: on the CPU every slice is a kernel
    of its own, and the step compiles in twice the time (``TreeLayout``).
    """

    def __init__(self, state: Any):
        leaves, self.treedef = jax.tree.flatten(state)  # arrays or ShapeDtypeStructs
        self.shapes = tuple(tuple(x.shape) for x in leaves)
        self.dtypes = tuple(jnp.dtype(x.dtype).name for x in leaves)

    def ravel(self, state: Any) -> dict[str, jax.Array]:
        groups: dict[str, list] = {}
        for leaf, dtype in zip(jax.tree.leaves(state), self.dtypes, strict=True):
            groups.setdefault(dtype, []).append(jnp.ravel(leaf))
        return {dtype: jnp.concatenate(parts) for dtype, parts in groups.items()}

    def unravel(self, buffers: dict[str, jax.Array]) -> Any:
        offsets = dict.fromkeys(buffers, 0)
        leaves = []
        for shape, dtype in zip(self.shapes, self.dtypes):
            start, size = offsets[dtype], math.prod(shape)
            leaves.append(buffers[dtype][start:start + size].reshape(shape))
            offsets[dtype] = start + size
        return jax.tree.unflatten(self.treedef, leaves)

    def step(self, train_step):
        """``train_step(state, batch)`` as ``(buffers, batch) -> (buffers, metrics)``."""
        def flat_step(buffers, batch):
            new_state, metrics = train_step(self.unravel(buffers), batch)
            return self.ravel(new_state), metrics
        return flat_step


class TreeLayout:
    """The train state as it is, with ``FlatLayout``'s interface: the layout the trainer
    uses on the CPU, where a step takes hundreds of ms, handing over the leaves costs
    ~4 us each (1% of the demo's step), and the flat program doubles the step's compile
    time (demo config: 22.7 s -> 49.0 s; benchmarks/NOTES.md)."""

    def ravel(self, state: Any) -> Any:
        return state

    def unravel(self, state: Any) -> Any:
        # A copy: the snapshot that is saved (asynchronously) and evaluated must outlive
        # the next step, which donates the state it is given.
        return jax.tree.map(jnp.copy, state)

    def step(self, train_step):
        return train_step


def learning_rate(base_lr: float, optim: ml_collections.ConfigDict,
                  steps_per_epoch: int) -> optax.Schedule:
    """Step-wise decay: base_lr x lr_factor at each epoch in lr_steps (PyTorch MultiStepLR)."""
    boundaries = {int(round(e * steps_per_epoch)): optim.lr_factor for e in optim.lr_steps}
    return optax.piecewise_constant_schedule(base_lr, boundaries)


def _optimizer(name: str, lr: optax.Schedule, optim: ml_collections.ConfigDict):
    if name == "rmsprop":  # torch.optim.RMSprop: eps outside the square root, no momentum
        return optax.rmsprop(lr, decay=optim.rmsprop_decay, eps=optim.eps, eps_in_sqrt=False)
    if name == "adam":
        return optax.adam(lr, b1=optim.adam_b1, b2=optim.adam_b2, eps=optim.eps)
    raise ValueError(f"config.optim: unknown optimiser {name!r}; choose rmsprop or adam")


def optimizers(config: ml_collections.ConfigDict, steps_per_epoch: int):
    """(g_tx, d_tx, g_lr, d_lr): optax transformations and their learning-rate schedules."""
    o = config.optim
    g_lr = learning_rate(o.g_lr, o, steps_per_epoch)
    d_lr = learning_rate(o.d_lr, o, steps_per_epoch)
    return _optimizer(o.g_name, g_lr, o), _optimizer(o.d_name, d_lr, o), g_lr, d_lr


def initial_variables(config: ml_collections.ConfigDict, seed: int) -> tuple[dict, dict]:
    """Freshly initialised (G, D) variables; G from ``config.model.init`` when set."""
    key_g, key_d = jax.random.split(jax.random.PRNGKey(seed))
    g_module, g_input = models.network(config.model, "generator")
    d_module, d_input = models.network(models.network_config(config, "discriminator"),
                                       "discriminator")
    g_vars = models.init(g_module, key_g, g_input)
    d_vars = models.init(d_module, key_d, d_input)
    path = config.model.get("init", "")
    if path:
        state_dict = weights.load_file(path)
        if config.model.get("init_full", False):
            g_vars = weights.from_torch(state_dict, config.model, "generator", what=path)
            logging.info("generator initialised from every key of %s", path)
        else:
            g_vars, report = weights.load_pretrained(g_vars, state_dict, config.model)
            logging.info("generator initialised from %s: %d tensors loaded, %d dropped, %d kept "
                         "at init", path, len(report.loaded), len(report.dropped),
                         len(report.kept_init))
    return g_vars, d_vars


def from_variables(config: ml_collections.ConfigDict, g_vars: dict, d_vars: dict, g_tx,
                   d_tx) -> GANState:
    """A GANState at step 0 from both networks' variables (fresh optimiser states)."""
    g_params, d_params = g_vars["params"], d_vars["params"]
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params, g_stats=g_vars["batch_stats"], g_opt=g_tx.init(g_params),
        d_params=d_params, d_stats=d_vars["batch_stats"], d_opt=d_tx.init(d_params),
        k=jnp.asarray(config.adversarial.k0, jnp.float32),
        skipped=jnp.zeros((), jnp.int32))


def at_trained_scale(config: ml_collections.ConfigDict, g_tx, d_tx, seed: int = 0) -> GANState:
    """A GANState at step 0 whose weights have a trained network's scale
    (``weights.trained_scale_state_dict``), made in numpy: for benchmarks, whose timings
    N(0, 0.001) initial weights would distort, and with no Flax init to compile."""
    nets = {}
    for net in models.NETS:
        cfg = models.network_config(config, net)
        nets[net] = weights.from_torch(weights.trained_scale_state_dict(cfg, net, seed), cfg, net)
    return from_variables(config, nets["generator"], nets["discriminator"], g_tx, d_tx)


def create(config: ml_collections.ConfigDict, g_tx, d_tx, seed: int | None = None) -> GANState:
    """A new GANState (host arrays; the trainer places it on the mesh)."""
    seed = config.seed if seed is None else seed
    g_vars, d_vars = initial_variables(config, seed)
    return from_variables(config, g_vars, d_vars, g_tx, d_tx)


def abstract(config: ml_collections.ConfigDict, g_tx, d_tx) -> GANState:
    """The GANState's shapes and dtypes (jax.ShapeDtypeStruct leaves), computing nothing:
    the target a checkpoint is restored into."""
    g_module, g_input = models.network(config.model, "generator")
    d_module, d_input = models.network(models.network_config(config, "discriminator"),
                                       "discriminator")

    def build():
        key = jax.random.PRNGKey(0)
        return from_variables(config, g_module.init(key, g_input), d_module.init(key, d_input),
                              g_tx, d_tx)
    return jax.eval_shape(build)


def abstract_state(config: ml_collections.ConfigDict, g_tx, d_tx, mesh) -> GANState:
    """``abstract``'s shapes and dtypes, replicated over ``mesh``: the target a checkpoint
    is restored into, placed as the trainer holds the state."""
    sharding = parallel.replicated(mesh)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        abstract(config, g_tx, d_tx))
