"""Streaming YIN pitch tracker (numpy only): an f0 and a periodicity every 4 ms hop.

For the harmonic-plus-noise stage (issue 15), which needs a live f0 of the input without torch on the
live path. YIN (de Cheveigne & Kawahara 2002, JASA 111(4)), steps 1-5:

1. difference function d(tau) = sum_{j<W} (x_j - x_{j+tau})^2, computed through one FFT correlation
   (d = E_0 + E_tau - 2 r(tau), E by a running sum of squares; step 2 of the paper);
2. cumulative-mean-normalised difference d'(tau) = d(tau) tau / sum_{k=1..tau} d(k), d'(0) = 1 (step 3);
3. absolute threshold: the first lag whose d' dips below ``threshold``, followed to its local
   minimum (step 4). Where no lag dips that low the paper takes the global minimum; here it is the
   first dip within ``relative`` (0.2) of it, which keeps the shortest of near-equal periods;
4. parabolic interpolation of the raw d around the chosen lag (step 5).

On top of the paper: an octave-error guard (a lag whose half/third is as good a dip is replaced by it:
too low; a lag whose double is a much deeper dip is replaced by the double: too high), a silence
gate on the integration window's AC power, and a voiced/unvoiced decision from the periodicity
1 - min d'. ``threshold``, ``relative`` and ``octave_tolerance`` were chosen on the paired dataset's
validation split (benchmarks/pitch.py scores the test split): with the paper's global-minimum fallback
raw pitch accuracy there was 0.828 (0.843 with octave_tolerance 0.1), with the relative rule 0.887;
nearly all of the rest are octave-low errors in two-note overlaps after onsets (FluidSynth's releases)
and on the organ, whose patch sounds a sub-octave rank.

Frame arithmetic (worked example, 24 kHz, hop 96, fmin 50 Hz, fmax 2000 Hz): tau_max = 480 lags
(50.1 Hz is the lowest f0 found, sr / (tau_max - 1), as the lag above the minimum is needed for the
interpolation), tau_min = 12; frame N = hop * ceil(2 tau_max / hop) = 960 samples (40 ms), the
integration window W = N - tau_max = 480. Each hop ending at stream sample T (exclusive) analyses
input [T - N, T). The frame is read newest sample first, so the integration window is the newest W
samples, [T - W, T), and lag tau compares it with [T - W - tau, T - tau): an estimate at period tau
describes the span [T - W - tau, T), whose centre is (W + tau) / 2 samples back. That is measured, not
assumed: on vibrato tones the best-aligned lag was 456 / 348 / 288 / 264 / 252 samples at 55 / 110 /
220 / 440 / 880 Hz, against (W + tau) / 2 = 458 / 349 / 295 / 267 / 254. ``delay_samples`` states it at
200 Hz, (480 + 120) / 2 = 300 samples (12.5 ms); ``delay_at(f0)`` gives it for any f0 (10.3 ms at
2 kHz up to 20 ms at 50 Hz). Reading the frame oldest first (the paper's layout) would put every
estimate W / 2 = 10 ms further back. The FFT length is N itself: r(tau) for tau <= tau_max only
reaches sample W - 1 + tau_max = N - 1, so the circular correlation never wraps.

Allocation: ``process`` writes into preallocated buffers (a mirrored ring of 2N samples, so the
latest frame is one contiguous view, and the FFT/difference scratch); numpy's FFT writes into ``out=``
buffers. What still allocates: numpy's pocketfft keeps a small internal work buffer per transform,
``np.asarray`` when ``block`` is not an ndarray, the rare clean-up of non-finite input
(``np.nan_to_num``, taken only when a hop's sum is not finite), and the output buffers when one
block holds more hops than they were sized for (``max_block``; they then grow once).
"""

from __future__ import annotations

import math

import numpy as np

from diffusion.errors import StylehostError

# The f0 at which ``delay_samples`` is stated: an estimate's true alignment depends on its own period.
ALIGN_F0 = 200.0


