"""StreamingProcessor: a causal bundle (export/streaming.py) played S new frames per call, each frame computed once.

Per call (numpy + backend only): frontend of the S newest frames -> normalise -> for each sampler step, the
causal denoiser on those S frames with that step's state and FiLM (a bundle with a condition graph makes each
step's FiLM from its sigma and the style only when one of them changes: after set_params and during a style
crossfade) (x = the source L_c frames back + sigma * frame
noise, as SDEdit starts; consistency re-noising between steps, as ModelProcessor) -> the stage on the S
emitted frames and its context -> overlap-add -> ``stride`` finished samples.

Frame arithmetic (K = n_fft/hop, S = emit, L_c the network's look-ahead, ``after``/``before`` the stage's
context, L = L_c + after = the bundle's lookahead, T = L + S + before = the bundle's window): call c sees
input up to sample (c+1)*S*hop, newest complete frame J = (c+1)*S - K. The network hears source frames
J-S+1..J and x of the frames L_c earlier, and returns x0 of frames J-S+1-L_c..J-L_c; the stage emits the
S frames ``after`` before those and reads ``before`` earlier ones, so the emitted frames are [J-L-S+1, J-L]
exactly as in ModelProcessor: the same delay (synthesis span + (L-1) hops), the same ``frame_origin``, the
same inherited style crossfade, excitation window and schedule. The window holds T frames: the stage's
audio frames start at its first sample.

The offline reference is ``diffusion.causal_stream.causal_stream_audio``: the whole clip in one causal pass
per step, equal to this processor call by call (tests/realtime/test_stream_processor.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from diffusion.noise import FrameNoiseBlocks
from export.bundle import Bundle
from realtime.backends.base import Backend
from realtime.model_processor import BUNDLE_EXCITATION, CROSSFADE_MS, ModelProcessor


class StreamingProcessor(ModelProcessor):
    """A streaming bundle through a backend with the Processor contract; see the module docstring."""

    def __init__(self, bundle: Bundle, backend: Backend, seed: int = 0, crossfade_ms: float = CROSSFADE_MS,
                 excitation: dict[str, Any] | None | str = BUNDLE_EXCITATION, side_thread: bool = True) -> None:
        streaming = bundle.streaming
        if streaming is None:
            raise StylehostError(f"model {bundle.name} is a window bundle: play it with ModelProcessor")
        if bundle.denoiser_input != "source":
            raise StylehostError(f"streaming bundle {bundle.name} hears {bundle.denoiser_input!r}; only 'source' "
                                 "is supported")
        self._lc = int(streaming["causal_lookahead"])
        self._state_shapes = [tuple(e["shape"]) for e in streaming["state"]]
        # with a condition graph (streaming.condition): per sampler step, the denoiser's FiLM for that step's sigma
        # and the current style, bound once and recomputed only when either changes (_cond_stale)
        self._cond_shapes = [tuple(e["shape"]) for e in streaming.get("condition", ())]
        self._conds: list[list[np.ndarray]] = []
        self._cond_calls: list[Callable[[], None]] = []
        self._cond_stale = True
        # per sampler step: two banks of that step's network state, and the denoiser bound both ways (bank 0 in,
        # bank 1 out, and back), so the state passes from call to call without a copy; _bank[i] holds step i's
        self._states: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
        self._step_calls: list[tuple[Callable[[], None], Callable[[], None]]] = []
        self._bank: list[int] = []
        m, s = bundle.spectrogram.n_mels, bundle.emit
        self._new = np.zeros((1, 1, m, s), np.float32)  # the S new source frames, normalised
        self._xs = np.zeros((1, 1, m, s), np.float32)
        self._x0 = np.zeros((1, 1, m, s), np.float32)
        self._draws: list[FrameNoiseBlocks] = []  # per sampler step: its frame noise, drawn a block ahead
        super().__init__(bundle, backend, emit=bundle.emit, seed=seed, crossfade_ms=crossfade_ms,
                         excitation=excitation, side_thread=side_thread)
        # ModelProcessor's check_stage_reach(after, L_c + after, lag) has refused a network look-ahead under the lag
        self._frontend_len = bundle.spectrogram.num_samples(s)
        self._audio = np.zeros((1, self._frontend_len), np.float32)  # the frontend's samples, bound
        self._logmel = np.zeros((1, m, s), np.float32)
        self._frontend_call = backend.bind("frontend", (self._audio,), (self._logmel,))
        self._hist = np.zeros((m, self._lc + s), np.float32)  # source frames [start - L_c, start + S)
        self._ctx = np.zeros((1, m, self._before + s + self._after), np.float32)  # predicted log-mel, denormalised
        self._bind_resynth(self._ctx)
        self.reset()

    def _set_schedule(self) -> None:
        super()._set_schedule()
        while len(self._states) < max(1, self.steps):  # allocates only when steps grow, between calls
            banks = tuple([np.zeros((1, *shape), np.float32) for shape in self._state_shapes] for _ in range(2))
            if self._cond_shapes:
                cond = [np.zeros((1, *shape), np.float32) for shape in self._cond_shapes]
                self._cond_calls.append(self.backend.bind("condition", (self._sigma, self._style), cond))
                self._conds.append(cond)
                fixed: tuple[np.ndarray, ...] = (self._xs, self._new, *cond)
            else:
                fixed = (self._xs, self._sigma, self._new, self._style)
            self._step_calls.append(tuple(  # type: ignore[arg-type]
                self.backend.bind("denoiser", (*fixed, *banks[k]), (self._x0, *banks[1 - k])) for k in (0, 1)))
            self._states.append(banks)  # type: ignore[arg-type]
            self._bank.append(0)
            self._draws.append(FrameNoiseBlocks(self.seed, self.bundle.spectrogram.n_mels, len(self._draws)))
        self._cond_stale = True  # new sigmas

    def _set_style(self, mix: dict[str, float], immediate: bool) -> None:
        super()._set_style(mix, immediate)
        self._cond_stale = True

    def _advance_style(self) -> None:
        if self._fade_pos < self._fade_len:  # the style moves this call
            self._cond_stale = True
        super()._advance_style()

    def _condition(self) -> None:
        """Each sampler step's FiLM from its sigma and the current style (the condition graph), into its bank."""
        for i in range(len(self._sigmas) - 1):
            self._sigma[0] = self._sigmas[i]
            self._cond_calls[i]()
        self._cond_stale = False

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "_hist"):
            self._hist[:] = self._floor_norm  # frames before the stream are silence
            self._ctx[:] = float(np.log(self.bundle.spectrogram.log_floor))
            for i, banks in enumerate(self._states):
                for bank in banks:
                    for arr in bank:
                        arr[:] = 0.0
                self._bank[i] = 0

    def state_of(self, step: int) -> list[np.ndarray]:
        """Sampler step ``step``'s current network state (the bank its next call reads)."""
        return self._states[step][self._bank[step]]

    def _new_start(self) -> int:
        """Absolute frame of this call's first new source frame: J - S + 1 + frame_origin."""
        return (self._calls + 1) * self.S - self._k - self.S + 1 + self.frame_origin

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        c, s = self._c, self.S
        start = self._new_start()
        self._advance_style()
        self._excite_in_line(window)
        self._audio[0] = window[-self._frontend_len :]
        self._frontend_call()
        np.subtract(self._logmel, c["logmel_mean"], out=self._new[:, 0])
        self._new /= c["logmel_std"]
        if start < 0:
            self._new[..., : min(-start, s)] = self._floor_norm
        hist = self._hist
        hist[:, :-s] = hist[:, s:]
        hist[:, -s:] = self._new[0, 0]
        x_start = start - self._lc  # absolute frame of the x0 frames this call computes
        ctx = self._ctx
        ctx[..., :-s] = ctx[..., s:]
        self._excite_beside(window)  # only the stage reads it: made on the side thread while the denoiser runs
        if self.strength > 0:
            self._sample_frames(x_start)
            np.multiply(self._xs[0, 0], c["logmel_std"], out=ctx[0, :, -s:])
        else:
            np.multiply(hist[:, :s], c["logmel_std"], out=ctx[0, :, -s:])
        ctx[0, :, -s:] += c["logmel_mean"]
        # the emitted frames end `after` before the x0 frames just computed; their context starts at window frame 0
        self._resynthesize(self._shaped(window), x_start - self._after, out)

    def _sample_frames(self, x_start: int) -> None:
        """SDEdit start from the source L_c frames back, then the sampler, each step with its own state."""
        sigmas = self._sigmas
        if self._cond_stale and self._cond_calls:
            self._condition()
        x = self._xs
        self._draws[0].take(x_start, x[0, 0])
        x *= np.float32(self._sigma_start)
        x[0, 0] += self._hist[:, : self.S]
        for i in range(len(sigmas) - 1):
            self._sigma[0] = sigmas[i]
            self._step_calls[i][self._bank[i]]()  # x0 into self._x0, the new state into the other bank
            self._bank[i] ^= 1
            x0 = self._x0
            if sigmas[i + 1] == 0:
                x[:] = x0
            elif self.sampler == "consistency":
                self._draws[i + 1].take(x_start, x[0, 0])
                x *= sigmas[i + 1]
                x += x0
            else:  # Euler, the torch sampler's order of operations
                d = (x - x0) / sigmas[i]
                x += d * (sigmas[i + 1] - sigmas[i])


def make_processor(bundle: Bundle, backend: Backend, **kwargs: Any) -> ModelProcessor:
    """The processor a bundle plays with: StreamingProcessor for a streaming bundle, else ModelProcessor
    (``emit`` and ``denoiser_input`` apply to window bundles only)."""
    if bundle.streaming is not None:
        kwargs.pop("emit", None)
        if kwargs.pop("denoiser_input", None) not in (None, "source"):
            raise StylehostError(f"streaming bundle {bundle.name} hears the source only")
        return StreamingProcessor(bundle, backend, **kwargs)
    return ModelProcessor(bundle, backend, **kwargs)
