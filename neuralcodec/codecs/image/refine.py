"""Encoder-side latent refinement for the hyperprior image codec (semi-amortized inference).

The analysis transform ``g_a`` is an *amortized* guess of the best latent for an image; a model
trained briefly (every model we can train on a CPU) leaves a large amortization gap. Refinement
optimises the gained latent ``y [1, M, h, w]`` of one image directly for the codec's own objective,
``bpp + lambda(q) * 255^2 * MSE``, through the fixed entropy model and synthesis transform
(Campos et al. 2019, "Content adaptive optimization"; Yang et al. 2020, "Improving inference for
neural image compression"). Only the encoder changes: the model, the bitstream and the decoder are
the same, so every decoder reads a refined file.

Proxies as in training: additive uniform noise for the rate (``y`` and ``z``), straight-through
rounding for the distortion; Adam with a linearly decaying step. The synthesis transform runs under
bf16 autocast by default (as in training; 1.6-1.8x faster per step on a CPU) while the entropy model
stays in float32; only the encoder's search is affected, never the file's exactness. The caller
codes both the refined and the amortized latent and keeps the one with the lower *exact* cost
(actual file bits, MSE of the decoded image), so refinement never makes a file worse for that
objective.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor

from neuralcodec.codecs.image.padding import crop_to
from neuralcodec.entropy.ops import round_ste

#: Adam step size, in quantization steps of the gained latent.
DEFAULT_LR = 0.1
#: Most refinement steps a caller may ask for (each costs one synthesis forward + backward pass).
MAX_STEPS = 10_000


@contextlib.contextmanager
def _training_proxies(module: torch.nn.Module) -> Iterator[None]:
    """Run ``module`` (the hyperprior) with its training-time quantization proxies, then restore
    its mode; its frozen integer tables are untouched (they are buffers, built by ``freeze()``)."""
    was_training = module.training
    module.train(True)
    try:
        yield
    finally:
        module.train(was_training)


def refine_latent(codec, x: Tensor, y: Tensor, quality: Tensor, steps: int, lr: float = DEFAULT_LR,
                  bf16: bool = True) -> Tensor:
    """Refined gained latent for image ``x [1, 3, H, W]`` (unpadded, in [0, 1]).

    ``y [1, M, h, w]`` is the starting gained latent (``g_a(pad(x)) * gain(q)``), ``quality`` float
    ``[1]``; ``bf16`` runs the synthesis transform under bf16 autocast. Returns a detached tensor like
    ``y``; the model's weights get no gradient.
    """
    if not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"refinement steps must lie in 0..{MAX_STEPS}, got {steps}")
    if steps == 0:
        return y.detach()
    hp = codec.hyperprior
    height, width = x.shape[-2:]
    lam = codec.lambda_at(float(quality.reshape(-1)[0]))
    inverse_gain = codec.gain.inverse_gain(quality).detach()
    latent = y.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=lr)
    synthesis_precision = torch.autocast(y.device.type, dtype=torch.bfloat16, enabled=bf16)
    with torch.enable_grad(), _training_proxies(hp):
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * (1.0 - step / steps)
            _, means, lik_y, lik_z = hp.float_path(latent)
            y_hat = round_ste(latent - means) + means
            with synthesis_precision:
                x_hat = crop_to(codec.g_s(y_hat * inverse_gain), height, width)
            bits = -(torch.log2(lik_y).sum() + torch.log2(lik_z).sum())
            loss = bits / (height * width) + lam * 255.0**2 * (x_hat.float() - x).pow(2).mean()
            (grad,) = torch.autograd.grad(loss, [latent])
            latent.grad = grad
            optimizer.step()
    return latent.detach()


__all__ = ["DEFAULT_LR", "MAX_STEPS", "refine_latent"]
