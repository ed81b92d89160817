"""Live f0 trackers compared (issue 15): accuracy on signals of known f0, latency, and cost per 4 ms hop.

    python -m benchmarks.pitch --out benchmarks/results/pitch.json   # also writes pitch.md beside it

Trackers: the numpy streaming YIN of ``diffusion/pitch.py`` (fmin 50 Hz, and fmin 80 Hz for a shorter
frame), and PESTO (Riou et al. 2023, package ``pesto-pitch``, its bundled ``mir-1k_g7`` weights) in its
two streaming layouts: centred CQT frames (``mirror=0``) and the low-latency one (``mirror=1``: the
future half of every CQT kernel sees zeros). PESTO is optional: without the package its rows say why.

Signals: (a) synthesised, every one 4-5 s with silences, a noise burst, vibrato, a glide and a legato
step, plus white noise 25 dB under the tone (and again, other noise, 10 dB under it): a sine, a
band-limited sawtooth, a male and a female formant-filtered glottal "voice" and a Karplus-Strong pluck
sequence (f0 = sr / (L + 0.5) exactly);
(b) when ``data/paired/manifest.json`` exists, the monophonic test-split clips of the paired dataset,
every style, with the reference f0 from the manifest's notes. The manifest stores each note's onset
and pitch but not its end, so a note is taken to last until the next onset; a hop counts as voiced
when it lies 50 ms after an onset to 20 ms before the next one and its 20 ms RMS is within 30 dB of the
clip's loud level (the 95th percentile), unvoiced when 60 dB below it, and is not scored in between;
"steady" rows score only hops 200 ms or more after their onset (FluidSynth's releases overlap the next
note, which makes the first 100 ms two-note mixtures). Clips are scaled to -12 dBFS voiced RMS, the
synthetic signals' level, because PESTO's confidence depends on absolute level (at the renders' own
-25 to -36 dBFS its median confidence on voiced hops was 0.15-0.98 by instrument).

Scoring is per 4 ms hop (96 samples at 24 kHz), mir_eval's definitions: raw pitch accuracy (RPA,
the raw estimate within 50 cents on reference-voiced hops, whatever the voicing decision), the same
within 20 cents, gross pitch error (GPE: both voiced, more than 20 % off), octave errors (within 50
cents of +-12 or +-24 semitones, on reference-voiced hops), voicing recall and false alarm. Hops within
20 ms of a voicing change or a note change are not scored. Each tracker's hops are compared with the
reference at the sample its estimate describes: its alignment, measured as the lag that minimises the
mean cents error on a 220 Hz vibrato sine (YIN states 300 samples; PESTO's window arithmetic gives
2048 centred and 48 mirrored, both checked the same way). Cost: one streaming call per hop, one thread,
median and p99 over a few thousand hops; PESTO also exported to ONNX (one window per call) and timed
in ONNX Runtime, since the live path may not import torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import machine_info
from diffusion.pitch import YinTracker, yin_offline

RATE = 24000
HOP = 96
NOISE_DB = -25.0  # white noise relative to the voiced RMS
TRANSITION_S = 0.02  # hops this close to a voicing or note change are not scored
UNSCORED, UNVOICED, VOICED = -1, 0, 1


@dataclass
class Signal:
    """Audio with a per-sample reference: ``f0`` in Hz and ``state`` VOICED / UNVOICED / UNSCORED."""

    name: str
    audio: np.ndarray
    f0: np.ndarray
    state: np.ndarray
    steady: np.ndarray | None = None  # samples 200 ms or more after their note's onset (dataset only)


@dataclass
class Tracker:
    """``run(audio) -> (f0 Hz, voiced)`` per hop (hop k ends at sample (k+1)*HOP), ``step`` for the cost."""

    name: str
    run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    step: Callable[[np.ndarray], object]  # one streaming call on HOP samples
    stated_delay: int | None
    frame: int
    notes: str


# -- synthesised signals -------------------------------------------------------------------------------------

def _segments(base: float) -> list[tuple[str, float, float, float, float]]:
    """(kind, seconds, f0 start, f0 end, vibrato cents): the score every tonal source plays."""
    return [
        ("silence", 0.25, 0, 0, 0),
        ("tone", 1.0, base, base, 40.0),
        ("silence", 0.15, 0, 0, 0),
        ("tone", 1.2, 0.75 * base, 3.0 * base, 20.0),  # a two-octave exponential glide
        ("silence", 0.15, 0, 0, 0),
        ("noise", 0.3, 0, 0, 0),
        ("silence", 0.15, 0, 0, 0),
        ("tone", 0.5, 1.5 * base, 1.5 * base, 30.0),
        ("tone", 0.5, 1.5 * base * 2 ** (5 / 12), 1.5 * base * 2 ** (5 / 12), 30.0),  # legato step, no gap
        ("silence", 0.25, 0, 0, 0),
    ]


def _ramp(n: int, ms: float = 10.0) -> np.ndarray:
    r = np.ones(n)
    k = min(n // 2, int(ms * RATE / 1000))
    r[:k] = np.linspace(0, 1, k)
    r[n - k :] = np.linspace(1, 0, k)
    return r


def _unscore_changes(state: np.ndarray, f0: np.ndarray) -> None:
    """Mark samples within TRANSITION_S of a state change or an f0 jump (> 1 semitone) as UNSCORED."""
    jump = np.zeros(len(state), bool)
    jump[1:] = state[1:] != state[:-1]
    both = (f0[1:] > 0) & (f0[:-1] > 0)
    jump[1:] |= both & (np.abs(np.log2(np.maximum(f0[1:], 1e-9) / np.maximum(f0[:-1], 1e-9))) > 1 / 12)
    k = int(TRANSITION_S * RATE)
    near = np.convolve(jump.astype(float), np.ones(2 * k + 1), mode="same") > 0
    state[near] = UNSCORED


def _additive(f0: np.ndarray, amp_of_k: Callable[[int], float]) -> np.ndarray:
    """A band-limited harmonic tone following ``f0`` per sample (partials above 0.45 sr left out)."""
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = np.zeros(len(f0))
    top = int(0.45 * RATE / max(1.0, float(f0[f0 > 0].min()))) if np.any(f0 > 0) else 0
    for k in range(1, top + 1):
        x += np.where(k * f0 < 0.45 * RATE, amp_of_k(k) * np.sin(k * phase), 0.0)
    return x


def _formants(x: np.ndarray, vowel: str) -> np.ndarray:
    """Cascade of three two-pole resonators (F1-F3 of /a/ or /i/), unity gain at DC."""
    from scipy.signal import lfilter

    table = {"a": ((700, 80), (1220, 90), (2600, 120)), "i": ((270, 60), (2290, 100), (3010, 120))}
    for freq, bw in table[vowel]:
        r = math.exp(-math.pi * bw / RATE)
        a = [1.0, -2 * r * math.cos(2 * math.pi * freq / RATE), r * r]
        x = lfilter([sum(a)], a, x)
    return x


def tonal(name: str, base: float, rng: np.random.Generator, noise_db: float) -> Signal:
    """The score of ``_segments`` played by a sine, a sawtooth or a formant-filtered glottal voice."""
    parts, f0s, states = [], [], []
    for i, (kind, seconds, fa, fb, vib) in enumerate(_segments(base)):
        n = int(seconds * RATE)
        t = np.arange(n) / RATE
        if kind == "tone":
            f0 = fa * (fb / fa) ** (t / seconds) * 2 ** (vib / 1200 * np.sin(2 * np.pi * 5.5 * t))
            if name == "sine":
                x = np.sin(2 * np.pi * np.cumsum(f0) / RATE)
            elif name == "sawtooth":
                x = _additive(f0, lambda k: 1.0 / k)
            else:  # glottal pulse: -12 dB/oct source, +6 dB/oct lip radiation; a little aspiration noise
                src = _additive(f0, lambda k: 1.0 / k)
                src += 0.03 * rng.standard_normal(n) * (1 + np.sin(2 * np.pi * np.cumsum(f0) / RATE))
                x = _formants(src, "i" if i >= 7 else "a")
            # Legato: the step between the last two tones keeps the level (no ramp at their join).
            env = _ramp(n)
            if i == 7:
                env[n // 2 :] = 1.0
            if i == 8:
                env[: n // 2] = 1.0
            x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * env
            parts.append(x)
            f0s.append(f0)
            states.append(np.full(n, VOICED))
        else:
            parts.append(rng.standard_normal(n) * 0.5 * _ramp(n) if kind == "noise" else np.zeros(n))
            f0s.append(np.zeros(n))
            states.append(np.full(n, UNVOICED))
    return _finish(name, parts, f0s, states, rng, noise_db)


def pluck(rng: np.random.Generator, noise_db: float) -> Signal:
    """Karplus-Strong plucks, E2 to E5: y[n] = rho (y[n-L] + y[n-L-1]) / 2, so f0 = sr / (L + 0.5) exactly."""
    parts, f0s, states = [], [], []
    for f in (82.41, 110.0, 146.83, 196.0, 246.94, 329.63, 440.0, 659.26):
        period = max(2, int(round(RATE / f - 0.5)))
        n = int(0.5 * RATE)
        y = np.zeros(n + period + 1)
        burst = rng.uniform(-1, 1, period + 1)
        y[: period + 1] = np.convolve(burst, [0.5, 0.5], mode="same")
        rho = 0.998
        for i in range(period + 1, len(y), period):  # a block of L samples depends only on older ones
            j = min(i + period, len(y))
            y[i:j] = rho * 0.5 * (y[i - period : j - period] + y[i - period - 1 : j - period - 1])
        x = y[period + 1 :] * _ramp(n, 5.0)
        # Voiced while the string rings within 30 dB of its loudest 20 ms; quieter tails are not scored.
        k = int(0.02 * RATE)
        rms = np.sqrt(np.convolve(x**2, np.ones(k) / k, mode="same"))
        state = np.where(rms >= rms.max() * 10 ** (-30 / 20), VOICED, UNSCORED)
        parts += [x / np.sqrt(np.mean(x[state == VOICED] ** 2)), np.zeros(int(0.12 * RATE))]
        f0s += [np.full(n, RATE / (period + 0.5)), np.zeros(int(0.12 * RATE))]
        states += [state, np.full(int(0.12 * RATE), UNVOICED)]
    return _finish("pluck", parts, f0s, states, rng, noise_db)


def _finish(name: str, parts: list[np.ndarray], f0s: list[np.ndarray], states: list[np.ndarray],
            rng: np.random.Generator, noise_db: float) -> Signal:
    x, f0, state = np.concatenate(parts), np.concatenate(f0s), np.concatenate(states)
    f0 = np.where(state == UNVOICED, 0.0, f0)
    _unscore_changes(state, f0)
    voiced_rms = np.sqrt(np.mean(x[state == VOICED] ** 2))
    x = x + voiced_rms * 10 ** (noise_db / 20) * rng.standard_normal(len(x))
    x = 0.25 * x / voiced_rms  # voiced RMS -12 dBFS
    return Signal(name, x.astype(np.float32), f0, state)


def synthetic(seed: int = 0, noise_db: float = NOISE_DB) -> list[Signal]:
    """The five synthesised sources, white noise ``noise_db`` under the voiced RMS."""
    rng = np.random.default_rng(seed)
    return [tonal("sine", 330.0, rng, noise_db), tonal("sawtooth", 110.0, rng, noise_db),
            tonal("voice_male", 120.0, rng, noise_db), tonal("voice_female", 260.0, rng, noise_db),
            pluck(rng, noise_db)]


# -- the paired dataset ----------------------------------------------------------------------------------

def dataset_signals(data: Path, max_clips: int, split: str = "test") -> tuple[list[Signal], dict[str, Any]]:
    """Monophonic ``split`` clips of ``data`` (every style, the target font) with the manifest's notes."""
    import soundfile as sf

    from diffusion.data import load_manifest

    manifest = load_manifest(data)
    rate = int(manifest["sample_rate"])
    if rate != RATE:
        return [], {"skipped": f"dataset at {rate} Hz, the trackers run at {RATE}"}
    clips = [c for c in manifest["clips"] if c["split"] == split and len(c["onsets"]) == len(c["pitches"])
             and len(c["onsets"]) >= 3]
    chosen = clips[:max_clips]
    font = manifest["fonts"][0]
    out = []
    for clip in chosen:
        onsets = np.array(clip["onsets"]) * RATE
        pitches = np.array(clip["pitches"], dtype=float)
        for style in manifest["styles"]:
            audio, sr = sf.read(str(data / clip["audio"][font][style]["path"]), dtype="float32")
            n = len(audio)
            f0 = np.zeros(n)
            state = np.full(n, UNSCORED)
            bounds = np.append(onsets, n).astype(int)
            for i, p in enumerate(pitches):
                a, b = bounds[i] + int(0.05 * RATE), bounds[i + 1] - int(0.02 * RATE)
                f0[bounds[i] : bounds[i + 1]] = 440.0 * 2 ** ((p - 69) / 12)
                if b > a:
                    state[a:b] = VOICED
            k = int(0.02 * RATE)
            rms = np.sqrt(np.convolve(audio.astype(np.float64) ** 2, np.ones(k) / k, mode="same"))
            loud = np.percentile(rms, 95)
            state[(state == VOICED) & (rms < loud * 10 ** (-30 / 20))] = UNSCORED
            state[rms < loud * 10 ** (-60 / 20)] = UNVOICED
            # To -12 dBFS voiced RMS, as the synthetic signals: the renders sit at -25 to -36 dBFS, where
            # PESTO's confidence (it sees absolute CQT energy) stays under 0.5 on most voiced hops.
            voiced_rms = float(np.sqrt(np.mean(audio[state == VOICED].astype(np.float64) ** 2)))
            audio = (audio * (0.25 / max(voiced_rms, 1e-9))).astype(np.float32)
            steady = np.zeros(n, bool)
            for i in range(len(pitches)):
                steady[bounds[i] + int(0.2 * RATE) : bounds[i + 1]] = True
            out.append(Signal(f"{style}/{clip['id']}", audio, f0, state, steady))
    info = {"clips": len(chosen), "monophonic_test_clips": len(clips), "styles": manifest["styles"], "font": font}
    return out, info


