"""Samplers (plain functions over the one denoiser contract) and the window-level transfer.

A sampler takes ``denoiser(x, sigma, **extra_args) -> x0``, a start ``x`` (already scaled to
``sigmas[0]``) and a decreasing ``sigmas`` ending in 0; it makes one denoiser call per step (Euler)
or two (Heun). They are deterministic: all randomness is the frame-anchored start noise, which
``transfer`` draws from ``diffusion.noise`` so overlapping windows start from identical noise on
the frames they share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from diffusion.errors import StylehostError
from diffusion.model import Denoiser
from diffusion.noise import batch_frame_noise
from diffusion.schedule import consistency_sigmas, strength_sigma, transfer_sigmas

DenoiserFn = Callable[..., torch.Tensor]
Callback = Callable[[dict[str, Any]], None]
NoiseSampler = Callable[[int], torch.Tensor]  # sampler step (1, 2, ...) -> noise shaped like x


def _d(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """ODE derivative dx/dsigma = (x - D(x)) / sigma (eq. 3 of Karras et al. 2022)."""
    return (x - x0) / sigma


@torch.no_grad()
def sample_euler(
    denoiser: DenoiserFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Euler steps of the probability-flow ODE (Algorithm 1 of Karras et al. 2022 without the Heun
    correction); one denoiser call per step. With ``sigmas = [s, 0]`` this is a single x0 prediction."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        x0 = denoiser(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": x0})
        x = x0 if sigmas[i + 1] == 0 else x + _d(x, x0, sigmas[i]) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_heun(
    denoiser: DenoiserFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Heun's second-order method (Algorithm 1 of Karras et al. 2022, S_churn = 0): the teacher's
    sampler; 2 calls per step except the last (an Euler step to sigma 0)."""
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        x0 = denoiser(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": x0})
        d = _d(x, x0, sigmas[i])
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x0
        else:
            x_next = x + d * dt
            d2 = _d(x_next, denoiser(x_next, sigmas[i + 1] * ones, **extra_args), sigmas[i + 1])
            x = x + (d + d2) / 2 * dt
    return x


@torch.no_grad()
def sample_consistency(
    denoiser: DenoiserFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    extra_args: dict[str, Any] | None = None,
    callback: Callback | None = None,
    noise_sampler: NoiseSampler | None = None,
) -> torch.Tensor:
    """Multistep consistency sampling (Algorithm 1 of Song et al. 2023) for distilled students: jump to
    x0, re-noise to the next sigma with ``noise_sampler(i)``, jump again; one call per step.

    The EDM forward process is ``x0 + sigma * noise`` (data at sigma 0), so re-noising adds ``sigma``
    times fresh noise. ``transfer`` passes frame-anchored noise (``frame_noise(..., step=i)``) so that
    overlapping windows re-noise identically too. With ``sigmas = [s, 0]`` this is one x0 prediction.
    """
    extra_args = extra_args or {}
    ones = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        x0 = denoiser(x, sigmas[i] * ones, **extra_args)
        if callback is not None:
            callback({"i": i, "x": x, "sigma": sigmas[i], "denoised": x0})
        if sigmas[i + 1] == 0:
            x = x0
        elif noise_sampler is None:
            raise StylehostError("multistep consistency sampling needs a noise_sampler (frame-anchored noise)")
        else:
            x = x0 + sigmas[i + 1] * noise_sampler(i + 1)
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler, "heun": sample_heun, "consistency": sample_consistency,
}
# Samplers that inject fresh noise between steps: they take a ``noise_sampler(step)`` and run on
# ``consistency_sigmas`` (no wasted call at sigma_min); the others follow the truncated Karras schedule.
STOCHASTIC = frozenset({"consistency"})


def transfer(
    denoiser: Denoiser,
    source_logmel: torch.Tensor,
    style_vec: torch.Tensor,
    *,
    strength: float = 1.0,
    steps: int = 2,
    sampler: str = "euler",
    seed: int = 0,
    start_frames: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Restyle windows: (B, n_mels, T) source log-mel (natural log, not normalised; (B, 2, n_mels, T) for a
    model hearing the input and its excitation) -> (B, n_mels, T).

    SDEdit-style start (Meng et al. 2021): ``x = source + sigma_start * noise`` with sigma_start from
    ``strength`` (see ``diffusion.schedule.strength_sigma``), then ``steps`` steps down the truncated
    Karras schedule (``consistency_sigmas`` for the students' ``consistency`` sampler, whose re-noising
    is frame-anchored as well: ``frame_noise(..., step=i)``). ``start_frames`` are the absolute frame
    indices of each window's first column: the noise is a function of (seed, absolute frame), so the
    output is deterministic and overlapping windows agree on their start noise.
    """
    if sampler not in SAMPLERS:
        raise StylehostError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
    cfg = denoiser.cfg
    source = cfg.heard(source_logmel)  # (B, source_channels, n_mels, T)
    b, t = source.shape[0], source.shape[-1]
    starts = [start_frames] * b if isinstance(start_frames, int) else list(start_frames)
    if len(starts) != b:
        raise StylehostError(f"need one start frame per window ({b}), got {len(starts)}")

    def noise(step: int) -> torch.Tensor:
        return torch.from_numpy(batch_frame_noise(seed, np.asarray(starts), t, cfg.n_mels, step=step)).to(source)

    schedule = consistency_sigmas if sampler in STOCHASTIC else transfer_sigmas
    sigmas = schedule(steps, strength, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    x = source[:, :1] + strength_sigma(strength, cfg.sigma_min, cfg.sigma_max, cfg.rho) * noise(0)
    kwargs: dict[str, Any] = {"noise_sampler": noise} if sampler in STOCHASTIC else {}
    out = SAMPLERS[sampler](denoiser, x, sigmas.to(source), extra_args={"source": source, "style_vec": style_vec},
                            **kwargs)
    return cfg.denormalize(out[:, 0])
