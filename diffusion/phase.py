"""Streaming phase reconstruction, RTISI-LA style (Zhu, Beauregard & Wyse 2007), the classical baseline.

Real-Time Iterative Spectrogram Inversion with Look-Ahead: each call commits the ``emit`` oldest
uncommitted frames. Their phase, and that of ``lookahead`` frames after them, is re-estimated by a
few Griffin-Lim iterations (Griffin & Lim 1984) against a partial reconstruction in which the
already committed frames are fixed: overlap-add committed + current estimates, re-analyse each new
frame's segment, keep its phase, put back the wanted magnitude. The wanted magnitude is the
source-phase path's (the source STFT scaled by the mel-band gain, as ``PhaseGuidedResynth``) and the
iterations start from the source's phase, so zero iterations give source-phase iSTFT.

Latency: the look-ahead frames are the model window's own look-ahead (its 2 frames right of the
emitted ones, whose predictions each call already has), so ``lookahead <= 2`` adds nothing.

Shapes per call (``forward``): committed (B, K-1, n_fft) the last K-1 committed synthesis-windowed
frames (K = n_fft / hop; zeros before the stream), frames (B, S + LA, n_fft) source frames,
pred_logmel (B, n_mels, S + LA) -> (B, S, n_fft) newly committed synthesis-windowed frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusion.features import SpectrogramConfig
from diffusion.guide import GuideConfig, GuideStage, frames_of, overlap_add


class RtisiLa(nn.Module):
    def __init__(self, spec: SpectrogramConfig, iterations: int = 4, lookahead: int = 2) -> None:
        super().__init__()
        self.spec, self.iterations, self.lookahead = spec, iterations, lookahead
        self.start = GuideStage(spec, GuideConfig(), steps=0)  # its start(): the source-phase STFT
        self.k = spec.n_fft // spec.hop

    def forward(self, committed: torch.Tensor, frames: torch.Tensor, pred_logmel: torch.Tensor) -> torch.Tensor:
        st, hop, n_fft, k = self.start, self.spec.hop, self.spec.n_fft, self.k
        re, im, _, _ = st.start(frames, pred_logmel)
        mag = torch.sqrt(re * re + im * im + 1e-20)
        est = st.synthesize(re, im)  # (B, M, n_fft)
        m = est.shape[1]
        for _ in range(self.iterations):
            buffer = overlap_add(torch.cat([committed, est], dim=1), hop)
            # each new frame's samples (slices, not unfold: the ONNX exporter gets unfold's shape wrong here)
            segments = torch.stack([buffer[:, (k - 1 + j) * hop : (k - 1 + j) * hop + n_fft] for j in range(m)], 1)
            spec = torch.matmul(segments, st.analysis).transpose(1, 2)
            sre, sim = spec[:, : st.n_freqs], spec[:, st.n_freqs :]
            norm = mag / torch.sqrt(sre * sre + sim * sim + 1e-20)
            est = st.synthesize(sre * norm, sim * norm)
        return est[:, : m - self.lookahead]


@torch.no_grad()
def rtisi_clip(rtisi: RtisiLa, wave: np.ndarray, contexts: torch.Tensor, emit: int) -> np.ndarray:
    """Run RTISI-LA call by call over a clip, as a stream would; output aligned with ``wave``.

    ``contexts`` (calls, n_mels, emit + LA) is each call's predicted log-mel of frames
    [c*emit, c*emit + emit + LA) (the clip's true target log-mel, or each model window's own output).
    Frames past the clip's end are zero audio.
    """
    spec = rtisi.spec
    la, k, hop = rtisi.lookahead, rtisi.k, spec.hop
    frames_total = spec.num_frames(len(wave))
    calls = contexts.shape[0]
    need = spec.num_samples(calls * emit + la)
    audio = torch.zeros(1, max(need, len(wave)))
    audio[0, : len(wave)] = torch.as_tensor(np.asarray(wave, np.float32))
    frames = frames_of(audio, spec)
    committed = torch.zeros(1, k - 1, spec.n_fft)
    outs = []
    for c in range(calls):
        new = rtisi(committed, frames[:, c * emit : c * emit + emit + la], contexts[c : c + 1])
        outs.append(new)
        committed = torch.cat([committed, new], dim=1)[:, -(k - 1) :]
    out = overlap_add(torch.cat(outs, dim=1)[:, :frames_total], hop)[0].numpy()
    result = np.zeros(len(wave), np.float32)
    result[: min(len(out), len(wave))] = out[: len(wave)]
    return result