# -- trackers -------------------------------------------------------------------------------------------

def yin_tracker(fmin: float) -> Tracker:
    live = YinTracker(fmin=fmin)

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f0, p = yin_offline(audio, fmin=fmin)
        return f0, live.voiced(p)

    return Tracker(f"yin fmin {fmin:g}", run, live.process, live.delay_samples, live.frame_length,
                   f"numpy; frame {live.frame_length} ({1000 * live.frame_length / RATE:.0f} ms), integration "
                   f"{live.integration}, threshold {live.threshold}, voiced when periodicity >= {live.voicing}")


def load_pesto(mirror: float) -> Any:
    """PESTO's streaming model, loaded without ``pesto/__init__`` (it imports torchaudio only to read files:
    no torchaudio build matches this venv's torch 2.13, the newest, 2.11.1, pins torch 2.11.1)."""
    if "pesto" not in sys.modules:
        spec = importlib.util.find_spec("pesto")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("pesto-pitch is not installed (pip install --no-deps pesto-pitch omegaconf)")
        pkg = types.ModuleType("pesto")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["pesto"] = pkg
    loader = importlib.import_module("pesto.loader")
    return loader.load_model("mir-1k_g7", step_size=1000.0 * HOP / RATE, sampling_rate=RATE, streaming=True,
                             mirror=mirror, max_batch_size=1)


