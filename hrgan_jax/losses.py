"""HRGAN's losses, eq. (1)-(6) of Cao et al., as the public code computes them, and the
standard GAN losses of the conventional discriminators its ablation rejects.

All heatmaps are (B, h, w, J) float32; every loss is a float32 scalar.  Heatmap MSEs
are ~1e-3, so beta_G * L_adv is ~1e-7 and k_t moves ~1e-6 a step: everything here is
computed in float32 whatever the network's compute dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def content_loss(heatmaps: jax.Array, targets: jax.Array, target_weight: jax.Array) -> jax.Array:
    """L_content, eq. (2): HRNet's JointsMSELoss with target weights.

    0.5 * mean over batch, joints and pixels of (w_j * (H_hat - H))^2.
    heatmaps, targets: (B, h, w, J); target_weight: (B, J).
    """
    w = target_weight[:, None, None, :].astype(jnp.float32)
    diff = w * (heatmaps.astype(jnp.float32) - targets.astype(jnp.float32))
    return 0.5 * jnp.mean(jnp.square(diff))


def reconstruction_error(reconstruction: jax.Array, heatmaps: jax.Array,
                         target_weight: jax.Array | None = None) -> jax.Array:
    """D's reconstruction error, eq. (3)-(4): mean((D(x_s, H) - H)^2) over all elements.

    L_real with H the ground truth, L_fake and L_adv with H = H_hat.  With
    ``target_weight`` (B, J) (the paper's 'target weight inside D' ablation) both sides
    are weighted per joint first, as in the content loss.
    """
    diff = reconstruction.astype(jnp.float32) - heatmaps.astype(jnp.float32)
    if target_weight is not None:
        diff = target_weight[:, None, None, :].astype(jnp.float32) * diff
    return jnp.mean(jnp.square(diff))


def classifier_error(logits: jax.Array, label: float, gan_loss: str = "bce") -> jax.Array:
    """A conventional D's error on logits (B, 1) or (B, J) for one label (1 real, 0 fake),
    the mean over all logits: 'bce' the binary cross-entropy of sigmoid(logits) (Goodfellow
    et al.), 'lsgan' the squared error (logits - label)^2 (Mao et al.).

    L_real = error(D(x_s, H), 1), L_fake = error(D(x_s, sg(H_hat)), 0), and D minimises
    (L_real + L_fake) / 2 (``discriminator_loss`` without equilibrium); G's L_adv =
    error(D(x_s, H_hat), 1), with 'bce' the non-saturating -log D(x_s, H_hat) -- the
    places HRGAN's reconstruction errors take in eq. (1), (3) and (4).
    """
    z = logits.astype(jnp.float32)
    if gan_loss == "bce":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, jnp.full_like(z, label)))
    if gan_loss == "lsgan":
        return jnp.mean(jnp.square(z - label))
    raise ValueError(f"gan_loss must be 'bce' or 'lsgan', got {gan_loss!r}")


def classifier_accuracy(logits: jax.Array, label: float, gan_loss: str = "bce") -> jax.Array:
    """The share of a conventional D's logits on the side of ``label``: above the
    midpoint of the two labels' outputs (0 for 'bce' logits, 0.5 for 'lsgan') for 1,
    below it for 0.  For the logs: D's accuracy on real and on fake inputs."""
    threshold = 0.0 if gan_loss == "bce" else 0.5
    z = logits.astype(jnp.float32)
    return jnp.mean(((z > threshold) if label else (z < threshold)).astype(jnp.float32))


def discriminator_loss(l_real: jax.Array, l_fake: jax.Array, k: jax.Array,
                       equilibrium: bool = True) -> jax.Array:
    """L_D, eq. (4): L_real - k_t * L_fake; without equilibrium (ablation) (L_real + L_fake) / 2."""
    if equilibrium:
        return l_real - k * l_fake
    return 0.5 * (l_real + l_fake)


def generator_loss(l_content: jax.Array, l_adv: jax.Array, beta_g: float) -> jax.Array:
    """L_G, eq. (1): L_content + beta_G * L_adv."""
    return l_content + beta_g * l_adv


def equilibrium_update(k: jax.Array, l_real: jax.Array, l_fake: jax.Array, gamma: float,
                       lambda_k: float) -> jax.Array:
    """k_{t+1}, eq. (5): clip(k_t + lambda_k * (gamma * L_real - L_fake), 0, 1).

    L_real and L_fake are the values measured in the D step, before D's update.
    """
    return jnp.clip(k + lambda_k * (gamma * l_real - l_fake), 0.0, 1.0)


def gradient_diagnostics(dcontent: jax.Array, dadv: jax.Array, beta_g: float
                         ) -> dict[str, jax.Array]:
    """How much the adversary moves G this step (not in the paper; for the logs), for
    every D output.

    dcontent, dadv: dL_content/dH_hat and dL_adv/dH_hat (B, h, w, J).  Returns
    content_grad_norm = |dL_content/dH_hat|, adv_grad_norm = |beta_G dL_adv/dH_hat| and
    adv_grad_ratio = adv / content (the share of G's signal the adversary adds).
    """
    content = jnp.sqrt(jnp.sum(jnp.square(dcontent.astype(jnp.float32))))
    adv = beta_g * jnp.sqrt(jnp.sum(jnp.square(dadv.astype(jnp.float32))))
    return {"content_grad_norm": content, "adv_grad_norm": adv,
            "adv_grad_ratio": jnp.where(content > 0, adv / jnp.where(content > 0, content, 1.0), 0.0)}


def adversary_diagnostics(dcontent: jax.Array, dadv: jax.Array, beta_g: float,
                          k: jax.Array, l_real: jax.Array, l_fake: jax.Array, gamma: float,
                          lambda_k: float) -> dict[str, jax.Array]:
    """HRGAN's diagnostics: ``gradient_diagnostics`` and the equilibrium's.

    k: k_t before the update.  Adds d_gap = L_fake - gamma L_real (D's reconstruction gap:
    k_t falls while it is positive), and k_clipped_low / k_clipped_high: 1 when eq. (5)
    was clipped at 0 / 1.
    """
    unclipped = k + lambda_k * (gamma * l_real - l_fake)
    return {**gradient_diagnostics(dcontent, dadv, beta_g),
            "d_gap": l_fake - gamma * l_real,
            "k_clipped_low": (unclipped < 0).astype(jnp.float32),
            "k_clipped_high": (unclipped > 1).astype(jnp.float32)}


def convergence_measure(l_real: jax.Array, l_fake: jax.Array, gamma: float) -> jax.Array:
    """M_global, eq. (6): L_real + |gamma * L_real - L_fake|."""
    return l_real + jnp.abs(gamma * l_real - l_fake)
