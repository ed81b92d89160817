"""Noise schedules (EDM, Karras et al. 2022) and the transfer-strength mapping.

Kept apart from the samplers so that teacher, distilled students and export share one definition.
"""

from __future__ import annotations

import torch

from diffusion.errors import StylehostError


def karras_sigmas(
    steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The EDM schedule (eq. 5 of Karras et al. 2022): ``steps`` sigmas from sigma_max down to sigma_min,
    then a final 0, so a sampler makes exactly ``steps`` denoiser calls (Euler) per window."""
    if steps < 1:
        raise StylehostError(f"steps must be >= 1, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise StylehostError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).to(device=device, dtype=torch.float32)


def strength_sigma(strength: float, sigma_min: float, sigma_max: float, rho: float = 7.0) -> float:
    """Starting noise level for transfer strength ``s`` in (0, 1] (SDEdit, Meng et al. 2021).

    The sampler starts from the noised source ``source + sigma_start * noise``. ``s`` is the position
    on the same rho-warped ramp as the Karras schedule, so equal steps in ``s`` feel equally large:
    ``s = 1`` starts at sigma_max (the source is drowned, only the conditioning keeps the notes) and the
    output is the model's free rendering in the target style; small ``s`` starts near sigma_min and the
    output stays close to the source (timbre barely moves). Example with sigma_min 0.02, sigma_max 40,
    rho 7: s = 0.5 gives sigma_start ~ 2.4, i.e. the source is still visible under the noise.
    """
    if not 0.0 < strength <= 1.0:
        raise StylehostError(f"transfer strength must be in (0, 1], got {strength}")
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return float((lo + strength * (hi - lo)) ** rho)


def transfer_sigmas(
    steps: int, strength: float, sigma_min: float, sigma_max: float, rho: float = 7.0
) -> torch.Tensor:
    """Karras schedule truncated to start at ``strength_sigma(strength)``; ``steps`` calls, final 0."""
    return karras_sigmas(steps, sigma_min, strength_sigma(strength, sigma_min, sigma_max, rho), rho)


def consistency_sigmas(
    steps: int, strength: float, sigma_min: float, sigma_max: float, rho: float = 7.0
) -> torch.Tensor:
    """Noise levels for multistep consistency sampling (Algorithm 1 of Song et al. 2023): ``steps`` levels
    from ``strength_sigma(strength)`` down the rho-warped ramp, then 0.

    Unlike ``transfer_sigmas`` the ramp has ``steps + 1`` points and the last (sigma_min) is dropped: a
    consistency model jumps to x0 from any level, so re-noising to sigma_min would waste a call.
    Example (sigma 0.02..40, rho 7, strength 1): 1 step [40, 0]; 2 steps [40, 2.4, 0].
    """
    sigmas = transfer_sigmas(steps + 1, strength, sigma_min, sigma_max, rho)
    return torch.cat([sigmas[:steps], sigmas.new_zeros(1)])


def training_sigmas(
    batch: int, p_mean: float, p_std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training noise levels: ln(sigma) ~ N(p_mean, p_std^2) (Table 1 of Karras et al. 2022)."""
    return torch.exp(p_mean + p_std * torch.randn(batch, generator=generator))
