"""Harmonic excitation (numpy only): the target's partials at the source's pitch, for the spectrogram-to-audio stage.

Why (issue 15): the stage used to turn the restyled log-mel into a gain on the *source's* STFT, so it could
only re-weight partials the source has: a whistle (one partial) could not become a violin (dozens). Here
the stage is fed an excitation instead of the source: where the source is pitched, a band-limited harmonic
series at the source's f0 (vibrato, bends and glides followed sample by sample, phase-continuous), at the
source's loudness, with a little noise between the partials for the target's bow or breath; where it is
not (silence, drums, speech consonants, chords), the source itself. The stage's mel gain then shapes that
excitation into the restyled spectrum, as before: every partial the target needs is there to be shaped.
Neural source-filter vocoders (Wang et al. 2019) and DDSP (Engel et al. 2020) drive their filters with
the same kind of harmonic source; here the "filter" is the existing mel-gain stage.

Streaming and offline are one code path: ``HarmonicExcitation.process`` takes the source hop by hop and
returns the excitation ``lag_hops`` hops behind the input; ``excite(audio)`` runs it over a whole clip.
With ``lag_hops`` 1 (the shipped bundles) the hop ending at T is synthesised at T's f0 only once the next hop
has come, so the oscillator follows the source's pitch one hop sooner, and the processor's window has the
excitation for every frame the stage reads only if they end one hop before the window does (a stage needs
one look-ahead frame more than it reads, ``check_stage_reach``). With ``lag_hops`` 0 (issue 17) each hop is
synthesised as it arrives, at the f0 its own end gives: the pitch one hop (4 ms) later, but a stage with no
look-ahead can play, 4 ms sooner.

Worked example (24 kHz, hop 96, YIN frame 960): the hop ending at stream sample T gives an f0 that
describes about T - 300 (realtime... diffusion/pitch.py ``delay_samples``) and the excitation for
[T - 192, T - 96) is synthesised with it, interpolated from the previous hop's f0: the oscillator's pitch
follows the source about 8-13 ms late, a 16-26 degree phase lag on a 5.5 Hz vibrato. With ``lag_hops`` 0 the
same f0 synthesises [T - 96, T): 12-17 ms late, 24-34 degrees.

The voiced weight v crossfades harmonic and source: out = v * harmonics + (1 - v) * source, so a switch
never clicks. v is the product of two smoothsteps, then a one-pole over ``smooth_hops``:
- periodicity (YIN's 1 - d'): noise, breath and consonants are not periodic;
- the share of the source's power at f0 and 2 f0 (Hann-windowed DFT at those two frequencies over the
  last ``check_samples``): a chord is periodic too, but at a sub-harmonic of its notes (C major gives
  an "f0" of 65 Hz with periodicity 0.99), where it has no energy at all. One note always has power
  at its f0 or its octave (a sine 1.0, a sawtooth 0.76, a whistle 1.0). So chords keep the source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffusion.errors import StylehostError
from diffusion.pitch import YinTracker


@dataclass(frozen=True)
class ExcitationConfig:
    """The harmonic source; saved in a bundle's manifest (``excitation``) so live and offline agree."""

    max_harmonics: int = 60
    max_hz: float = 11000.0  # partials above fade out (the mel range ends at 12 kHz)
    tilt: float = 1.0  # amplitude of partial k ~ k**-tilt (1: a sawtooth's series)
    noise_db: float = -30.0  # noise between the partials, relative to the harmonic RMS
    voiced_lo: float = 0.55  # periodicity at which the harmonics start to come in ...
    voiced_hi: float = 0.8  # ... and where they have taken over
    smooth_hops: float = 3.0  # one-pole time constant of the voiced weight, in hops (12 ms)
    level_hops: int = 3  # the source RMS that sets the harmonics' level spans this many hops
    low_share_lo: float = 0.03  # share of the source's power at f0 and 2 f0 below which it is a chord ...
    low_share_hi: float = 0.12  # ... and above which one note (a sawtooth has 0.76, a sine 1)
    check_samples: int = 960  # window of that check (40 ms: 2 f0 resolved from f0 down to ~60 Hz)
    seed: int = 0
    lag_hops: int = 1  # hops the output runs behind the input: 1 (pitch sooner) or 0 (no look-ahead needed)

    def __post_init__(self) -> None:
        if not 1 <= self.max_harmonics <= 200 or self.max_hz <= 0 or not 0 <= self.voiced_lo < self.voiced_hi <= 1:
            raise StylehostError(f"bad ExcitationConfig: {self}")
        if self.lag_hops not in (0, 1):
            raise StylehostError(f"ExcitationConfig.lag_hops must be 0 or 1, got {self.lag_hops!r}")

    def to_dict(self) -> dict[str, float | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# What a denoiser hears (bundle manifest "denoiser_input", training config "source_input"): the input's log-mel,
# that of its harmonic excitation, or both as two channels (the model's source_channels 2). One list for
# training, the offline reference, the bundle and the processor.
DENOISER_INPUTS = ("source", "excitation", "both")
# Played, never trained: a one-window denoiser hears the input or its excitation, chosen and glided per call by
# the bundle's input gate (diffusion/input_gate.py, manifest section "input_gate").
GATED = "gated"
PLAYED_INPUTS = (*DENOISER_INPUTS, GATED)


def heard_channels(denoiser_input: str) -> int:
    """How many windows a denoiser hearing ``denoiser_input`` takes (its model config's source_channels)."""
    return 2 if denoiser_input == "both" else 1


NOISE_TABLE = 1 << 16  # samples of deterministic noise, indexed by stream position (no RNG per call)


class HarmonicExcitation:
    """Source hops in, excitation out, ``lag_hops`` hops behind: ``process(block (hop,)) -> (hop,)``.

    Input before the first call is silence (as in the engine). Every buffer is preallocated. The partials
    come from two sines per sample and complex doubling (``_partials``), the voiced check from a factored
    two-frequency DFT (``_low_share``): equal to the direct sums within 1e-14. A hop costs 0.17 ms with the
    tracker, against 0.32 ms with (harmonics x hop) sines and 960-sample probes (a loaded 2-core machine,
    interleaved A/B, 220 Hz tone: YIN 0.077 vs 0.103, voiced check 0.020 vs 0.059, partial sum 0.029 vs
    0.077); inside the live processor call (after ONNX Runtime has evicted the caches) the call's two hops
    take 0.71 ms against 1.05 (``python -m benchmarks.processor_ms --excitation both``).
    """

    def __init__(self, sample_rate: int = 24000, hop: int = 96, config: ExcitationConfig | None = None) -> None:
        self.config = cfg = config or ExcitationConfig()
        self.sample_rate, self.hop = sample_rate, hop
        self.tracker = YinTracker(sample_rate=sample_rate, hop=hop)
        self.delay_samples = cfg.lag_hops * hop  # excitation sample p is final once source p + delay has arrived
        h = cfg.max_harmonics
        self._k = np.arange(1, h + 1, dtype=np.float64)
        self._amp = self._k ** -cfg.tilt
        self._amp /= math.sqrt(float(np.sum(self._amp**2)) / 2.0)  # unit RMS with every partial present
        self._noise = np.random.default_rng(cfg.seed).standard_normal(NOISE_TABLE) * 10.0 ** (cfg.noise_db / 20.0)
        self._ramp = (np.arange(1, hop + 1, dtype=np.float64) / hop)  # 1/hop .. 1 across a hop
        self._src = np.zeros((cfg.level_hops + 1) * hop, np.float64)  # recent source, oldest first
        self._phase_inc = np.zeros(hop, np.float64)
        self._phase = np.zeros(hop, np.float64)
        # Partial k - 1 at sample t is exp(i k phase_t), row k - 1 of _rot, built by doubling from row 0
        # (_partials): log2(harmonics) complex multiplies instead of harmonics x hop sines. _rot is complex
        # over a float (h, 2 hop) buffer, so the gain-weighted sum over partials is one real
        # matrix-vector product whose odd entries are the imaginary parts, sum_k g_k sin(k phase).
        self._rot_f = np.zeros((h, 2 * hop), np.float64)
        self._rot = self._rot_f.view(np.complex128)
        self._gain_k = np.zeros(h, np.float64)
        self._sum = np.zeros(2 * hop, np.float64)
        self._harm = self._sum[1::2]  # the imaginary parts: the partial sum, then the excitation
        self._gain = np.zeros(hop, np.float64)
        self._v_ramp = np.zeros(hop, np.float64)
        self._tmp = np.zeros(hop, np.float64)
        self._out = np.zeros(hop, np.float32)
        self._alpha = 1.0 - math.exp(-1.0 / max(cfg.smooth_hops, 1e-6))
        m = cfg.check_samples
        self._hist = np.zeros(m, np.float64)  # the last check_samples of source, oldest first
        self._win = 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(m) + 0.5) / m)
        self._norm = float(np.sum(self._win)) ** 2 / 4.0 / (float(np.sum(self._win**2)) / 2.0)
        # The voiced check's DFT at f0 and 2 f0, factored: sample n = B a + b, so
        # sum_n x_n e^{i w n} = sum_a e^{i w B a} sum_b x_{Ba+b} e^{i w b}: A + B probe angles per frequency
        # instead of A B = check_samples sines and cosines, and two small matrix products (_low_share).
        nb = max(1, math.isqrt(m - 1) + 1)
        na = -(-m // nb)
        self._wx = np.zeros(na * nb, np.float64)  # windowed source, zero-padded to A B
        self._wx_ab = self._wx.reshape(na, nb)
        self._nb = nb
        self._w_mul = np.array([[1.0, 2.0]])  # the two frequencies, f0 and 2 f0, as multiples of w
        self._w2 = np.zeros((1, 2), np.float64)
        self._idx = np.concatenate([np.arange(nb), nb * np.arange(na)]).astype(np.float64)[:, None]
        self._ang = np.zeros((nb + na, 2), np.float64)  # rows: w b for b < B, then w B a; a column per frequency
        self._probe = np.zeros((nb + na, 2, 2), np.float64)  # [row, frequency, (cos, sin)]
        self._probe_b = self._probe[:nb].reshape(nb, 4)  # columns cos(w b), sin(w b), cos(2w b), sin(2w b)
        self._probe_a = self._probe[nb:].reshape(na, 4)  # the same at B a
        self._inner = np.zeros((na, 4), np.float64)  # sum_b x_{Ba+b} (cos, sin)(w b), per frequency
        self._cross = np.zeros((4, 4), np.float64)  # every outer probe against every inner sum
        self.reset()

    def reset(self) -> None:
        self.tracker.reset()
        self._src[:] = 0.0
        self._hist[:] = 0.0
        self._f0 = self.tracker.fmin
        self._v = 0.0
        self._level = 0.0
        self._phi = 0.0
        self._pos = -self.delay_samples  # stream position of the next excitation sample

    def process(self, block: np.ndarray) -> np.ndarray:
        """One hop of source (float, (hop,)) -> the excitation for the hop ``lag_hops`` before it (float32 view)."""
        cfg, hop = self.config, self.hop
        if len(block) != hop:
            raise StylehostError(f"HarmonicExcitation.process takes one hop ({hop} samples), got {len(block)}")
        f0s, periodicity = self.tracker.process(block)
        f0, p = float(f0s[-1]), float(periodicity[-1])
        self._src[:-hop] = self._src[hop:]
        self._src[-hop:] = block
        self._hist[:-hop] = self._hist[hop:]
        self._hist[-hop:] = block
        lag = cfg.lag_hops
        segment = self._src[len(self._src) - (lag + 1) * hop : len(self._src) - lag * hop]  # the samples made now
        # Voiced weight: periodic, and one note (power at f0 or 2 f0); smoothed, interpolated across the hop.
        x = _smoothstep(p, cfg.voiced_lo, cfg.voiced_hi)
        if x > 0.0:
            x *= _smoothstep(self._low_share(f0), cfg.low_share_lo, cfg.low_share_hi)
        v_prev, self._v = self._v, self._v + self._alpha * (x - self._v)
        level_prev = self._level
        self._level = math.sqrt(float(np.dot(self._src, self._src)) / len(self._src))
        f_prev, self._f0 = self._f0, f0
        out = self._out
        if max(v_prev, self._v) <= 1e-4:  # unvoiced: the source itself, the oscillator keeps its phase
            self._phi = (self._phi + 2.0 * math.pi * f0 * hop / self.sample_rate) % (2.0 * math.pi)
            out[:] = segment
        else:
            # Pitch glides in the log domain across the hop; phase accumulates sample by sample.
            ratio = f0 / f_prev
            np.power(ratio, self._ramp, out=self._phase_inc)
            self._phase_inc *= 2.0 * math.pi * f_prev / self.sample_rate
            np.add.accumulate(self._phase_inc, out=self._phase)  # np.cumsum's loop, without its wrapper
            self._phase += self._phi
            self._phi = float(self._phase[-1]) % (2.0 * math.pi)
            # Partials above max_hz fade out over the top 10%, judged on the hop's highest f0.
            top = max(f0, f_prev)
            n = min(cfg.max_harmonics, max(1, int(cfg.max_hz / top)))  # partials with any gain left
            gain_k = self._gain_k[:n]
            np.multiply(self._k[:n], top, out=gain_k)
            np.subtract(cfg.max_hz, gain_k, out=gain_k)
            gain_k /= 0.1 * cfg.max_hz
            np.maximum(gain_k, 0.0, out=gain_k)  # np.clip's result, without its wrapper's cost
            np.minimum(gain_k, 1.0, out=gain_k)
            gain_k *= self._amp[:n]
            self._partials(n)
            np.dot(gain_k, self._rot_f[:n], out=self._sum)
            harm = self._harm
            start = self._pos % NOISE_TABLE
            end = start + hop
            if end <= NOISE_TABLE:
                harm += self._noise[start:end]
            else:
                harm[: NOISE_TABLE - start] += self._noise[start:]
                harm[NOISE_TABLE - start :] += self._noise[: end - NOISE_TABLE]
            # Level and voiced weight ramp linearly from the previous hop's values (in place: no temporaries).
            gain, v, tmp = self._gain, self._v_ramp, self._tmp
            np.multiply(self._ramp, self._level - level_prev, out=gain)
            gain += level_prev
            np.multiply(self._ramp, self._v - v_prev, out=v)
            v += v_prev
            np.multiply(gain, v, out=tmp)
            harm *= tmp
            np.subtract(1.0, v, out=tmp)
            tmp *= segment
            harm += tmp
            out[:] = harm
        self._pos += hop
        return out

    def _partials(self, n: int) -> None:
        """Rows 0..n-1 of ``_rot`` = exp(i k phase), k = 1..n: two sines for row 0, then each pass doubles
        the rows (row m + j = row j x row m - 1), so 60 partials take 6 multiplies, not 60 x hop sines."""
        rot = self._rot
        first = self._rot_f[0]
        np.cos(self._phase, out=first[0::2])
        np.sin(self._phase, out=first[1::2])
        m = 1
        while m < n:
            e = min(2 * m, n)
            np.multiply(rot[: e - m], rot[m - 1], out=rot[m:e])
            m = e

    def _low_share(self, f0: float) -> float:
        """Share of the recent source's power at f0 and 2 f0 (1 for a sine at f0; ~0 for a chord whose
        common period is a sub-harmonic of its notes)."""
        m = len(self._hist)
        wx = self._wx[:m]
        np.multiply(self._hist, self._win, out=wx)
        total = float(np.dot(wx, wx))
        if total <= 1e-20:
            return 0.0
        np.multiply(self._w_mul, 2.0 * math.pi * f0 / self.sample_rate, out=self._w2)
        np.multiply(self._idx, self._w2, out=self._ang)
        np.cos(self._ang, out=self._probe[..., 0])
        np.sin(self._ang, out=self._probe[..., 1])
        np.matmul(self._wx_ab, self._probe_b, out=self._inner)  # (A, 4): C_j(a), S_j(a)
        np.matmul(self._probe_a.T, self._inner, out=self._cross)  # (4, 4): sum_a of every pair
        q = self._cross.tolist()
        # DFT at frequency j: sum_a (cos + i sin)(w_j B a) (C_j(a) + i S_j(a)).
        power = 0.0
        for j, f in enumerate((f0, 2.0 * f0)):
            if f >= 0.5 * self.sample_rate:
                break
            c, sn = 2 * j, 2 * j + 1
            re = q[c][c] - q[sn][sn]
            im = q[sn][c] + q[c][sn]
            power += re * re + im * im
        return power / self._norm / total

    @property
    def voiced_weight(self) -> float:
        """The current voiced weight (0 = the source passes, 1 = harmonics only)."""
        return self._v


def check_stage_reach(after: int, lookahead: int, label: str = "the bundle", lag_hops: int = 1) -> None:
    """A live generator ``lag_hops`` behind the input leaves that many of the window's newest columns without a
    finished excitation: a stage reading ``after`` frames past the emitted ones needs ``after + lag_hops``
    look-ahead frames. The live processor refuses less, and so does eval (whose offline excitation is whole:
    it would score what no engine can play)."""
    # audit: eval-excitation-lag
    if after > lookahead - lag_hops:
        raise StylehostError(f"{label}: the live excitation runs {lag_hops} hop(s) behind the input, so a stage "
                             f"that reads {after} frame(s) after the emitted ones needs look-ahead >= "
                             f"{after + lag_hops}, not {lookahead} (an excitation with lag_hops 0 needs "
                             f"{after})")


def _smoothstep(value: float, lo: float, hi: float) -> float:
    x = min(max((value - lo) / (hi - lo), 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def excite(audio: np.ndarray, sample_rate: int = 24000, hop: int = 96,
           config: ExcitationConfig | None = None) -> np.ndarray:
    """Offline reference: the excitation of a whole clip, sample-aligned with it (same length)."""
    gen = HarmonicExcitation(sample_rate, hop, config)
    lag = gen.config.lag_hops
    n = len(audio)
    hops = -(-n // hop) + lag  # lag extra hops of silence finish the last samples
    padded = np.zeros(hops * hop, np.float64)
    padded[:n] = audio
    out = np.zeros(hops * hop, np.float32)
    for i in range(hops):
        chunk = gen.process(padded[i * hop : (i + 1) * hop])
        if i >= lag:
            out[(i - lag) * hop : (i - lag + 1) * hop] = chunk
    return out[:n]


def excite_window(audio: np.ndarray, sample_rate: int = 24000, hop: int = 96,
                  config: ExcitationConfig | None = None) -> np.ndarray:
    """The excitation as a live window holds it: ``excite`` with its newest ``lag_hops`` hops silent, because
    the live generator has not finished them when the window is read (training pairs and the gate fit use
    this, so they see what the worker sees)."""
    cfg = config or ExcitationConfig()
    out = excite(audio, sample_rate, hop, cfg)
    if cfg.lag_hops:
        out[-cfg.lag_hops * hop :] = 0.0
    return out