class YinTracker:
    """Streaming YIN f0 tracker: ``process(block) -> (f0_hz, periodicity)``, one value per completed hop.

    Shapes: ``block`` float (n,) at ``sample_rate``, any n >= 0 (hops straddle blocks); the returned
    arrays are float64 (k,) views of internal buffers, k = number of hops completed by this block,
    overwritten by the next call (copy them to keep them). Value i describes input sample
    T_i - ``delay_samples`` (exactly: T_i - ``delay_at(f0_i)``), T_i the (exclusive) end of that hop in
    the stream; input before the first call is taken to be silence, as in the engine.

    ``f0_hz`` is the best estimate on every hop, finite and in [sr / (tau_max - 1), sr / tau_min];
    on hops under the silence gate it holds the last estimate (``fmin`` before any), so a synthesiser
    never sees a jump into silence. ``periodicity`` = clip(1 - min d', 0, 1): 1 for a pure tone,
    near 0 for noise, exactly 0 below the gate. It is not a calibrated probability; ``voiced(p)``
    applies the tracker's decision (p >= ``voicing``).
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        hop: int = 96,
        fmin: float = 50.0,
        fmax: float = 2000.0,
        threshold: float = 0.15,
        voicing: float = 0.7,
        silence_db: float = -60.0,
        relative: float = 0.2,
        octave_tolerance: float = 0.1,
        octave_ratio: float = 0.3,
        max_block: int = 4096,
    ) -> None:
        if sample_rate <= 0 or hop <= 0 or not 0 < fmin < fmax <= sample_rate / 4:
            raise StylehostError(f"YIN needs sample_rate, hop > 0 and 0 < fmin < fmax <= sr/4, got "
                                 f"sr={sample_rate} hop={hop} fmin={fmin} fmax={fmax}")
        if (not 0 < threshold < 1 or not 0 <= voicing <= 1 or relative < 0 or octave_tolerance < 0
                or not 0 < octave_ratio <= 1):
            raise StylehostError("YIN needs 0 < threshold < 1, 0 <= voicing <= 1, relative >= 0, "
                                 "octave_tolerance >= 0 and 0 < octave_ratio <= 1")
        self.sample_rate = sample_rate
        self.hop = hop
        self.fmin = fmin
        self.fmax = fmax
        self.threshold = threshold
        self.voicing = voicing
        self.relative = relative
        self.octave_tolerance = octave_tolerance
        self.octave_ratio = octave_ratio
        self.tau_min = max(2, int(math.floor(sample_rate / fmax)))
        self.tau_max = int(math.ceil(sample_rate / fmin))
        self.frame_length = hop * math.ceil(2 * self.tau_max / hop)
        self.integration = self.frame_length - self.tau_max
        self.delay_samples = int(round(self.delay_at(ALIGN_F0)))
        # AC power (mean square) below which a frame is silence: periodicity 0, f0 held.
        self._gate = 10.0 ** (silence_db / 10.0)
        n, lags = self.frame_length, self.tau_max + 1
        self._ring = np.zeros(2 * n, dtype=np.float64)  # sample s at s % n and s % n + n
        # Row 0: the frame newest first; row 1: its first W samples, zero-padded to n. One 2-row rfft
        # transforms both (pocketfft runs each row exactly as a 1-D call: the same bits, one call's overhead).
        self._xa = np.zeros((2, n), dtype=np.float64)
        self._x, self._a = self._xa[0], self._xa[1]
        self._spec = np.zeros((2, n // 2 + 1), dtype=np.complex128)
        self._spec_x, self._spec_a = self._spec[0], self._spec[1]
        self._r = np.zeros(n, dtype=np.float64)
        self._sq = np.zeros(n, dtype=np.float64)
        self._cs = np.zeros(n + 1, dtype=np.float64)  # _cs[k] = sum of x_j^2 for j < k
        self._d = np.zeros(lags, dtype=np.float64)
        self._dn = np.zeros(lags, dtype=np.float64)
        self._dcs = np.zeros(lags - 1, dtype=np.float64)
        self._below = np.zeros(lags, dtype=bool)
        self._lag = np.arange(1, lags, dtype=np.float64)
        self._f0_out = np.zeros(max_block // hop + 1, dtype=np.float64)
        self._p_out = np.zeros(max_block // hop + 1, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget all input, as if everything before the next call had been silence."""
        self._ring[:] = 0.0
        self._pos = 0  # stream samples received, modulo frame_length
        self._f0 = float(self.fmin)

    def delay_at(self, f0_hz: float) -> float:
        """Samples between a hop's end and the centre of what its estimate at ``f0_hz`` describes: (W + sr/f0) / 2."""
        return 0.5 * (self.integration + self.sample_rate / f0_hz)

    def voiced(self, periodicity: np.ndarray | float) -> np.ndarray:
        """The tracker's voiced/unvoiced decision for periodicities returned by ``process``."""
        return np.asarray(periodicity) >= self.voicing

    def process(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed ``block``; return (f0_hz, periodicity) of each hop it completed (views, see the class)."""
        x = np.asarray(block)
        if x.ndim != 1:
            raise StylehostError(f"YinTracker.process takes a 1-D block, got shape {x.shape}")
        n, hop = self.frame_length, self.hop
        hops = (self._pos % hop + len(x)) // hop
        if hops > len(self._f0_out):  # grows once; the engine's blocks fit the default
            self._f0_out = np.zeros(hops, dtype=np.float64)
            self._p_out = np.zeros(hops, dtype=np.float64)
        done, i = 0, 0
        while i < len(x):
            # Never cross a hop boundary: n is a multiple of hop, so a chunk never wraps the ring either.
            k = min(hop - self._pos % hop, len(x) - i)
            a = self._pos
            chunk = self._ring[a : a + k]
            chunk[:] = x[i : i + k]
            _sanitise(chunk)
            self._ring[a + n : a + n + k] = chunk
            self._pos = (a + k) % n
            i += k
            if self._pos % hop == 0:
                # Latest n samples, oldest first: stream samples T-n .. T-1 sit at ring[T % n :][:n].
                f0, p = self._analyse(self._ring[self._pos : self._pos + n])
                self._f0_out[done] = f0
                self._p_out[done] = p
                done += 1
        return self._f0_out[:done], self._p_out[:done]

    def _analyse(self, frame: np.ndarray) -> tuple[float, float]:
        """YIN steps 1-5 on one frame of ``frame_length`` samples: (f0 Hz, periodicity)."""
        n, w, lags = self.frame_length, self.integration, self.tau_max + 1
        x, d, dn = self._x, self._d, self._dn
        # Newest sample first: the integration window x[:W] is then the newest W samples and each lag
        # reaches back in time, so the estimate is as recent as the frame allows (see the module notes).
        x[:] = frame[::-1]
        np.square(x, out=self._sq)
        np.add.accumulate(self._sq, out=self._cs[1:])  # np.cumsum's own loop, without its wrapper
        mean = x[:w].sum() / w
        if self._cs[w] / w - mean * mean < self._gate:  # AC power of the integration window
            return self._f0, 0.0
        # Step 2: d(tau) = E_0 + E_tau - 2 r(tau); r by FFT correlation of x with its first W samples.
        self._a[:w] = x[:w]
        np.fft.rfft(self._xa, axis=1, out=self._spec)
        np.conjugate(self._spec_a, out=self._spec_a)
        np.multiply(self._spec_x, self._spec_a, out=self._spec_x)
        np.fft.irfft(self._spec_x, n=n, out=self._r)
        r = self._r[:lags]
        r *= 2.0
        np.subtract(self._cs[w : w + lags], self._cs[:lags], out=d)
        d += self._cs[w]
        d -= r
        np.maximum(d, 0.0, out=d)  # rounding can leave -1e-16 where the true value is 0
        # Step 3: cumulative-mean normalisation. The floor keeps a DC-like prefix (d = 0 at small lags)
        # finite; the gate above already sent frames without AC power away.
        np.add.accumulate(d[1:], out=self._dcs)
        np.maximum(self._dcs, 1e-12 * self._dcs[-1] + 1e-300, out=self._dcs)
        np.multiply(d[1:], self._lag, out=dn[1:])
        np.divide(dn[1:], self._dcs, out=dn[1:])
        dn[0] = 1.0
        # Step 4: the first dip under the threshold, followed down to its minimum. Where no lag dips that
        # low the paper takes the global minimum; here the first dip within ``relative`` of it, which keeps
        # the shortest of several near-equal periods (a note's release under the next, a sub-octave stop).
        lo, hi = self.tau_min, self.tau_max - 1  # hi + 1 must exist for the interpolation
        seg = dn[lo:hi]
        best = float(seg.min())
        below = self._below[lo:hi]
        np.less(seg, max(self.threshold, best + self.relative), out=below)
        if below.any():
            tau = lo + int(below.argmax())
            while tau < hi - 1 and dn[tau + 1] < dn[tau]:
                tau += 1
        else:  # relative == 0 and nothing under the threshold
            tau = lo + int(seg.argmin())
        tau = self._octave_guard(tau, lo, hi)
        # Step 5: parabolic interpolation of the raw difference around the chosen lag.
        a, b, c = d[tau - 1], d[tau], d[tau + 1]
        curve = a - 2.0 * b + c
        shift = 0.5 * (a - c) / curve if curve > 0.0 else 0.0
        period = min(float(hi), max(float(lo), tau + min(1.0, max(-1.0, shift))))
        self._f0 = self.sample_rate / period
        # Periodicity of the frame (its deepest dip), not of the chosen lag: a sub-octave dip that is a
        # little deeper than the period kept above must not make the frame less voiced.
        return self._f0, min(1.0, max(0.0, 1.0 - best))

    def _octave_guard(self, tau: int, lo: int, hi: int) -> int:
        """Move ``tau`` to a sub-multiple that dips as deep (octave too low) or to a double that dips far deeper.

        Too low: the global-minimum fallback (and a threshold crossing just missed at the true period)
        can land on 2 or 3 periods; a dip at tau/2 or tau/3 within ``octave_tolerance`` of d'(tau) wins.
        Too high: a strong second harmonic (a formant on it) can dip under the threshold at half the
        period; a dip at 2 tau below ``octave_ratio`` times d'(tau), and ``octave_tolerance`` below it, wins.
        """
        dn = self._dn
        moved = True
        while moved:
            moved = False
            for k in (2, 3):
                t = self._dip_near(tau / k, lo, hi)
                if t >= 0 and dn[t] <= dn[tau] + self.octave_tolerance:
                    tau, moved = t, True
                    break
        t = self._dip_near(2.0 * tau, lo, hi)
        if t >= 0 and dn[t] < self.octave_ratio * dn[tau] and dn[tau] - dn[t] > self.octave_tolerance:
            tau = t
        return tau

    def _dip_near(self, centre: float, lo: int, hi: int) -> int:
        """The local minimum of d' within +-3 % (at least 1 lag) of ``centre``, or -1 if there is none."""
        span = max(1, int(0.03 * centre))
        a, b = max(lo, int(centre) - span), min(hi - 1, int(centre) + span + 1)
        if a >= b:
            return -1
        t = a + int(self._dn[a : b + 1].argmin())
        dn = self._dn
        return t if dn[t] <= dn[t - 1] and dn[t] <= dn[t + 1] else -1


def _sanitise(chunk: np.ndarray) -> None:
    """In place: non-finite samples to 0, the rest clipped to +-1000 (full scale is 1), so squares stay finite."""
    if not math.isfinite(float(chunk.sum())):
        np.nan_to_num(chunk, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    np.minimum(chunk, 1000.0, out=chunk)  # np.clip's result on finite input, at a third of its per-call cost
    np.maximum(chunk, -1000.0, out=chunk)


def yin_offline(audio: np.ndarray, **kwargs: float) -> tuple[np.ndarray, np.ndarray]:
    """Offline reference: (f0_hz, periodicity) per hop of the whole signal, what streaming it gives.

    Frame k covers input [(k+1) hop - N, (k+1) hop), the stream's silence before sample 0 included;
    ``kwargs`` are YinTracker's. Equal, bit for bit, to ``YinTracker.process`` fed any split of ``audio``.
    """
    tracker = YinTracker(**kwargs)  # type: ignore[arg-type]
    n, hop = tracker.frame_length, tracker.hop
    x = np.zeros(n + len(audio), dtype=np.float64)
    x[n:] = np.asarray(audio, dtype=np.float64)
    _sanitise(x[n:])
    frames = len(audio) // hop
    f0, p = np.zeros(frames), np.zeros(frames)
    for k in range(frames):
        f0[k], p[k] = tracker._analyse(x[(k + 1) * hop : (k + 1) * hop + n])
    return f0, p