def _pesto_window_module(model: Any, mirror: float) -> Any:
    """torch Module: windows (B, kernel) float32 -> (pitch semitones (B,), confidence (B,)).

    ``model``'s Preprocessor is replaced (so pass a model of its own) by one that takes whole windows,
    stateless and without complex tensors, which ONNX can export: each harmonic's CQT conv with its
    cached padding bypassed (the window is that padding plus the hop), librosa normalisation, |.|, then
    20 log10 clamped at float eps, as pesto.data.Preprocessor does. The zeros of ``mirror`` are applied
    to the window's newest end, as the library's streaming call does; the rest is PESTO.forward.
    """
    import torch
    import torch.nn.functional as F

    cqts = list(model.preprocessor.hcqt_kernels.cqt_kernels)
    kernel, hop = cqts[0].kernel_width, cqts[0].hop_length
    future = int(mirror * (kernel - hop) / 2)

    original = model.preprocessor

    class WindowPreprocessor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cqts = torch.nn.ModuleList(cqts)
            self.hcqt_kwargs = original.hcqt_kwargs  # PESTO reads bins_per_semitone and hop_size here
            self.hop_size = original.hop_size

        def forward(self, windows: torch.Tensor, sr: Any = None) -> torch.Tensor:
            mags = []
            cqt: Any  # pesto's StreamingCQT
            for cqt in self.cqts:
                y = F.conv1d(windows.unsqueeze(1), cqt.conv.weight, stride=cqt.conv.stride)
                y = y.view(windows.size(0), 2, cqt.n_bins, -1) * cqt.sqrt_lengths
                mags.append(torch.sqrt(y[:, 0] ** 2 + y[:, 1] ** 2))
            mag = torch.stack(mags, dim=1).permute(0, 3, 1, 2)  # (batch, frames, harmonics, bins)
            return mag.clamp(min=torch.finfo(torch.float32).eps).log10().mul(20.0)

    model.preprocessor = WindowPreprocessor()

    class PestoWindow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if future:
                windows = torch.cat([windows[:, future:], torch.zeros_like(windows[:, :future])], dim=1)
            pitch, conf, _ = self.model(windows, return_activations=False)
            return pitch.reshape(-1), conf.reshape(-1)

    return PestoWindow().eval()


