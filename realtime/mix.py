"""The wet/dry mix: the processor's output, level-matched, mixed with the latency-aligned dry line,
soft-clipped and written to the output ring.

Thread: the worker (realtime/worker.py calls ``_emit`` once per stride's resampled output). Why a file of
its own: the mix is the one place where the wet and dry paths meet, with their ramps (gain, wet, dry,
the fault fallback) and the last guards before the device; keeping it apart keeps the worker's loop
readable and the guards easy to find.

During a fallback (a model fault, or the load governor's dry) the wet share goes to the dry line, so
the level stays the same; the soft clip is the identity below LIMIT_KNEE and never exceeds 1.0.
"""

from __future__ import annotations

import numpy as np

from realtime.state import EngineState

LIMIT_KNEE = 0.9  # output soft clip: identity below, tanh knee above, never beyond 1.0


class Mixing(EngineState):
    """``_emit``: the worker's last step for each stride."""

    def _emit(self, wet: np.ndarray) -> None:
        """Mix wet (frames, n_proc) with the latency-aligned dry signal into the output ring."""
        n = len(wet)
        if n == 0:
            return
        dry = self._dry[:n]
        got = self._dry_ring.read(dry)
        dry[got:] = 0.0
        wet_gain, fallback = self._wet.next(n), self._fallback.next(n)
        level = self.level.gains(wet, dry) if self._matching_level else 1.0
        out = wet[:, self._out_map] * (wet_gain * fallback * level)[:, None]
        # During a fallback the wet share goes to the dry line, so the level stays the same.
        out += dry[:, self._dry_map] * (self._dry_gain.next(n) + wet_gain * (1.0 - fallback))[:, None]
        if not np.isfinite(out).all():  # cannot happen with the checks above; the device must never see NaN
            self.bad_output += 1
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)  # audit: output-nan-guard
        self.limited += soft_clip(out)  # audit: output-soft-clip
        self._out_peak = max(self._out_peak, float(np.max(np.abs(out))))
        self.output_tap.write(out)  # audit: output-tap-write
        written = self._out_ring.write(out.astype(np.float32, copy=False))
        if written < n:
            self._out_overruns += n - written


def soft_clip(x: np.ndarray, knee: float = LIMIT_KNEE) -> int:
    """In place: identity for |x| <= knee, then a tanh knee with slope 1 at ``knee`` approaching 1.0.

    Why a soft clip and not a look-ahead limiter: it adds no latency and is transparent for normal
    levels (the passthrough stays exact below the knee); it only has to keep a model blow-up or a
    +24 dB input gain from reaching the device as full-scale square waves. Returns samples changed.
    """
    mag = np.abs(x)
    over = mag > knee
    n = int(np.count_nonzero(over))
    if n:
        head = 1.0 - knee
        x[over] = np.sign(x[over]) * (knee + head * np.tanh((mag[over] - knee) / head))
    return n


class Ramp:
    """A linearly smoothed gain: reaches a new target ``length`` samples after it is set, no clicks."""

    def __init__(self, value: float, length: int) -> None:
        self.value = value
        self.target = value
        self.length = length
        self._step = 0.0
        self._const = np.zeros(0, np.float32)  # what ``next`` returns while the value holds (read-only)

    def set(self, target: float, immediate: bool = False) -> None:
        self.target = target
        if immediate:
            self.value = target
        self._step = abs(target - self.value) / self.length

    def next(self, n: int) -> np.ndarray:
        """The next ``n`` gains; while the value holds, a read-only view of one array made when it changes."""
        if self.value == self.target:
            const = self._const
            if len(const) < n or (len(const) and const[0] != np.float32(self.value)):
                const = self._const = np.full(max(n, len(const)), self.value, np.float32)
                const.flags.writeable = False
            return const[:n]
        direction = 1.0 if self.target > self.value else -1.0
        values = self.value + direction * self._step * np.arange(1, n + 1)
        values = np.minimum(values, self.target) if direction > 0 else np.maximum(values, self.target)
        self.value = float(values[-1])
        return values.astype(np.float32)
