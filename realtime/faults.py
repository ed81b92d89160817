"""Bad input and failing models (docs/reliability.md): the guards the worker runs around each block and
each processor call, and what a fault does to the mix.

Thread: the worker (realtime/worker.py calls these; the callback stays copy-only). Why a file of its own:
every protection the mutation audit removes on the model path is here or in mix.py, next to the
counters the status line reports.

Non-finite input samples become 0 and the input is clipped to +-INPUT_CEILING before the dry line and
the processor (so no NaN enters a resampler or a model's history); a processor that raises or returns
non-finite samples is reset, its output zeroed, and the mix crossfades to the dry line (same latency)
until a whole window of clean calls has passed.
"""

from __future__ import annotations

import numpy as np

from realtime.state import EngineState

INPUT_CEILING = 8.0  # +18 dBFS: loud input passes, absurd values (1e30) never reach a model
PROCESSOR_CEILING = 8.0  # a wet sample beyond this is a model fault, not audio; keeps float32 sums finite


class FaultHandling(EngineState):
    """Input sanitising, output checks and the fallback to dry; the counters are in EngineState."""

    def _sanitise_input(self, block: np.ndarray, gain: np.ndarray) -> None:
        """In place: non-finite samples to 0 (counted), clipped, times ``gain`` (per sample), clipped again."""
        # audit: input-sanitiser
        if not np.isfinite(block).all():  # NaN/inf from a driver or a file: never into a model's history
            bad = ~np.isfinite(block)
            self.bad_input += int(bad.sum())
            block[bad] = 0.0
        # audit: input-ceiling-before-gain
        _ceiling(block, INPUT_CEILING)  # before the gain too: 3e38 * 2 overflows
        if gain[0] != 1.0 or gain[-1] != 1.0:  # a ramp is monotonic: both ends at unity is unity throughout
            block *= gain[:, None]
            _ceiling(block, INPUT_CEILING)  # audit: input-ceiling-after-gain

    def _check_output(self, faults_before: int) -> None:
        """After the processors ran on one stride: non-finite outputs are faults, the wet is bounded, and a
        whole window of clean calls after the last fault crossfades back to wet."""
        out = self._stride_out
        if not np.isfinite(out).all():  # audit: processor-nan-check
            for c in np.flatnonzero(~np.isfinite(out).all(axis=0)).tolist():
                self._processor_fault(int(c), None)
        _ceiling(out, PROCESSOR_CEILING)  # audit: processor-ceiling
        if self.processor_errors + self.bad_output > faults_before:
            self._unhealthy = self._recover_calls
        elif self._unhealthy:
            self._unhealthy -= 1
            if not self._unhealthy:
                self._fallback.set(1.0)  # a whole window of clean calls: crossfade back to wet

    def _processor_fault(self, c: int, exc: Exception | None) -> None:
        """Processor ``c`` raised (exc) or returned non-finite samples (None): zero its output, reset its
        state (an overlap-add tail holding NaN would poison every later call) and fall back to dry."""
        self._stride_out[:, c] = 0.0
        if exc is None:
            self.bad_output += 1
            self.last_error = f"processor {c} returned non-finite samples"
        else:
            self.processor_errors += 1
            self.last_error = f"processor {c}: {type(exc).__name__}: {exc}"[:300]
        try:
            self.processors[c].reset()  # audit: fault-resets-processor
        except Exception as reset_exc:  # noqa: BLE001 - keep streaming dry whatever the processor does
            self.last_error += f" (reset failed: {reset_exc})"[:100]
        # audit: fault-falls-back-to-dry
        self._fallback.set(0.0, immediate=True)  # this stride's wet is zeros: a ramp would be a 5 ms dip
        self._unhealthy = self._recover_calls


def _ceiling(x: np.ndarray, limit: float) -> None:
    """In place: ``np.clip(x, -limit, limit)`` as two ufuncs (np.clip's wrapper costs more than the clip here)."""
    np.minimum(x, limit, out=x)
    np.maximum(x, -limit, out=x)