def pesto_tracker(mirror: float, voicing: float = 0.5) -> tuple[Tracker, dict[str, Any]]:
    """PESTO in the library's streaming layout; accuracy from the batched window module (checked equal)."""
    import torch

    torch.set_num_threads(1)
    model = load_pesto(mirror)
    cqt = model.preprocessor.hcqt_kernels.cqt_kernels[0]
    kernel = cqt.kernel_width
    future = int(mirror * (kernel - HOP) / 2)
    window_module = _pesto_window_module(model, mirror)

    def windows_of(audio: np.ndarray) -> np.ndarray:
        x = np.concatenate([np.zeros(kernel, np.float32), audio.astype(np.float32)])
        frames = len(audio) // HOP
        idx = (np.arange(frames) + 1) * HOP
        return np.lib.stride_tricks.sliding_window_view(x, kernel)[idx]

    def run(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = windows_of(audio)
        pitch, conf = [], []
        with torch.inference_mode():
            for i in range(0, len(w), 256):
                p, c = window_module(torch.from_numpy(np.ascontiguousarray(w[i : i + 256])))
                pitch.append(p.numpy())
                conf.append(c.numpy())
        semis = np.concatenate(pitch) if pitch else np.zeros(0)
        return 440.0 * 2 ** ((semis - 69) / 12), np.concatenate(conf) >= voicing if conf else np.zeros(0, bool)

    streaming = load_pesto(mirror)

    def step(block: np.ndarray) -> object:
        with torch.inference_mode():
            return streaming(torch.from_numpy(block)[None], return_activations=False)

    # The batched window module must give what the library's own streaming calls give, hop by hop.
    t = np.arange(RATE) / RATE
    probe = (0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.5 * t))).astype(np.float32)
    check = load_pesto(mirror)
    lib_p, lib_c = [], []
    with torch.inference_mode():
        for i in range(0, len(probe) - HOP + 1, HOP):
            p, c, _ = check(torch.from_numpy(probe[i : i + HOP])[None], return_activations=False)
            lib_p.append(float(p.reshape(-1)[0]))
            lib_c.append(float(c.reshape(-1)[0]))
    ours = run(probe)[0]
    ours_semis = 69 + 12 * np.log2(ours / 440.0)
    w = windows_of(probe)
    with torch.inference_mode():
        conf = window_module(torch.from_numpy(np.ascontiguousarray(w)))[1].numpy()
    parity = {"max_abs_semitones": float(np.max(np.abs(ours_semis - np.array(lib_p)))),
              "max_abs_confidence": float(np.max(np.abs(conf - np.array(lib_c)))), "hops": len(lib_p)}
    name = "pesto centred" if mirror == 0 else "pesto mirrored"
    notes = (f"torch; mir-1k_g7, CQT kernel {kernel} samples ({1000 * kernel / RATE:.0f} ms), "
             f"{future} future samples zeroed, voiced when confidence >= {voicing}; "
             f"kernels centred {kernel // 2 - future} samples before the hop's end")
    tracker = Tracker(name, run, step, None, kernel, notes)
    extra = {"parity_with_library_streaming": parity, "onnx": _onnx_cost(window_module, kernel)}
    return tracker, extra


