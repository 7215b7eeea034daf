"""One HRGAN training iteration, in the public code's order (its train loop, one batch).

    1. G forward (train mode) -> H_hat, content loss (eq. 2).  G's VJP is taken once.
    2. D on (x_s, H) and on (x_s, stop_gradient(H_hat)), one call on 2B images: L_real,
       L_fake (eq. 4), each pass with its own batch statistics, D's running statistics
       updated by each pass in turn; one optimiser step on L_D = L_real - k_t L_fake.
    3. The *updated* D on (x_s, H_hat): L_adv (eq. 3); d(L_content + beta_G L_adv)/dH_hat
       is pulled back through G's VJP; one optimiser step for G.
    4. k_{t+1} = clip(k_t + lambda_k (gamma L_real - L_fake), 0, 1) (eq. 5).

With ``config.adversarial.d_output`` 'image' or 'joint' (the conventional GAN
discriminators of the paper's ablation: logits, not heatmaps) the same order runs with
the standard GAN losses (``losses.classifier_error``): L_real and L_fake D's errors on
real labelled 1 and detached fake labelled 0, L_D = (L_real + L_fake) / 2, L_adv D's
error on H_hat labelled 1 (non-saturating), and no k_t.

With ``config.adversarial.enabled`` False the step is HRNet's: content loss only, D
and k_t untouched.  Everything here is a pure function of (state, batch): the trainer
jits it with the mesh's shardings, and the same code runs on one device or a pod.
Train-mode BatchNorm statistics are over groups of ``config.model.bn_group`` images
(0: the global batch, synchronised BatchNorm); either way the result does not depend
on how many devices share the batch, and with groups that divide the per-device batch
BatchNorm needs no communication between devices.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from data_pipeline import keypoint_sets
from hrgan_jax import losses, models
from hrgan_jax.images import normalize_images
from hrgan_jax.models.discriminator import resize_to_heatmap
from hrgan_jax.state import GANState
from hrgan_jax.targets import heatmap_targets

def _tree_select(pred: jax.Array, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def make_train_step(config: ml_collections.ConfigDict, g_tx: optax.GradientTransformation,
                    d_tx: optax.GradientTransformation, g_lr: optax.Schedule,
                    d_lr: optax.Schedule, *, batched_d: bool = True
                    ) -> Callable[[GANState, dict], tuple[GANState, dict]]:
    """``train_step(state, batch) -> (state, metrics)`` for this config.

    batched_d: D's real and fake passes as one call on 2B images (per-pass statistics);
    False runs them as two calls, the public code's way (the same step to float32
    rounding; kept to test and measure that).

    batch: ``image`` uint8 (B, H, W, 3), ``joints`` float32 (B, J, 2) in input pixels,
    ``joints_vis`` (B, J).  metrics: float32 scalars.  A step whose losses or gradients
    are not finite leaves the state unchanged but for ``step`` and ``skipped`` (the
    trainer then stops or goes on, as config.train.nan_policy says), so a poisoned state
    never exists.
    """
    generator = models.generator(config.model)
    d_spec = models.validate(models.network_config(config, "discriminator"))
    discriminator = models.HRDiscriminator(d_spec)
    data, adv = config.data, config.adversarial
    image_size, heatmap_size = tuple(data.image_size), tuple(data.heatmap_size)
    sigma = float(data.sigma)
    enabled, equilibrium = bool(adv.enabled), bool(adv.equilibrium)
    beta_g, gamma, lambda_k = float(adv.beta_g), float(adv.gamma), float(adv.lambda_k)
    weight_in_d, through_target = bool(adv.target_weight_in_d), bool(adv.adv_grad_through_target)
    joint_weights = keypoint_sets.of_config(data).weights()
    reconstruct = d_spec.d_output == "reconstruct"
    gan_loss = str(adv.get("gan_loss", "bce"))

    def train_step(state: GANState, batch: dict) -> tuple[GANState, dict]:
        images = normalize_images(batch["image"])
        targets, target_weight = heatmap_targets(batch["joints"], batch["joints_vis"],
                                                 image_size, heatmap_size, sigma, joint_weights)
        d_weight = target_weight if weight_in_d else None

        # 1. G forward once; its VJP carries every gradient back to G's parameters.
        def g_forward(params):
            h, new = generator.apply({"params": params, "batch_stats": state.g_stats}, images,
                                     train=True, mutable=["batch_stats"])
            return h, new["batch_stats"]

        h_hat, g_vjp, g_stats = jax.vjp(g_forward, state.g_params, has_aux=True)
        l_content, dcontent = jax.value_and_grad(losses.content_loss)(h_hat, targets, target_weight)
        metrics = {"content_loss": l_content}
        new = dict(g_stats=g_stats)

        if enabled:
            batch_size = images.shape[0]
            x_s = resize_to_heatmap(images, h_hat.shape[1:3])

            def d_apply(params, stats, heatmaps):
                out, upd = discriminator.apply({"params": params, "batch_stats": stats},
                                               jnp.concatenate([x_s, heatmaps], axis=-1),
                                               train=True, mutable=["batch_stats"])
                return out, upd["batch_stats"]

            # Both passes as one call on 2B: rows interleaved group by group (real group
            # 0, fake group 0, real group 1, ...), so with bn_group dividing the per-device
            # batch every device keeps its own rows; each pass has its own statistics and
            # the running statistics take real, then fake (passes=2, hrnet.Norm).
            size = d_spec.bn_group or batch_size

            def interleave(a, b):
                a = a.reshape((-1, size) + a.shape[1:])
                b = b.reshape((-1, size) + b.shape[1:])
                return jnp.stack([a, b], axis=1).reshape((2 * batch_size,) + a.shape[2:])

            def d_apply_pair(params, stats, real, fake):
                inputs = interleave(jnp.concatenate([x_s, real], axis=-1),
                                    jnp.concatenate([x_s, fake], axis=-1))
                out, upd = discriminator.apply({"params": params, "batch_stats": stats}, inputs,
                                               train=True, passes=2, mutable=["batch_stats"])
                out = out.reshape((-1, 2, size) + out.shape[1:])
                per_pass = (batch_size,) + out.shape[3:]
                return out[:, 0].reshape(per_pass), out[:, 1].reshape(per_pass), upd["batch_stats"]

            # 2. D step on real and detached fake; running statistics updated in turn.
            fake = jax.lax.stop_gradient(h_hat)

            def d_loss_fn(params):
                if batched_d:
                    real_out, fake_out, stats = d_apply_pair(params, state.d_stats, targets, fake)
                else:
                    real_out, stats = d_apply(params, state.d_stats, targets)
                    fake_out, stats = d_apply(params, stats, fake)
                if not reconstruct:
                    l_real = losses.classifier_error(real_out, 1.0, gan_loss)
                    l_fake = losses.classifier_error(fake_out, 0.0, gan_loss)
                    l_d = losses.discriminator_loss(l_real, l_fake, state.k, equilibrium=False)
                    return l_d, (l_real, l_fake, stats, (real_out, fake_out))
                l_real = losses.reconstruction_error(real_out, targets, d_weight)
                l_fake = losses.reconstruction_error(fake_out, fake, d_weight)
                l_d = losses.discriminator_loss(l_real, l_fake, state.k, equilibrium)
                return l_d, (l_real, l_fake, stats, ())

            (l_d, (l_real, l_fake, d_stats, logits)), d_grads = jax.value_and_grad(
                d_loss_fn, has_aux=True)(state.d_params)
            d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
            d_params = optax.apply_updates(state.d_params, d_updates)

            # 3. L_adv through the updated D, gradient with respect to H_hat only.
            def adv_fn(h):
                out, stats = d_apply(d_params, d_stats, h)
                if not reconstruct:
                    return losses.classifier_error(out, 1.0, gan_loss), stats
                target = h if through_target else jax.lax.stop_gradient(h)
                return losses.reconstruction_error(out, target, d_weight), stats

            (l_adv, d_stats), dadv = jax.value_and_grad(adv_fn, has_aux=True)(h_hat)
            dh = dcontent + beta_g * dadv
            l_g = losses.generator_loss(l_content, l_adv, beta_g)
            metrics.update(l_real=l_real, l_fake=l_fake, l_adv=l_adv, d_loss=l_d, g_loss=l_g)
            if not reconstruct:  # no k_t: D's accuracy instead
                real_out, fake_out = logits
                new.update(d_params=d_params, d_stats=d_stats, d_opt=d_opt)
                metrics.update(d_real_acc=losses.classifier_accuracy(real_out, 1.0, gan_loss),
                               d_fake_acc=losses.classifier_accuracy(fake_out, 0.0, gan_loss),
                               d_grad_norm=optax.tree.norm(d_grads), d_lr=d_lr(state.step),
                               **losses.gradient_diagnostics(dcontent, dadv, beta_g))
            else:  # 4. Equilibrium, with the L_real and L_fake measured before D's update.
                k = (losses.equilibrium_update(state.k, l_real, l_fake, gamma, lambda_k)
                     if equilibrium else state.k)
                new.update(d_params=d_params, d_stats=d_stats, d_opt=d_opt, k=k)
                metrics.update(k=k, m_global=losses.convergence_measure(l_real, l_fake, gamma),
                               d_grad_norm=optax.tree.norm(d_grads), d_lr=d_lr(state.step),
                               **losses.adversary_diagnostics(dcontent, dadv, beta_g, state.k,
                                                              l_real, l_fake, gamma, lambda_k))
        else:
            dh, l_g = dcontent, l_content
            metrics.update(g_loss=l_g)

        (g_grads,) = g_vjp(dh)
        g_updates, g_opt = g_tx.update(g_grads, state.g_opt, state.g_params)
        new.update(g_params=optax.apply_updates(state.g_params, g_updates), g_opt=g_opt)
        metrics.update(g_grad_norm=optax.tree.norm(g_grads), g_lr=g_lr(state.step))

        finite = jnp.all(jnp.array([jnp.isfinite(v) for v in metrics.values()]))
        updated = state.replace(**new)
        state = _tree_select(finite, updated, state).replace(
            step=state.step + 1, skipped=state.skipped + (~finite).astype(jnp.int32))
        metrics = {k: v.astype(jnp.float32) for k, v in metrics.items()}
        metrics["finite"] = finite.astype(jnp.float32)
        return state, metrics

    return train_step
