"""Streaming sample-rate conversion between the device rate and the model rate.

Two engines behind one class. The default, ``"fir-min"``, is our own polyphase resampler with the
minimum-phase form of a Kaiser-windowed sinc (80 dB stop band, pass band to 0.44 x the lower rate, the
same magnitude response as the linear-phase ``"fir"``): it holds nothing back, and its low-frequency
delay (the impulse response's centroid) is about 3 samples at 48 kHz per direction, where the
linear-phase filter delays everything by half its length, about 0.9 ms per direction (1.6 ms less end
to end, issue 17). The price is a group delay that grows towards the top of the pass band (about 0.1 ms
more at 10 kHz than at 1 kHz), which no ear hears on one signal path; ``"fir"`` keeps every frequency
aligned for a dry/wet mix of coherent signals. Both are far below soxr's lowest-latency stream (5-10 ms
per direction); soxr (``"HQ"``/``"VHQ"``...) stays available.

Why soxr's variable-rate (``vr=True``) engine and not its default one: measured on this project's
block sizes, the default HQ stream holds back up to ~920 output samples at 24 kHz (~38 ms per
direction, because it filters in large DFT blocks), which alone would exceed the latency budget.
The VR engine holds back ~120 samples at 24 kHz downsampling and ~480 at 48 kHz upsampling
(5-10 ms) with the same stop-band (>100 dB alias rejection at 0.6 x Nyquist in our check), but it
shifts content by a small constant (~2.3 output samples for 48 -> 24 kHz) that soxr does not
report. So every resampler measures its own content delay once, with a sine whose phase it fits
(exact for a linear-phase filter, to ~1e-3 samples), and the engine adds it to the latency.

Two kinds of delay matter and are kept apart:
- ``content_delay`` (output samples): output sample m carries input time (m - content_delay)/ratio.
- hold-back: how many output samples are still inside soxr after a chunk; the engine measures the
  worst case for its own chunk pattern by simulation and primes its output buffer accordingly.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import soxr

from diffusion.errors import StylehostError

QUALITY = "fir-min"
FIR_PHASES = {"fir": "linear", "fir-min": "minimum"}  # our polyphase resamplers, by their phase


class StreamResampler:
    """Stateful (frames, channels) float32 resampler; identity (no delay, no copy) at equal rates."""

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1, quality: str = QUALITY) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise StylehostError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.channels = int(channels)
        self.quality = quality
        self.identity = self.in_rate == self.out_rate
        self.ratio = self.out_rate / self.in_rate
        self._stream: soxr.ResampleStream | PolyphaseResampler | None = None
        if self.identity:
            self.content_delay = 0.0
        elif quality in FIR_PHASES:
            self._stream = PolyphaseResampler(self.in_rate, self.out_rate, self.channels, FIR_PHASES[quality])
            self.content_delay = self._stream.content_delay
        else:
            self._stream = self._new_stream()
            self.content_delay = measure_content_delay(in_rate, out_rate, quality)

    def _new_stream(self) -> soxr.ResampleStream | PolyphaseResampler:
        if self.quality in FIR_PHASES:
            return PolyphaseResampler(self.in_rate, self.out_rate, self.channels, FIR_PHASES[self.quality])
        try:
            return soxr.ResampleStream(
                self.in_rate, self.out_rate, self.channels, dtype="float32", quality=self.quality, vr=True
            )
        except (ValueError, RuntimeError) as exc:
            raise StylehostError(f"soxr cannot resample {self.in_rate} -> {self.out_rate} Hz: {exc}") from exc

    def process(self, x: np.ndarray) -> np.ndarray:
        """Resample one chunk (frames, channels); returns what soxr has finished (may be empty)."""
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x)

    def reset(self) -> None:
        """Drop all internal state (after a discontinuity)."""
        if self._stream is not None:
            self._stream = self._new_stream()


@functools.lru_cache(maxsize=32)
def measure_content_delay(in_rate: int, out_rate: int, quality: str = QUALITY) -> float:
    """Content delay of soxr's VR stream, in output samples, from the phase of a 250 Hz sine.

    A linear-phase filter delays every passband frequency by the same time, so the phase lag of a
    low sine (period >= 96 samples at 24 kHz, far above the few-sample delay) gives it exactly.
    """
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality, vr=True)
    freq = 250.0
    n_in = in_rate  # one second
    x = np.sin(2 * np.pi * freq * np.arange(n_in) / in_rate).astype(np.float32)[:, None]
    chunks = [stream.resample_chunk(x[i : i + 256]) for i in range(0, n_in, 256)]
    y = np.concatenate(chunks)[:, 0].astype(np.float64)
    m = np.arange(len(y))[len(y) // 4 : len(y) - len(y) // 8]  # steady state only
    w = 2 * np.pi * freq / out_rate
    basis = np.stack([np.sin(w * m), np.cos(w * m)], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, y[m], rcond=None)
    # y = A sin(wm) + B cos(wm) = C sin(w(m - d)) with d = -atan2(B, A) / w
    delay = -math.atan2(b, a) / w
    period = out_rate / freq
    return float((delay + period / 2) % period - period / 2)


@functools.lru_cache(maxsize=16)
def polyphase_filter(up: int, down: int, stop_db: float = 80.0, phase: str = "linear") -> np.ndarray:
    """Kaiser-windowed sinc at the intermediate rate (in x up), DC gain ``up``; linear or minimum phase.

    Cut-off at half the lower rate, transition +-0.06 x the lower rate around it (pass band to
    0.44 x, stop band from 0.56 x): what folds back lands above 0.44 x the lower rate, beyond the
    model's 12 kHz mel range at 24 kHz only by a hair, and 80 dB down. Worked example, 48 -> 24 kHz:
    up 1, down 2, width 2880 Hz at 48 kHz -> 85 taps, delay 42 samples at 48 kHz (0.875 ms).

    ``phase="minimum"``: the homomorphic minimum-phase filter of a linear one designed for twice the stop
    band (plus 10 dB for the method's approximation): its magnitude is that filter's square root, so the same
    pass band and ``stop_db``, in about half the taps (43 for 48 -> 24 kHz), its energy at the start.
    """
    if phase == "minimum":
        from scipy.signal import minimum_phase

        lin = polyphase_filter(up, down, 2 * stop_db + 10.0, "linear") / up
        h_min = minimum_phase(lin, method="homomorphic", n_fft=1 << 16)
        return (h_min * (up / np.sum(h_min))).astype(np.float64)
    if phase != "linear":
        raise StylehostError(f"filter phase must be 'linear' or 'minimum', got {phase!r}")
    from scipy.signal import firwin, kaiser_beta

    # Normalised to the intermediate rate f_i = in*up, the lower of the two rates is f_i / max(up, down).
    nyq_low = 0.5 / max(up, down)
    width = 0.12 * nyq_low * 2  # 0.12 x the lower rate, normalised to f_i
    taps = int(np.ceil((stop_db - 7.95) / (2.285 * 2 * np.pi * width))) + 1
    taps += (taps + 1) % 2  # odd: an integer group delay at the intermediate rate
    h = firwin(taps, nyq_low * 2, window=("kaiser", kaiser_beta(stop_db)), fs=2.0) * up
    return h.astype(np.float64)


class PolyphaseResampler:
    """Streaming rational resampler (up/down polyphase FIR); output needs no future input.

    Output sample m sits at intermediate index n = m*down and is
    ``y[m] = sum_k h[p + k*up] * x[i0 - k]`` with ``p = n % up``, ``i0 = n // up``: it can be
    computed as soon as input sample i0 exists. The content delay is the filter's group delay at low
    frequencies, its centroid ``sum n h[n] / sum h[n]`` intermediate samples (divided by ``down`` for output
    samples): exactly ``(len(h) - 1) / 2`` for the linear-phase filter, about 3 for the minimum-phase one.
    Runs in the worker thread (it allocates per chunk; the audio callback never calls it).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1, phase: str = "linear") -> None:
        g = math.gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g
        self.phase = phase
        h = polyphase_filter(self.up, self.down, phase=phase)
        self.taps_per_phase = -(-len(h) // self.up)
        padded = np.zeros(self.taps_per_phase * self.up)
        padded[: len(h)] = h
        # phases[p, k] = h[p + k*up]: the taps phase p applies to x[i0], x[i0-1], ...
        self.phases = padded.reshape(self.taps_per_phase, self.up).T.astype(np.float32)
        self.content_delay = float(np.dot(np.arange(len(h)), h) / np.sum(h)) / self.down
        self.channels = channels
        self._history = np.zeros((self.taps_per_phase - 1, channels), np.float32)
        self._consumed = 0  # input samples seen so far
        self._produced = 0  # output samples made so far

    def resample_chunk(self, x: np.ndarray) -> np.ndarray:
        """(frames, channels) in -> (n, channels) out, every output whose last input has arrived."""
        if self.up == 1 or self.down == 1:
            return self._integer_chunk(x)
        total = self._consumed + len(x)
        # outputs m with (m*down)//up < total, i.e. m*down < total*up
        end = -(-(total * self.up) // self.down)
        m = np.arange(self._produced, end)
        n = m * self.down
        phase, i0 = n % self.up, n // self.up
        buf = np.concatenate([self._history, x.astype(np.float32, copy=False)])
        # buf[j] holds input sample (self._consumed - len(history) + j)
        base = i0 - (self._consumed - len(self._history))
        idx = base[:, None] - np.arange(self.taps_per_phase)[None, :]
        coeffs = self.phases[phase]  # (outputs, K)
        y = np.einsum("ok,okc->oc", coeffs, buf[idx])
        keep = self.taps_per_phase - 1
        self._history = buf[len(buf) - keep :] if keep else buf[:0]
        self._consumed, self._produced = total, end
        return y.astype(np.float32, copy=False)

    def _integer_chunk(self, x: np.ndarray) -> np.ndarray:
        """``resample_chunk`` for an integer ratio (48 <-> 24 kHz, 96 -> 24 kHz): the same sums as ``np.convolve``
        of the input (after its history) with each phase's taps, without the general path's index arrays (a
        128-sample block took 66 us that way, the 4-ms stride's way back 99 us: benchmarks/worker_ms)."""
        k = self.taps_per_phase
        buf = np.concatenate([self._history, x.astype(np.float32, copy=False)])
        if self.down == 1:  # every new input sample j makes outputs up*j .. up*j + up - 1, one per phase
            n = len(x)
            y = np.empty((n * self.up, self.channels), np.float32)
            for c in range(self.channels):
                for p in range(self.up):  # 'valid' output i: the window ending at new sample i
                    y[p :: self.up, c] = np.convolve(buf[:, c], self.phases[p], "valid")[:n]
            end = (self._consumed + n) * self.up
        else:  # decimation: output m is the window ending at input m * down
            end = -(-(self._consumed + len(x)) // self.down)
            # 'valid' output i ends at buf[i + k - 1], input index consumed - len(history) + i + k - 1
            start = self._produced * self.down - (self._consumed - len(self._history)) - (k - 1)
            n = end - self._produced
            y = np.empty((n, self.channels), np.float32)
            for c in range(self.channels):
                y[:, c] = np.convolve(buf[:, c], self.phases[0], "valid")[start :: self.down][:n]
        keep = k - 1
        self._history = buf[len(buf) - keep :] if keep else buf[:0]
        self._consumed += len(x)
        self._produced = end
        return y