def _onnx_cost(module: Any, kernel: int, calls: int = 1500) -> dict[str, Any]:
    """Export the one-window module to ONNX and time it in ONNX Runtime (1 thread), one window per call."""
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory(prefix="stylehost-pesto-") as tmp:
        path = Path(tmp) / "pesto.onnx"
        example = torch.zeros(1, kernel)
        try:
            torch.onnx.export(module, (example,), str(path), input_names=["window"],
                              output_names=["pitch", "confidence"], opset_version=17, dynamo=False)
        except Exception as exc:  # the exporter raises many types
            return {"error": f"export failed: {type(exc).__name__}: {exc}"[:300]}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        x = (0.1 * rng.standard_normal((1, kernel))).astype(np.float32)
        with torch.inference_mode():
            ref = module(torch.from_numpy(x))
        got = sess.run(None, {"window": x})
        times = []
        for i in range(calls + 50):
            x[0, :-HOP] = x[0, HOP:]
            x[0, -HOP:] = 0.1 * np.sin(2 * np.pi * 220 * (i * HOP + np.arange(HOP)) / RATE)
            t0 = time.perf_counter()
            sess.run(None, {"window": x})
            times.append(1000.0 * (time.perf_counter() - t0))
        size = path.stat().st_size
    kept = np.array(times[50:])
    return {"ms_p50": float(np.median(kept)), "ms_p99": float(np.percentile(kept, 99)),
            "parity_semitones": float(abs(got[0].reshape(-1)[0] - ref[0].reshape(-1)[0].item())),
            "parity_confidence": float(abs(got[1].reshape(-1)[0] - ref[1].reshape(-1)[0].item())),
            "file_bytes": int(size), "calls": len(kept)}


