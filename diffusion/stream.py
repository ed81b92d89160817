"""Offline streaming reference: restyle a whole clip exactly the way the live engine runs the model.

The engine slides a window of T frames along the input and, every ``emit`` new frames, keeps the
``emit`` frames that end ``lookahead`` frames before the window's right edge. Windows are
independent given the frame-anchored noise, so offline we build every window of a clip at once
and run them as one batch: same numbers as the live engine, a fraction of the time.

Worked example (T=32, L=2, S=4): the window ending at absolute frame e (exclusive) covers frames
[e-32, e) and emits [e-6, e-2). The first window has e = L + S = 6 and emits frames 0..3; its
frames [-26, 0) are the silence the engine's history starts with (the log floor).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from diffusion.errors import StylehostError
from diffusion.excitation import GATED, PLAYED_INPUTS, ExcitationConfig, excite
from diffusion.guide import GuideStage, restore_windows
from diffusion.input_gate import GateConfig, InputGate
from diffusion.model import Denoiser
from diffusion.resynth import PhaseGuidedResynth
from diffusion.sampling import transfer


@dataclass(frozen=True)
class StreamConfig:
    """How the engine samples each window (the performer's knobs, minus the style)."""

    emit: int = 4  # S: frames emitted per window
    steps: int = 2
    strength: float = 1.0
    sampler: str = "euler"
    seed: int = 0
    batch: int = 256  # windows per forward pass (memory only; results do not depend on it)


def window_ends(num_frames: int, lookahead: int, emit: int) -> np.ndarray:
    """Exclusive right edges of the windows that together emit frames [0, num_frames)."""
    count = -(-num_frames // emit)
    return lookahead + emit * (np.arange(count) + 1)


def stream_logmel(
    denoiser: Denoiser, source_logmel: torch.Tensor, style_vec: torch.Tensor, cfg: StreamConfig
) -> torch.Tensor:
    """(n_mels, F) source log-mel -> (n_mels, F) restyled log-mel, window by window as streamed."""
    contexts = stream_contexts(denoiser, source_logmel, style_vec, cfg)
    n_mels, frames = source_logmel.shape[-2:]
    return contexts.permute(1, 0, 2).reshape(n_mels, -1)[:, :frames]


def window_stack(heard: torch.Tensor, t: int, look: int, emit: int, floor: float
                 ) -> tuple[torch.Tensor, np.ndarray, int]:
    """(C, n_mels, F) -> ((W, C, n_mels, t) windows in call order, their start frames, the left padding):
    the clip padded with the log floor before its start and after its end, as the engine's history is."""
    c, n_mels, frames = heard.shape
    ends = window_ends(frames, look, emit)
    pad_left, pad_right = t, int(ends[-1]) - frames
    padded = torch.full((c, n_mels, pad_left + frames + pad_right), floor, dtype=heard.dtype)
    padded[..., pad_left : pad_left + frames] = heard
    starts = ends - t
    return torch.stack([padded[..., s + pad_left : s + pad_left + t] for s in starts]), starts, pad_left


def gate_trace(denoiser: Denoiser, resynth: PhaseGuidedResynth, audio: np.ndarray, gate: GateConfig,
               cfg: StreamConfig) -> np.ndarray:
    """(W,) the excitation's share each window of ``audio`` hears when played gated (stream_audio's weights):
    what a report shows beside a gated model's scores."""
    with torch.no_grad():
        logmel = resynth.transform.log_mel(torch.as_tensor(np.asarray(audio, dtype=np.float32))[None])
    mcfg = denoiser.cfg
    windows, _, _ = window_stack(logmel, mcfg.window, mcfg.lookahead, cfg.emit,
                                 float(np.log(mcfg.spectrogram.log_floor)))
    spec = mcfg.spectrogram
    return InputGate(gate, cfg.emit * spec.hop / spec.sample_rate).weights(windows[:, 0].numpy())


def stream_contexts(
    denoiser: Denoiser, source_logmel: torch.Tensor, style_vec: torch.Tensor, cfg: StreamConfig,
    before: int = 0, after: int = 0, last_column: torch.Tensor | None = None, gate: InputGate | None = None,
) -> torch.Tensor:
    """(W, n_mels, before + emit + after): each window's own prediction of the frames it emits plus
    ``before`` earlier and ``after`` later columns, the context a spectrogram-to-audio stage reads
    (guide.py; ``after`` <= lookahead, the columns right of the emitted ones). ``last_column``, the shape of
    ``source_logmel``, when given, is what each window hears as its newest column instead (the denoiser fed the
    live excitation). Both are (n_mels, F), or (C, n_mels, F) for a model hearing C windows. With ``gate``
    (diffusion/input_gate.py) the two channels given, input and excitation, become the one the model hears,
    blended per window by the gate's weight glided over the windows in order, as the live processor does."""
    mcfg = denoiser.cfg
    t, look = mcfg.window, mcfg.lookahead
    if not 1 <= cfg.emit <= t - look:
        raise StylehostError(f"emit must be in 1..{t - look}, got {cfg.emit}")
    first = t - look - cfg.emit
    if not 0 <= before <= first or not 0 <= after <= look:
        raise StylehostError(f"context must be within the window: before 0..{first}, after 0..{look}")
    heard = source_logmel if source_logmel.ndim == 3 else source_logmel[None]  # (C, n_mels, F)
    c, n_mels, frames = heard.shape
    floor = float(np.log(mcfg.spectrogram.log_floor))
    windows, starts, pad_left = window_stack(heard, t, look, cfg.emit, floor)
    if last_column is not None:  # what each window hears as its newest column
        cut = torch.full((c, n_mels, pad_left + int(starts[-1]) + t), floor, dtype=source_logmel.dtype)
        cut[..., pad_left : pad_left + frames] = last_column if last_column.ndim == 3 else last_column[None]
        windows[..., -1] = torch.stack([cut[..., s + pad_left + t - 1] for s in starts])
    if gate is not None:
        if c != 2:
            raise StylehostError(f"a gated input needs the input and its excitation (2 channels), got {c}")
        g = torch.from_numpy(gate.weights(windows[:, 0].numpy())).to(windows.dtype)[:, None, None, None]
        windows = windows[:, :1] + g * (windows[:, 1:] - windows[:, :1])
    style = style_vec.reshape(1, -1)
    outs = []
    for i in range(0, len(windows), cfg.batch):
        chunk = windows[i : i + cfg.batch]
        out = transfer(denoiser, chunk, style.expand(len(chunk), -1), strength=cfg.strength, steps=cfg.steps,
                       sampler=cfg.sampler, seed=cfg.seed, start_frames=[int(s) for s in starts[i : i + cfg.batch]])
        outs.append(out[:, :, first - before : t - look + after])
    return torch.cat(outs)


def stream_audio(
    denoiser: Denoiser, resynth: PhaseGuidedResynth, audio: np.ndarray, style_vec: torch.Tensor, cfg: StreamConfig,
    stage: GuideStage | None = None, excitation: ExcitationConfig | None = None, denoiser_input: str = "source",
    gate: GateConfig | None = None,
) -> np.ndarray:
    """Restyle mono audio at the model rate; output aligned with the input and of the same length.

    With a ``stage`` (guide.py) each window's prediction of the emitted frames and of the stage's
    context goes through the learned spectrogram-to-audio stage, exactly as the live engine runs a
    bundle with the stage; without one, source-phase resynthesis. With ``excitation`` the stage
    shapes the harmonic excitation of the source (diffusion/excitation.py) instead of the source; the
    model still sees the source, unless ``denoiser_input`` is "excitation" (issue 15: the denoiser hears
    the excitation's log-mel, the same 1/k series whatever the source's own timbre; each window's last
    column is the frame with its last ``lag_hops`` hops cut, as the live generator's lag leaves it) or "both"
    (the source and that excitation as two channels) or "gated" (one of the two per window, glided, as the
    ``gate`` decides: diffusion/input_gate.py).
    """
    if denoiser_input not in PLAYED_INPUTS:
        raise StylehostError(f"denoiser_input must be one of {', '.join(PLAYED_INPUTS)}, got {denoiser_input!r}")
    if denoiser_input != "source" and (stage is None or excitation is None):
        raise StylehostError(f"denoiser_input {denoiser_input!r} needs a stage and an excitation config")
    if (denoiser_input == GATED) != (gate is not None):
        raise StylehostError("denoiser_input 'gated' goes with an input gate, and an input gate with 'gated'")
    if stage is None:
        return resynthesize(resynth, audio, lambda src: stream_logmel(denoiser, src, style_vec, cfg), excitation)
    with torch.no_grad():
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        shaped = wave if excitation is None else torch.as_tensor(excite(audio, stage.spec.sample_rate,
                                                                        stage.spec.hop, excitation))
        last = None
        source_logmel = resynth.transform.log_mel(wave[None])[0]
        if denoiser_input != "source":
            assert excitation is not None  # checked above
            excited = resynth.transform.log_mel(shaped[None])[0]
            lagged = excitation.lag_hops * stage.spec.hop  # the live window's newest samples not yet excited
            # audit: stream-excitation-tail-cut
            cut = resynth.transform.log_mel_cut_tail(shaped[None], lagged)[0] if lagged else excited
            if denoiser_input == "excitation":
                source_logmel, last = excited, cut
            else:  # both or gated: the input whole, the excitation with its newest column cut
                source_logmel, last = torch.stack([source_logmel, excited]), torch.stack([source_logmel, cut])
        played = None if gate is None else InputGate(gate, cfg.emit * stage.spec.hop / stage.spec.sample_rate)
        contexts = stream_contexts(denoiser, source_logmel, style_vec, cfg, stage.before, stage.after, last, played)
        return restore_windows(stage, shaped, contexts, cfg.emit).numpy()


def resynthesize(resynth: PhaseGuidedResynth, audio: np.ndarray, predict,
                 excitation: ExcitationConfig | None = None) -> np.ndarray:
    """Source-phase resynthesis of ``predict(source_logmel) -> target_logmel`` over a whole clip (with
    ``excitation``: the gain shapes the source's harmonic excitation instead of the source).

    Samples past the last whole frame are silent; the clip's first and last n_fft - hop samples
    see fewer frames, as the live stream's first samples do.
    """
    with torch.no_grad():
        wave = torch.as_tensor(np.asarray(audio, dtype=np.float32))[None]
        source_logmel = resynth.transform.log_mel(wave)[0]
        target = predict(source_logmel)
        frames = source_logmel.shape[1]
        used = resynth.cfg.num_samples(frames)
        shaped = wave if excitation is None else torch.as_tensor(
            excite(np.asarray(audio), resynth.cfg.sample_rate, resynth.cfg.hop, excitation))[None]
        out = resynth(shaped[:, :used], target[None])[0].numpy()
    result = np.zeros(len(audio), dtype=np.float32)
    result[: len(out)] = out
    return result
