"""ModelProcessor: a bundle run through a backend, window by window, exactly as diffusion/stream.py does offline.

Per call (numpy + backend only, into preallocated buffers):
frontend(window) -> normalise -> x = source + sigma_start * frame_noise(seed, absolute frames)
-> ``steps`` sampler steps (the bundle's sampler: Euler on the truncated Karras schedule for
teachers, multistep consistency sampling with frame-anchored re-noising for distilled students)
-> resynthesis of the S emitted frames -> overlap-add of those S frames -> ``stride`` finished samples.

Frame arithmetic (as StftPassthroughProcessor; K = n_fft/hop, T window frames, L look-ahead, S emit):
call c sees input up to sample (c+1)*S*hop, so its newest complete frame is J = (c+1)*S - K; the
model window is frames [J-T+1, J] (``window`` = num_samples(T) samples) and the call emits frames
[J-L-S+1, J-L], finalising ``stride`` = S*hop samples: delay = n_fft + (L-1)*hop samples.

Frame origin: the offline reference emits groups of S frames starting at frame 0, 4, 8, ... (S=4),
but the calls' groups start at J-L-S+1 = -(K+L-1) (mod S). So that both number frames the same way,
the processor's absolute frame index (which anchors the noise and marks what lies before the
stream) is the stream frame + ``frame_origin``, origin = (K+L-1) mod S: the stream is the offline
clip with ``frame_origin`` hops of silence in front. Worked example (n_fft 384, hop 96: K=4; T=32,
L=2, S=4): origin 1; call 0 has J=0 and emits stream frames -5..-2 = absolute frames -4..-1 (none
exists yet: nothing is added); call 2 emits absolute frames 4..7, the offline window ending at 10.
Absolute frames < 0 are the log floor in the model's input and are never overlap-added, exactly as
in the offline reference. stride 384 (16 ms), window 3360 (140 ms), delay 480 (20 ms) at 24 kHz.

A bundle with a learned resynthesis stage (manifest 'resynth_stage', diffusion/guide.py) reads
``before`` earlier and ``after`` later columns of the same window around the emitted ones: source
frames and this call's own predicted log-mel of them. ``after`` <= L, so the delay does not change.
Worked example (T=32, L=2, S=2, 1-step stage: before 2, after 1): columns 26..30, of which 28, 29
are emitted.

A bundle with an ``excitation`` section (diffusion/excitation.py) gives the resynth graph the source's
harmonic excitation instead of the source frames: a streaming generator fed each call's newest
``stride`` samples keeps an excitation window beside the input window, complete up to ``lag_hops`` hops
before its end (the generator runs that far behind: 1, or 0 for a stage with no look-ahead). The frames the
graph reads end (L - after) hops before the window does, so ``after`` <= L - lag_hops is required and the
delay does not change. The generator starts with ``frame_origin`` hops of silence, as the offline
reference's clip does.

Denoiser input "gated" (a bundle with an ``input_gate`` section, diffusion/input_gate.py): the frontend runs
on both windows and the gate's glided weight g blends them into the one channel the denoiser hears; g comes
from the input window alone, so a SoundFont-like input plays as "source" and an unknown timbre (a sine, a
square lead) as "excitation", with a glide of ``tau_s`` between. ``gate_weight`` reports the last call's g.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from diffusion.excitation import (
    GATED,
    PLAYED_INPUTS,
    ExcitationConfig,
    HarmonicExcitation,
    check_stage_reach,
    heard_channels,
)
from diffusion.input_gate import InputGate
from diffusion.noise import FrameNoiseBlocks, frame_noise
from export.bundle import Bundle
from realtime.backends.base import Backend
from realtime.processor import Processor, stft_delay_parts
from realtime.side_task import SideTask

CROSSFADE_MS = 100.0
BUNDLE_EXCITATION = "bundle"  # ModelProcessor(excitation=...): use the bundle's manifest section, if any
SAMPLERS = ("euler", "consistency")  # diffusion.sampling names; the manifest's sampler.name is one of them


def transfer_sigmas(steps: int, strength: float, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """numpy twin of diffusion.schedule.transfer_sigmas (float64 maths, float32 result, final 0), so the
    realtime path needs no torch: the Karras ramp (eq. 5 of Karras et al. 2022) from strength_sigma."""
    lo = sigma_min ** (1 / rho)
    top = strength_sigma(strength, sigma_min, sigma_max, rho) ** (1 / rho)
    ramp = np.linspace(0, 1, steps) if steps > 1 else np.zeros(1)
    sigmas = (top + ramp * (lo - top)) ** rho
    return np.concatenate([sigmas, [0.0]]).astype(np.float32)


def consistency_sigmas(steps: int, strength: float, sigma_min: float, sigma_max: float, rho: float) -> np.ndarray:
    """numpy twin of diffusion.schedule.consistency_sigmas: the first ``steps`` of a steps+1 ramp, then 0."""
    sigmas = transfer_sigmas(steps + 1, strength, sigma_min, sigma_max, rho)
    return np.concatenate([sigmas[:steps], np.zeros(1, np.float32)])


def strength_sigma(strength: float, sigma_min: float, sigma_max: float, rho: float) -> float:
    """numpy twin of diffusion.schedule.strength_sigma: position ``strength`` on the rho-warped ramp."""
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return float((lo + strength * (hi - lo)) ** rho)


class ModelProcessor(Processor):
    """Runs a bundle through a backend with the Processor contract; see the module docstring."""

    preserves_level = False  # the model plays at its training targets' loudness: the engine matches it

    def __init__(self, bundle: Bundle, backend: Backend, emit: int | None = None, seed: int = 0,
                 crossfade_ms: float = CROSSFADE_MS,
                 excitation: dict[str, Any] | None | str = BUNDLE_EXCITATION,
                 denoiser_input: str | None = None, side_thread: bool = True) -> None:
        spec = bundle.spectrogram
        self.bundle, self.backend, self.seed = bundle, backend, seed
        t, look, s = bundle.window, bundle.lookahead, emit or bundle.emit
        if not 1 <= s <= t - look:
            raise StylehostError(f"emit must be in 1..{t - look}, got {s}")
        hop, n_fft = spec.hop, spec.n_fft
        self.T, self.L, self.S, self.hop, self.n_fft = t, look, s, hop, n_fft
        self.sample_rate = spec.sample_rate
        self.stride = s * hop
        self.window = spec.num_samples(t)
        self._span = spec.synthesis_span  # each frame's synthesis window covers its last _span samples
        self.delay_samples = self._span + (look - 1) * hop  # a learned stage's look-ahead lies inside L: no more
        self._check_sizes()
        self._before, self._after = bundle.resynth_context
        if self._before + s > t - look or self._after > look:
            raise StylehostError(f"the bundle's resynth stage reads {self._before} frames before and {self._after} "
                                 f"after the {s} emitted ones; the window has {t - look - s} and {look}: lower emit")
        k = n_fft // hop
        self.frame_origin = (k + look - 1) % s
        self._k = k
        self._c = self.bundle.sampler
        self._floor_norm = (np.log(spec.log_floor) - self._c["logmel_mean"]) / self._c["logmel_std"]
        self._table = bundle.style_table
        self.sampler = bundle.sampler_name
        if self.sampler not in SAMPLERS:
            raise StylehostError(f"bundle {bundle.path} asks for sampler {self.sampler!r}; this stylehost runs "
                                 f"{', '.join(SAMPLERS)}: upgrade stylehost")
        m = spec.n_mels
        self._source = np.zeros((1, heard_channels(bundle.denoiser_input), m, t), np.float32)
        self._noise: list[np.ndarray] = []  # per sampler step (consistency re-noises with step i's noise)
        self._noise_start: list[int | None] = []
        self._new_noise: list[FrameNoiseBlocks] = []  # per step: the S new columns of each call, drawn a block ahead
        self._x = np.zeros((1, 1, m, t), np.float32)
        self._tmp = np.zeros((1, 1, m, t), np.float32)
        self._sigma = np.zeros(1, np.float32)
        self._style = np.zeros((1, self._table.shape[1]), np.float32)
        self._style_from = self._style.copy()
        self._style_to = self._style.copy()
        n = s + self._before + self._after  # frames the resynth graph reads
        self._frames = np.zeros((1, n, n_fft), np.float32)
        self._pred = np.zeros((1, m, n), np.float32)
        self._synth = np.zeros((1, s, n_fft), np.float32)
        self._bind_resynth(self._pred)
        self._acc = np.zeros(self._span + (s - 1) * hop, np.float32)  # acc[0]: the first sample this call finalises
        self._fade_len = max(1, round(crossfade_ms / 1000.0 * self.sample_rate / self.stride))
        self._fade_pos = self._fade_len
        self._first_col = t - look - s  # window column of the first emitted frame
        self._excitation: HarmonicExcitation | None = None
        exc_cfg = bundle.excitation if excitation == BUNDLE_EXCITATION else excitation
        if isinstance(exc_cfg, str):
            raise StylehostError(f"excitation must be a config, None or {BUNDLE_EXCITATION!r}, got {exc_cfg!r}")
        if exc_cfg is not None:
            exc_config = ExcitationConfig(**exc_cfg)
            check_stage_reach(self._after, look, f"model {bundle.name}", exc_config.lag_hops)
            self._excitation = HarmonicExcitation(spec.sample_rate, hop, exc_config)
        self._exc_win = np.zeros(self.window, np.float32)
        self._silence = np.zeros(hop, np.float32)
        # What the denoiser hears: the input, or its harmonic excitation (issue 15: the same 1/k series at the
        # input's pitch and loudness whatever the input's own timbre). With a generator lagging one hop the
        # excitation window's last hop is always zero, so only the window's last column sees a cut frame; the
        # offline reference (stream.stream_audio) cuts it the same way.
        self.denoiser_input = denoiser_input or bundle.denoiser_input
        if self.denoiser_input not in PLAYED_INPUTS:
            raise StylehostError(f"denoiser input must be one of {', '.join(PLAYED_INPUTS)}, "
                                 f"got {self.denoiser_input!r}")
        if self.denoiser_input != "source" and self._excitation is None:
            raise StylehostError("the denoiser can hear the excitation only when the stage shapes one: use a bundle "
                                 "with an excitation section, or --harmonic")
        # Gated (diffusion/input_gate.py): both windows are heard into _pair, and the gate's glided weight blends
        # them into the one channel the denoiser takes, (1 - g) * input + g * excitation.
        self._gate: InputGate | None = None
        if self.denoiser_input == GATED:
            gate_cfg = bundle.input_gate
            if gate_cfg is None:
                raise StylehostError(f"bundle {bundle.name} has no input gate: fit one with `stylehost gate-fit`, "
                                     "or choose --denoiser-input source or excitation")
            if gate_cfg.n_mels != m:
                raise StylehostError(f"bundle {bundle.name}'s input gate has {gate_cfg.n_mels} mel bands, not {m}")
            self._gate = InputGate(gate_cfg, self.stride / self.sample_rate)
        self._pair = np.zeros((1, 2, m, t), np.float32) if self._gate is not None else self._source
        self._gate_win = np.zeros((m, t), np.float32)
        self.gate_weight = 0.0  # the excitation's share the denoiser heard at the last call (0 without a gate)
        # per source channel: does it hear the excitation window (else the input window)
        self._heard = {"source": (False,), "excitation": (True,), "both": (False, True),
                       GATED: (False, True)}[self.denoiser_input]
        if heard_channels(self.denoiser_input) != self._source.shape[1]:
            raise StylehostError(f"this bundle's denoiser hears {bundle.denoiser_input!r} "
                                 f"({self._source.shape[1]} window(s) per call), so it cannot hear "
                                 f"{self.denoiser_input!r}: leave the denoiser input at the bundle's")
        # When only the stage reads the excitation, it is made on a side thread while the frontend and the
        # denoiser run (ONNX Runtime releases the GIL): realtime/side_task.py. ``side_thread`` False: in line.
        self._side: SideTask | None = None
        if self._excitation is not None and not any(self._heard) and side_thread:
            self._side = SideTask(self._excite_on_side)
            weakref.finalize(self, self._side.close)
        self.strength, self.steps = 0.7, 4
        self._set_schedule()
        self._set_style({bundle.styles[0]: 1.0}, immediate=True)
        self.reset()

    # ---- parameters ------------------------------------------------------------------------------

    def set_params(self, **params: Any) -> None:
        """style_mix {name: weight} crossfades over ~100 ms; strength and steps apply at the next call."""
        if "strength" in params or "steps" in params:
            strength = float(params.get("strength", self.strength))
            steps = int(params.get("steps", self.steps))
            if not 0.0 <= strength <= 1.0 or steps < 1:
                raise StylehostError(f"need strength in [0, 1] and steps >= 1, got {strength}, {steps}")
            self.strength, self.steps = strength, steps
            self._set_schedule()
        if "style_mix" in params:
            self._set_style(dict(params["style_mix"]), immediate=self._calls == 0)

    def _set_schedule(self) -> None:
        """Sigmas of the truncated Karras schedule and the float64 start level (strength 0: no sampling)."""
        if self.strength > 0:
            c = self._c
            schedule = consistency_sigmas if self.sampler == "consistency" else transfer_sigmas
            self._sigmas = schedule(self.steps, self.strength, c["sigma_min"], c["sigma_max"], c["rho"])
            steps_with_noise = self.steps if self.sampler == "consistency" else 1
            while len(self._noise) < steps_with_noise:  # allocates only when steps grow, between calls
                m = self.bundle.spectrogram.n_mels
                self._noise.append(np.zeros((m, self.T), np.float32))
                self._noise_start.append(None)
                self._new_noise.append(FrameNoiseBlocks(self.seed, m, len(self._new_noise), max(32, self.S)))
            self._sigma_start = strength_sigma(self.strength, c["sigma_min"], c["sigma_max"], c["rho"])

    def _set_style(self, mix: dict[str, float], immediate: bool) -> None:
        """Target style vector = normalised weights @ table. Styles the bundle lacks are dropped here, not
        raised: this runs on the engine's worker thread, which must never die on a parameter (the CLI
        refuses such styles before streaming; ``ignored_styles`` tells a panel what was dropped)."""
        weights = np.zeros(len(self.bundle.styles), np.float32)
        self.ignored_styles = sorted(name for name in mix if name not in self.bundle.styles)
        for name, w in mix.items():
            if name in self.bundle.styles:
                weights[self.bundle.styles.index(name)] = w
        if weights.sum() <= 0:
            return  # nothing this bundle knows: keep the current style
        weights /= weights.sum()
        np.matmul(weights[None], self._table, out=self._style_to)
        self._style_from[:] = self._style
        self._fade_pos = 0
        if immediate:
            self._style[:] = self._style_to
            self._fade_pos = self._fade_len

    def _advance_style(self) -> None:
        """Linear interpolation of the style vector, one step per call: no jump in the conditioning."""
        if self._fade_pos < self._fade_len:
            self._fade_pos += 1
            a = self._fade_pos / self._fade_len
            np.subtract(self._style_to, self._style_from, out=self._style)
            self._style *= a
            self._style += self._style_from

    @property
    def style_vector(self) -> np.ndarray:
        return self._style[0].copy()

    # ---- streaming -------------------------------------------------------------------------------

    def delay_parts(self) -> tuple[tuple[str, int], ...]:
        return stft_delay_parts(self._span, self.hop, self.L)

    def reset(self) -> None:
        if self._side is not None:
            self._side.settle()  # a call that raised may have left the excitation running
        self._acc[:] = 0.0
        self._calls = 0
        self._noise_start = [None] * len(self._noise)
        self._exc_win[:] = 0.0
        if self._gate is not None:
            self._gate.reset()
        if self._excitation is not None:
            self._excitation.reset()
            for _ in range(self.frame_origin):  # the offline clip's leading silence (module docstring)
                self._excitation.process(self._silence)

    def _excite(self, window: np.ndarray) -> np.ndarray:
        """Advance the excitation window by this call's ``stride`` new samples; return it."""
        exc, hop, stride = self._exc_win, self.hop, self.stride
        assert self._excitation is not None
        exc[:-stride] = exc[stride:]
        new = window[-stride:]
        # the generator's output lags the input by its delay (lag_hops hops)
        end = len(exc) - self._excitation.delay_samples  # audit: processor-excitation-lag
        for h in range(self.S):
            exc[end - stride + h * hop : end - stride + (h + 1) * hop] = self._excitation.process(
                new[h * hop : (h + 1) * hop])
        return exc

    def _excite_on_side(self, window: np.ndarray) -> None:
        self._excite(window)  # looked up per call: a benchmark may wrap the instance's _excite

    def _excite_in_line(self, window: np.ndarray) -> None:
        """This call's excitation, made now: first thing in a call, when there is no side thread."""
        if self._side is None and self._excitation is not None:
            self._excite(window)

    def _excite_beside(self, window: np.ndarray) -> None:
        """This call's excitation started on the side thread, right before the denoiser: the side thread gets the
        GIL only while a graph runs, and the denoiser is the call's one graph long enough to cover it (started
        before the frontend, the excitation held the GIL the frontend returned to, and the call waited for it)."""
        if self._side is not None:
            self._side.start(window)

    def _shaped(self, window: np.ndarray) -> np.ndarray:
        """What the stage reads: the input, or this call's excitation window (once the side thread is done)."""
        if self._excitation is None:
            return window
        if self._side is not None:
            self._side.wait()
        return self._exc_win

    def _start_frame(self) -> int:
        """Absolute frame index of this call's first window column (see the module docstring)."""
        return (self._calls + 1) * self.S - self._k - self.T + 1 + self.frame_origin

    def _noise_for(self, step: int, start: int) -> np.ndarray:
        """Frame-anchored noise of sampler step ``step`` for columns [start, start+T): the previous call's
        columns shifted, and only the S new ones drawn (the noise of a column depends on its frame only)."""
        noise = self._noise[step]
        m = noise.shape[0]
        if self._noise_start[step] == start - self.S:
            noise[:, : -self.S] = noise[:, self.S :]
            self._new_noise[step].take(start + self.T - self.S, noise[:, -self.S :])
        elif self._noise_start[step] != start:
            noise[:] = frame_noise(self.seed, start, self.T, m, step)
        self._noise_start[step] = start
        return noise

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        c, s = self._c, self.S
        start = self._start_frame()
        self._advance_style()
        # frontend: (1, samples) -> (1, mels, T) log-mel, normalised into the preallocated source: the input,
        # its excitation, or both (channel 0 the input, 1 the excitation)
        self._excite_in_line(window)
        heard = self._pair
        for ch, excited in enumerate(self._heard):  # excited only where the excitation was made in line
            logmel = self.backend.run("frontend", (self._exc_win if excited else window)[None])
            np.subtract(logmel, c["logmel_mean"], out=heard[:, ch])
        heard /= c["logmel_std"]
        if start < 0:  # columns before the first frame are the log floor, as in the offline reference
            heard[..., : min(-start, self.T)] = self._floor_norm
        if self._gate is not None:
            self._blend(c, glide=start + self._first_col + s > 0)
        cols = slice(self._first_col - self._before, self._first_col + s + self._after)
        self._excite_beside(window)
        if self.strength > 0:
            self._sample(start)
            np.multiply(self._x[0, 0, :, cols], c["logmel_std"], out=self._pred[0])
            self._pred += c["logmel_mean"]
        else:  # strength 0: the source itself (resynthesis with unit gain)
            np.multiply(self._source[0, 0, :, cols], c["logmel_std"], out=self._pred[0])
            self._pred += c["logmel_mean"]
        self._resynthesize(self._shaped(window), start + self._first_col, out)

    def _blend(self, c: dict[str, Any], glide: bool) -> None:
        """The gate's weight from the input window (de-normalised: the gate reads natural-log mels, as
        offline), glided, then the one heard channel = input + g * (excitation - input). A call that emits
        only frames before the stream's first (``glide`` False) has no offline window: it leaves g as it is."""
        assert self._gate is not None
        np.multiply(self._pair[0, 0], c["logmel_std"], out=self._gate_win)
        self._gate_win += c["logmel_mean"]
        # audit: processor-gate-glide
        g = self._gate.smooth(self._gate.raw_weight(self._gate_win)) if glide else self._gate.value
        self.gate_weight = g
        np.subtract(self._pair[:, 1], self._pair[:, 0], out=self._source[:, 0])
        self._source *= np.float32(g)
        self._source += self._pair[:, :1]

    def _bind_resynth(self, pred: np.ndarray) -> None:
        """The resynth graph bound once (Backend.bind) to the audio frames, ``pred`` (the predicted log-mel
        buffer this processor fills) and the output frames."""
        self._resynth_call = self.backend.bind("resynth", (self._frames, pred), (self._synth,))

    def _resynthesize(self, shaped: np.ndarray, first_emitted: int, out: np.ndarray) -> None:
        """The resynth graph on the emitted frames and their context (window columns from ``_first_col -
        _before``) and the bound log-mel, overlap-add, the finished ``stride`` samples into ``out``; ends the call."""
        hop, n_fft, s = self.hop, self.n_fft, self.S
        for k in range(self._frames.shape[1]):
            off = (self._first_col - self._before + k) * hop
            self._frames[0, k] = shaped[off : off + n_fft]
        self._resynth_call()
        synth = self._synth
        span = self._span
        for k in range(max(0, -first_emitted), s):  # frames before the first one do not exist offline
            self._acc[k * hop : k * hop + span] += synth[0, k, n_fft - span :]
        out[:] = self._acc[: self.stride]
        self._acc[: -self.stride] = self._acc[self.stride :]
        self._acc[-self.stride :] = 0.0
        self._calls += 1

    def _sample(self, start: int) -> None:
        """SDEdit start + the bundle's sampler, as diffusion.sampling.transfer does; in place in self._x."""
        sigmas = self._sigmas
        x, tmp = self._x, self._tmp
        np.multiply(self._noise_for(0, start), np.float32(self._sigma_start), out=x[0, 0])
        x += self._source[:, :1]  # SDEdit starts from channel 0 (diffusion.sampling.transfer)
        for i in range(len(sigmas) - 1):
            self._sigma[0] = sigmas[i]
            x0 = self.backend.run("denoiser", x, self._sigma, self._source, self._style)
            if sigmas[i + 1] == 0:
                x[:] = x0
            elif self.sampler == "consistency":  # x0 + sigma_{i+1} * noise(step i+1): sample_consistency
                np.multiply(self._noise_for(i + 1, start), sigmas[i + 1], out=x[0, 0])
                x += x0
            else:  # x + (x - x0) / sigma_i * (sigma_{i+1} - sigma_i), the torch sampler's order of operations
                np.subtract(x, x0, out=tmp)
                tmp /= sigmas[i]
                tmp *= sigmas[i + 1] - sigmas[i]
                x += tmp