# -- scoring --------------------------------------------------------------------------------------------

def measured_alignment(tracker: Tracker, base: float = 220.0) -> int:
    """The lag (samples) that best aligns the tracker's hops with a vibrato sine's f0 (mean cents error)."""
    t = np.arange(3 * RATE) / RATE
    f0 = base * 2 ** (100 / 1200 * np.sin(2 * np.pi * 6.0 * t))
    x = (0.3 * np.sin(2 * np.pi * np.cumsum(f0) / RATE)).astype(np.float32)
    est, _ = tracker.run(x)
    ends = HOP * np.arange(1, len(est) + 1)
    best = (math.inf, 0)
    for lag in range(0, tracker.frame + 1, 12):
        ok = (ends >= tracker.frame) & (ends - lag >= 0) & (ends - lag < len(f0))
        if ok.sum() < 100:
            continue
        err = float(np.mean(np.abs(1200 * np.log2(np.maximum(est[ok], 1e-9) / f0[ends[ok] - lag]))))
        best = min(best, (err, lag))
    return best[1]


def hop_reference(sig: Signal, hops: int, delay: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference (f0, state) at the sample each hop describes; hops before the signal are UNSCORED."""
    at = HOP * np.arange(1, hops + 1) - delay
    ok = (at >= 0) & (at < len(sig.f0))
    f0, state = np.zeros(hops), np.full(hops, UNSCORED)
    f0[ok], state[ok] = sig.f0[at[ok]], sig.state[at[ok]]
    return f0, state


def counts(est: np.ndarray, voiced: np.ndarray, ref: np.ndarray, state: np.ndarray) -> dict[str, int]:
    """Hop counts from which every rate is computed (so pooled rates weight hops, not signals)."""
    rv, ru = state == VOICED, state == UNVOICED
    cents = np.full(len(est), np.inf)
    cents[rv] = 1200 * np.log2(np.maximum(est[rv], 1e-9) / ref[rv])
    a = np.abs(cents)
    octave = np.zeros(len(est), bool)
    for k in (-2400, -1200, 1200, 2400):
        octave |= np.abs(cents - k) <= 50
    both = rv & voiced
    return {
        "ref_voiced": int(rv.sum()), "ref_unvoiced": int(ru.sum()),
        "within_50c": int((rv & (a <= 50)).sum()), "within_20c": int((rv & (a <= 20)).sum()),
        "both_voiced": int(both.sum()), "gross": int((both & (np.abs(est / np.where(rv, ref, 1) - 1) > 0.2)).sum()),
        "octave": int((rv & octave).sum()), "recall": int(both.sum()), "false_alarm": int((ru & voiced).sum()),
    }


def rates(c: dict[str, int]) -> dict[str, float | int]:
    def ratio(a: int, b: int) -> float:
        return round(a / b, 4) if b else float("nan")

    return {"rpa": ratio(c["within_50c"], c["ref_voiced"]), "rpa_20c": ratio(c["within_20c"], c["ref_voiced"]),
            "gpe": ratio(c["gross"], c["both_voiced"]), "octave": ratio(c["octave"], c["ref_voiced"]),
            "voicing_recall": ratio(c["recall"], c["ref_voiced"]),
            "voicing_false_alarm": ratio(c["false_alarm"], c["ref_unvoiced"]),
            "voiced_hops": c["ref_voiced"], "unvoiced_hops": c["ref_unvoiced"]}


def score(tracker: Tracker, signals: list[Signal], delay: int, group: Callable[[str], str]) -> dict[str, Any]:
    """{group: rates} plus "all": hop-weighted over every signal."""
    total: dict[str, dict[str, int]] = {}
    for sig in signals:
        est, voiced = tracker.run(sig.audio)
        ref, state = hop_reference(sig, len(est), delay)
        parts: list[tuple[tuple[str, ...], dict[str, int]]] = [((group(sig.name), "all"),
                                                                 counts(est, voiced, ref, state))]
        if sig.steady is not None:
            at = np.clip(HOP * np.arange(1, len(est) + 1) - delay, 0, len(sig.steady) - 1)
            steady_state = np.where(sig.steady[at] | (state == UNVOICED), state, UNSCORED)
            parts.append((("steady",), counts(est, voiced, ref, steady_state)))
        for keys, c in parts:
            for key in keys:
                acc = total.setdefault(key, {k: 0 for k in c})
                for k, v in c.items():
                    acc[k] += v
    return {k: rates(v) for k, v in total.items()}


def cost(tracker: Tracker, audio: np.ndarray, hops: int, warmup: int = 50) -> dict[str, float]:
    """ms per streaming call of HOP samples: median and p99 over ``hops`` calls after ``warmup``."""
    times = []
    for i in range(hops + warmup):
        j = (i * HOP) % (len(audio) - HOP)
        block = audio[j : j + HOP]
        t0 = time.perf_counter()
        tracker.step(block)
        times.append(1000.0 * (time.perf_counter() - t0))
    kept = np.array(times[warmup:])
    return {"ms_p50": float(np.median(kept)), "ms_p99": float(np.percentile(kept, 99)), "hops": len(kept)}


# -- report ---------------------------------------------------------------------------------------------

def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# Live f0 trackers (issue 15)", "",
             f"`{m['command']}` on {m['cpu']} ({m['cores']} cores, load {m['load_average']}), {m['date']}, "
             f"commit {m['git_commit']}. Generated by `benchmarks/pitch.py`; its docstring defines every column.",
             "", "Hop 4 ms (96 samples at 24 kHz). RPA: raw pitch accuracy (within 50 cents, reference-voiced hops); "
             "GPE: gross pitch error (> 20 % off, both voiced); octave: errors of +-1 or 2 octaves; "
             "latency: the measured alignment of an estimate (ms back from its hop's end); "
             "cost: one streaming call per hop, one thread.", ""]
    head = ("| tracker | set | RPA | RPA 20c | GPE | octave | voicing recall | false alarm | latency ms | "
            "cost p50 ms | cost p99 ms |")
    lines += [head, "|" + "---|" * 11]
    sets = (("synthetic", "all", "synthetic, 25 dB SNR"), ("synthetic_10db", "all", "synthetic, 10 dB SNR"),
            ("dataset", "all", "dataset"), ("dataset", "steady", "dataset, >= 200 ms after onset"))
    for t in result["trackers"]:
        for set_name, key, label in sets:
            r = t.get(set_name, {}).get(key)
            if not r:
                continue
            lines.append(f"| {t['name']} | {label} | {r['rpa']:.3f} | {r['rpa_20c']:.3f} | {r['gpe']:.3f} | "
                         f"{r['octave']:.3f} | {r['voicing_recall']:.3f} | {r['voicing_false_alarm']:.3f} | "
                         f"{t['latency_ms']:.1f} | {t['cost']['ms_p50']:.3f} | {t['cost']['ms_p99']:.3f} |")
    lines += ["", "Per signal (synthetic) and per style (dataset), RPA / GPE / voicing recall / false alarm:", ""]
    set_names = ("synthetic", "synthetic_10db", "dataset")
    groups = sorted({g for t in result["trackers"] for s in set_names for g in t.get(s, {})
                     if g not in ("all", "steady")})
    lines += ["| group | " + " | ".join(t["name"] for t in result["trackers"]) + " |",
              "|---|" + "---|" * len(result["trackers"])]
    for g in groups:
        cells = []
        for t in result["trackers"]:
            r = next((t[s][g] for s in set_names if g in t.get(s, {})), None)
            cells.append(f"{r['rpa']:.3f} / {r['gpe']:.3f} / {r['voicing_recall']:.2f} / {r['voicing_false_alarm']:.2f}"
                         if r else "-")
        lines.append(f"| {g} | " + " | ".join(cells) + " |")
    lines += ["", "Trackers:", ""]
    for t in result["trackers"]:
        extra = ""
        if "onnx" in t:
            o = t["onnx"]
            extra = (f" ONNX Runtime (1 thread, one window per call): p50 {o['ms_p50']:.3f} ms, "
                     f"p99 {o['ms_p99']:.3f} ms" if "ms_p50" in o else f" ONNX: {o.get('error')}")
            p = t["parity_with_library_streaming"]
            extra += (f"; batched windows vs the library's streaming calls: max {p['max_abs_semitones']:.2g} "
                      f"semitones, {p['max_abs_confidence']:.2g} confidence over {p['hops']} hops.")
        stated = f", stated {t['stated_delay_ms']:.1f} ms" if t.get("stated_delay_ms") is not None else ""
        lines.append(f"- **{t['name']}**: {t['notes']}; alignment measured {t['latency_ms']:.1f} ms{stated} "
                     f"(at 110/220/440 Hz: {', '.join(f'{v:.1f}' for v in t['alignment_ms_by_f0'].values())} ms)."
                     + extra)
    for name, why in result["unavailable"].items():
        lines.append(f"- **{name}**: not run: {why}")
    d = result["dataset"]
    lines += ["", "Dataset: " + (f"{d['clips']} monophonic test clips x {len(d['styles'])} styles ({d['font']}), "
                                 f"{d['monophonic_test_clips']} such clips in the test split."
                                 if "clips" in d else d.get("skipped", "not present")), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pitch.json"))
    p.add_argument("--data", type=Path, default=Path("data/paired"))
    p.add_argument("--max-clips", type=int, default=8, help="dataset test clips (each in every style)")
    p.add_argument("--cost-hops", type=int, default=3000)
    p.add_argument("--no-pesto", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    signals = synthetic()
    noisy = synthetic(seed=1, noise_db=-10.0)
    if (args.data / "manifest.json").is_file():
        data, data_info = dataset_signals(args.data, args.max_clips)
    else:
        data, data_info = [], {"skipped": f"no {args.data / 'manifest.json'} (dataset not rendered)"}
    trackers: list[tuple[Tracker, dict[str, Any]]] = [(yin_tracker(50.0), {}), (yin_tracker(80.0), {})]
    unavailable: dict[str, str] = {}
    if not args.no_pesto:
        for mirror in (0.0, 1.0):
            try:
                trackers.append(pesto_tracker(mirror))
            except ImportError as exc:
                unavailable[f"pesto mirror={mirror:g}"] = str(exc)
    cost_audio = np.concatenate([s.audio for s in signals])
    rows = []
    for tracker, extra in trackers:
        align = {f"{f:g}": 1000.0 * measured_alignment(tracker, f) / RATE for f in (110.0, 220.0, 440.0)}
        delay = measured_alignment(tracker)
        row: dict[str, Any] = {
            "name": tracker.name, "notes": tracker.notes, "frame_samples": tracker.frame,
            "delay_samples_used": delay, "latency_ms": 1000.0 * delay / RATE, "alignment_ms_by_f0": align,
            "stated_delay_ms": None if tracker.stated_delay is None else 1000.0 * tracker.stated_delay / RATE,
            "synthetic": score(tracker, signals, delay, lambda name: name),
            "synthetic_10db": score(tracker, noisy, delay, lambda name: name + " (10 dB SNR)"),
            "cost": cost(tracker, cost_audio, args.cost_hops if tracker.name.startswith("yin") else
                         max(300, args.cost_hops // 5)),
            **extra,
        }
        if data:
            row["dataset"] = score(tracker, data, delay, lambda name: "dataset " + name.split("/")[0])
        rows.append(row)
        print(f"{tracker.name}: synthetic RPA {row['synthetic']['all']['rpa']:.3f}, "
              f"latency {row['latency_ms']:.1f} ms, cost p50 {row['cost']['ms_p50']:.3f} ms", flush=True)
    result = {"machine": machine_info(), "rate": RATE, "hop": HOP, "noise_db": [NOISE_DB, -10.0],
              "signals": {s.name: {"seconds": len(s.audio) / RATE} for s in signals}, "dataset": data_info,
              "trackers": rows, "unavailable": unavailable}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
