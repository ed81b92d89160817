"""The Processor contract between the engine and whatever restyles audio, plus DSP stand-ins.

The engine moves samples; a processor turns the latest ``window`` input samples into the next
``stride`` finished output samples (overlap-add and windowing happen inside the processor). Every
size is in samples at ``processor.sample_rate``. ``delay_samples`` is the processor's fixed
algorithmic delay: output stream sample n corresponds to input stream sample n - delay_samples,
where both streams start at the first call and the input before it is taken to be silence.

Stand-ins, used until a trained model bundle exists and by the tests:
- ``PassthroughProcessor``: an exact delayed copy with model-like sizes.
- ``StftPassthroughProcessor``: real STFT -> unity gain -> iSTFT overlap-add with the project's
  SpectrogramConfig, so the engine is exercised with exactly the model's frame arithmetic.
- ``SlowProcessor``: wraps another and sleeps, to simulate a model that misses its deadline.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from diffusion.spectrogram import SpectrogramConfig, analysis_window, synthesis_window  # audit: no-torch-live-path


class Processor(ABC):
    """One mono stream in, one mono stream out, ``stride`` samples per call.

    Shapes: ``process(window: float32 (window,), out: float32 (stride,))``; ``window`` holds the
    latest input samples, oldest first; ``out`` must be filled with final output samples.
    """

    sample_rate: int
    window: int
    stride: int
    delay_samples: int
    # Whether the output keeps the input's loudness by construction (the DSP stand-ins); the engine
    # level-matches only processors that do not (a style model follows its training targets' level).
    preserves_level: bool = True

    @abstractmethod
    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        """Consume one window, write ``stride`` output samples into ``out``."""

    def set_params(self, **params: Any) -> None:  # noqa: B027 - optional hook, DSP stand-ins ignore it
        """Style mix, strength, steps... Called from the worker thread only, between calls."""

    def reset(self) -> None:  # noqa: B027 - stateless processors need nothing
        """Forget internal state (overlap-add tails), as if all earlier input had been silence."""

    def delay_parts(self) -> tuple[tuple[str, int], ...]:
        """``delay_samples`` as named terms summing to it, for the latency budget (docs/live.md): what a
        lower-latency framing would have to shrink. One term unless a processor knows its framing."""
        return (("processor", self.delay_samples),)

    def _check_sizes(self) -> None:
        if self.stride < 1 or self.window < self.stride or self.delay_samples < 0:
            raise StylehostError(
                f"{type(self).__name__}: need 1 <= stride <= window and delay >= 0, "
                f"got window={self.window} stride={self.stride} delay={self.delay_samples}"
            )


class PassthroughProcessor(Processor):
    """Exact copy of the input delayed by ``delay`` samples.

    Worked example (window 576, stride 192, delay 384): call c sees input [T-576, T) with
    T = (c+1)*192 and must emit output [c*192, c*192+192) = input [T-192-384, T-384), i.e. window
    offsets [0, 192). Needs delay + stride <= window.
    """

    def __init__(self, sample_rate: int = 24000, window: int = 576, stride: int = 192, delay: int = 384):
        self.sample_rate = sample_rate
        self.window = window
        self.stride = stride
        self.delay_samples = delay
        self._check_sizes()
        if delay + stride > window:
            raise StylehostError(f"passthrough needs delay + stride <= window, got {delay}+{stride}>{window}")
        self._start = window - stride - delay

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        out[:] = window[self._start : self._start + self.stride]


class StftPassthroughProcessor(Processor):
    """STFT -> unity gain -> iSTFT overlap-add, the model processor's arithmetic without a model.

    Frames follow diffusion.features: frame j covers input [j*hop, j*hop + n_fft), K = n_fft/hop.
    Each call gets input up to T = (c+1)*stride (exclusive), stride = S*hop, so the newest complete
    frame is J = T/hop - K. The processor emits frames J-L-S+1 .. J-L (L look-ahead frames are
    seen by a model but not emitted yet) and overlap-adds them. Sample n is final once every frame
    covering it (the last is floor(n/hop)) has been added, so this call finalises samples
    [(J-L-S+1)*hop, (J-L+1)*hop), exactly ``stride`` of them, which are output stream samples
    [c*stride, (c+1)*stride). Hence delay = c*stride - (J-L-S+1)*hop = (K+L-1)*hop
    = n_fft + (L-1)*hop, independent of c.

    Worked example (24 kHz, n_fft 384, hop 96, K=4; S=2, L=1, C=0 context frames):
    stride = 192 (8 ms), window = n_fft + (C+S+L-1)*hop = 576 (24 ms), delay = 384 (16 ms).
    The engine adds the wait for a full stride on top of this (it is buffering, not content delay).
    """

    def __init__(
        self,
        cfg: SpectrogramConfig | None = None,
        frames_per_call: int = 2,
        lookahead: int = 1,
        context: int = 0,
    ) -> None:
        self.cfg = cfg or SpectrogramConfig()
        if frames_per_call < 1 or lookahead < 0 or context < 0:
            raise StylehostError("need frames_per_call >= 1, lookahead >= 0, context >= 0")
        hop, n_fft = self.cfg.hop, self.cfg.n_fft
        self.frames_per_call = frames_per_call
        self.lookahead = lookahead
        self.context = context
        self.sample_rate = self.cfg.sample_rate
        self.stride = frames_per_call * hop
        self.window = n_fft + (context + frames_per_call + lookahead - 1) * hop
        span = self.cfg.synthesis_span  # each frame's synthesis covers its last ``span`` samples
        self.delay_samples = span + (lookahead - 1) * hop
        self._check_sizes()
        self._analysis = analysis_window(self.cfg)
        self._synthesis = synthesis_window(self.cfg)[n_fft - span :]
        # Overlap-add accumulator: acc[0] is the first sample this call finalises, where the first emitted
        # frame's synthesis window starts.
        self._acc = np.zeros(span + (frames_per_call - 1) * hop, dtype=np.float64)
        # Window offset of the first emitted frame, J-L-S+1: its start is T - n_fft - (L+S-1)*hop.
        self._first = self.window - n_fft - (lookahead + frames_per_call - 1) * hop
        self._gain = 1.0

    def reset(self) -> None:
        self._acc[:] = 0.0

    def delay_parts(self) -> tuple[tuple[str, int], ...]:
        return stft_delay_parts(self.cfg.synthesis_span, self.cfg.hop, self.lookahead)

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        hop, n_fft, span = self.cfg.hop, self.cfg.n_fft, self.cfg.synthesis_span
        starts = self._first + hop * np.arange(self.frames_per_call)
        frames = np.stack([window[s : s + n_fft] for s in starts]).astype(np.float64)
        spec = np.fft.rfft(frames * self._analysis, axis=1)
        spec *= self._gain  # where a model would restyle the frames
        frames_out = np.fft.irfft(spec, n=n_fft, axis=1)[:, n_fft - span :] * self._synthesis
        for s in range(self.frames_per_call):
            self._acc[s * hop : s * hop + span] += frames_out[s]
        out[:] = self._acc[: self.stride]
        self._acc[: -self.stride] = self._acc[self.stride :].copy()
        self._acc[-self.stride :] = 0.0


class SlowProcessor(Processor):
    """Wraps a processor and sleeps ``sleep_s`` on chosen calls: a model that misses deadlines.

    ``late_calls`` (a set of call indices) restricts the sleep to those calls; None sleeps on every
    call. Used to check that the callback stays on time and dropouts are counted and recovered.
    """

    def __init__(self, inner: Processor, sleep_s: float, late_calls: set[int] | None = None) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.window = inner.window
        self.stride = inner.stride
        self.delay_samples = inner.delay_samples
        self.sleep_s = sleep_s
        self.late_calls = late_calls
        self.calls = 0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        if self.late_calls is None or self.calls in self.late_calls:
            time.sleep(self.sleep_s)
        self.calls += 1
        self.inner.process(window, out)

    def set_params(self, **params: Any) -> None:
        self.inner.set_params(**params)

    def reset(self) -> None:
        self.inner.reset()

    def delay_parts(self) -> tuple[tuple[str, int], ...]:
        return self.inner.delay_parts()


def stft_delay_parts(span: int, hop: int, lookahead: int) -> tuple[tuple[str, int], ...]:
    """The delay span + (L-1)*hop of an STFT processor, split where it comes from: a sample is final once
    the last frame whose synthesis window covers it is overlap-added (span - hop after that window starts;
    span is n_fft for the symmetric windows, SpectrogramConfig.synthesis_span), and the newest L frames are
    heard but not yet emitted (L*hop). Worked example (n_fft 384, hop 96, L 2): 288 + 192 = 480."""
    frames = f"{lookahead} frame{'' if lookahead == 1 else 's'}"
    return (("STFT overlap (synthesis window - hop)", span - hop), (f"look-ahead ({frames})", lookahead * hop))
