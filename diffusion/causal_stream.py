"""Offline reference of a streaming (causal) bundle: the whole clip in one causal pass per sampler step.

A causal denoiser's output at frame t depends only on frames <= t (diffusion/causal.py), so the live
processor (realtime/stream_processor.py), which feeds S frames per call with the state carried over, and one
pass over the whole sequence from the same zero state give the same numbers. This module is that one pass,
plus the stage over groups of S emitted frames (``guide.restore_windows``, as the window bundles' reference).

Frames are absolute (frame 0 starts at sample 0 of ``audio``; the live stream is this clip with
``frame_origin`` hops of silence in front). ``first_frame`` is the first source frame the stream feeds, where
the state is zeros; source frames before 0 are the log floor, as the processor sets them; the x0 of frames
the stream never computed (before ``first_frame - L_c``) is the log floor in the stage's context, as the
processor's context starts.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion.causal import CausalDenoiser
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig, excite
from diffusion.guide import GuideStage, restore_windows
from diffusion.noise import frame_noise
from diffusion.resynth import PhaseGuidedResynth
from diffusion.schedule import consistency_sigmas, strength_sigma, transfer_sigmas


@torch.no_grad()
def causal_stream_audio(denoiser: CausalDenoiser, stage: GuideStage, audio: np.ndarray, style_vec: torch.Tensor, *,
                        emit: int, first_frame: int, steps: int = 1, strength: float = 1.0,
                        sampler: str = "consistency", seed: int = 0,
                        excitation: ExcitationConfig | None = None) -> np.ndarray:
    """(samples,) clip -> (samples,) restyled audio aligned with it, as the streaming processor plays it."""
    if sampler not in ("consistency", "euler"):
        raise StylehostError(f"unknown sampler {sampler!r}")
    cfg = denoiser.cfg
    spec, lc, s = cfg.spectrogram, cfg.lookahead, emit
    wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    logmel = PhaseGuidedResynth(spec).transform.log_mel(wave[None])[0]  # (m, F)
    m, frames = logmel.shape
    floor = float(np.log(spec.log_floor))
    end = math.ceil(frames / s) * s + stage.after  # exclusive: the last context frame the stage reads
    a0 = first_frame

    def source(lo: int, hi: int) -> torch.Tensor:
        """Log-mel of absolute frames [lo, hi): the clip's, the floor outside it."""
        out = torch.full((m, hi - lo), floor)
        a, b = max(lo, 0), min(hi, frames)
        if b > a:
            out[:, a - lo : b - lo] = logmel[:, a:b]
        return out

    n = end + lc - a0  # causal times a0 .. end + lc - 1; x frames are L_c earlier
    heard = cfg.normalize(source(a0, a0 + n))[None, None]
    x_frames = a0 - lc

    def noise(step: int) -> torch.Tensor:
        return torch.from_numpy(frame_noise(seed, x_frames, n, m, step))[None, None]

    if strength > 0:
        schedule = consistency_sigmas if sampler == "consistency" else transfer_sigmas
        sigmas = schedule(steps, strength, cfg.sigma_min, cfg.sigma_max, cfg.rho).tolist()
        x = cfg.normalize(source(x_frames, x_frames + n))[None, None] + \
            strength_sigma(strength, cfg.sigma_min, cfg.sigma_max, cfg.rho) * noise(0)
        style = style_vec.reshape(1, -1)
        for i in range(len(sigmas) - 1):
            x0 = denoiser(x, torch.full((1,), sigmas[i]), heard, style)
            if sigmas[i + 1] == 0:
                x = x0
            elif sampler == "consistency":
                x = x0 + sigmas[i + 1] * noise(i + 1)
            else:
                x = x + (x - x0) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        pred = cfg.denormalize(x[0, 0])
    else:
        pred = source(x_frames, x_frames + n)
    lo = min(-stage.before, x_frames)
    full = torch.full((m, end - lo), floor)  # absolute frames [lo, end)
    full[:, x_frames - lo : x_frames - lo + n] = pred[:, : end - x_frames]
    groups = math.ceil(frames / s)
    contexts = torch.stack([full[:, w * s - stage.before - lo : (w + 1) * s + stage.after - lo]
                            for w in range(groups)])
    shaped = wave if excitation is None else torch.as_tensor(excite(audio, spec.sample_rate, spec.hop, excitation))
    return restore_windows(stage, shaped, contexts, s).numpy()
