"""What a GUI or CLI may change while streaming (EngineParams) and what it may read (EngineStatus).

Both are frozen dataclasses: a writer builds a new EngineParams and the engine swaps one reference,
which is atomic under the GIL, so the worker always sees a consistent snapshot, never half an update.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

from diffusion.errors import StylehostError

# Where a live stream's PortAudio callback runs by default: in a process of its own (True) that holds only
# the shared rings (realtime/device_process.py), or in the worker's process. docs/live.md has the A/B.
CALLBACK_PROCESS = False


@dataclass(frozen=True)
class EngineParams:
    """Snapshot of user controls. ``style_mix`` is ((style, weight), ...), weights normalised by use; the
    names are the running bundle's (any name passes here; ``Session.check_params`` holds them to the bundle)."""

    style_mix: tuple[tuple[str, float], ...] = (("violin", 1.0),)
    strength: float = 0.7  # transfer strength, 0 = input, 1 = full restyle (model processor)
    steps: int = 4  # diffusion sampling steps (model processor)
    wet: float = 1.0  # wet/dry mix applied by the engine, 0 = dry only
    input_gain_db: float = 0.0
    bypass: bool = False  # dry signal at the same latency (no jump in time when toggled)
    match_level: bool = True  # the wet follows the input's loudness over ~1 s (realtime/level.py)

    def __post_init__(self) -> None:
        if not self.style_mix:
            raise StylehostError("style_mix needs at least one (style, weight) pair")
        for name, weight in self.style_mix:
            # Names only: which styles exist is the bundle's to say (realtime/session.py checks them there).
            if not isinstance(name, str) or not name:  # audit: params-style-name
                raise StylehostError(f"a style name must be a non-empty string, got {name!r}")
            # audit: params-finite-weights
            if not math.isfinite(weight):  # NaN would pass every comparison below and poison the style vector
                raise StylehostError(f"style weight for {name!r} must be a finite number, got {weight}")
            if weight < 0:
                raise StylehostError(f"style weight for {name!r} must be >= 0, got {weight}")
        if sum(w for _, w in self.style_mix) <= 0:
            raise StylehostError("style weights must not all be zero")
        if not 0.0 <= self.strength <= 1.0:  # audit: params-strength-range
            raise StylehostError(f"strength must be in [0, 1], got {self.strength}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or self.steps < 1:
            raise StylehostError(f"steps must be >= 1, got {self.steps}")
        if not 0.0 <= self.wet <= 1.0:
            raise StylehostError(f"wet must be in [0, 1], got {self.wet}")
        if not -60.0 <= self.input_gain_db <= 24.0:
            raise StylehostError(f"input_gain_db must be in [-60, 24], got {self.input_gain_db}")

    def replace(self, **changes: object) -> EngineParams:
        """A new snapshot with ``changes``; unknown names are an error listing the valid ones."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - valid
        if unknown:
            raise StylehostError(f"unknown engine parameters {sorted(unknown)}; valid: {sorted(valid)}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def model_params(self) -> dict[str, object]:
        """The subset a Processor.set_params receives (the engine applies wet/dry/gain/bypass)."""
        total = sum(w for _, w in self.style_mix)
        return {
            "style_mix": {name: w / total for name, w in self.style_mix},
            "strength": self.strength,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Latency:
    """Fixed end-to-end latency, in device samples: output sample n is input sample n - total.

    ``algorithmic`` is the engine's part (processor delay + stride wait + resampler delays and
    hold-back + one callback block + compute margin); ``device_input``/``device_output`` come from
    the stream's reported latency (0 offline). ``buffering`` is measured, not summed: it is the most
    input the chain holds before producing output (waiting for a whole stride, soxr's hold-back),
    and a stride smaller than the block can partly hide inside the block.
    """

    sample_rate: int
    processor: float  # processor.delay_samples at the device rate
    resampler: float  # content delay of both resamplers
    buffering: float  # worst-case stride wait + resampler hold-back for this block size
    block: int  # the worker runs after the callback: one block of buffering
    margin: int  # compute margin for the processor
    device_input: int = 0
    device_output: int = 0
    # ``processor`` split into named terms (Processor.delay_parts), device samples; empty: one term
    processor_parts: tuple[tuple[str, float], ...] = ()

    @property
    def algorithmic(self) -> float:
        return self.processor + self.resampler + self.buffering + self.block + self.margin

    @property
    def total(self) -> float:
        return self.algorithmic + self.device_input + self.device_output

    @property
    def algorithmic_ms(self) -> float:
        return 1000.0 * self.algorithmic / self.sample_rate

    @property
    def total_ms(self) -> float:
        return 1000.0 * self.total / self.sample_rate

    def budget(self) -> list[dict[str, float | str]]:
        """Every term of ``total`` in device samples and ms, the processor's split by framing: the latency
        budget table of docs/live.md, and what `stylehost bench latency` writes beside its measurement."""
        ms = 1000.0 / self.sample_rate
        terms = list(self.processor_parts) or [("processor", self.processor)]
        terms += [("resampler content delay", self.resampler), ("stride wait + resampler hold-back", self.buffering),
                  ("callback block", self.block), ("compute margin", self.margin),
                  ("device input buffer", self.device_input), ("device output buffer", self.device_output)]
        rows: list[dict[str, float | str]] = [
            {"term": name, "samples": round(float(v), 1), "ms": round(float(v) * ms, 2)} for name, v in terms
        ]
        rows.append({"term": "total", "samples": round(self.total, 1), "ms": round(self.total_ms, 2)})
        return rows

    def describe(self) -> str:
        ms = 1000.0 / self.sample_rate
        parts = {
            "processor": self.processor,
            "resampler": self.resampler,
            "stride+hold-back": self.buffering,
            "block": self.block,
            "margin": self.margin,
            "device": self.device_input + self.device_output,
        }
        detail = ", ".join(f"{k} {v * ms:.1f}" for k, v in parts.items())
        return f"{self.total_ms:.1f} ms total ({detail} ms)"


@dataclass(frozen=True)
class EngineStatus:
    """What a status line or panel polls; peaks are since the previous poll."""

    latency_ms: float
    algorithmic_latency_ms: float
    load: float  # processor compute time / real-time budget, recent average (1.0 = just in time)
    dropouts: int  # callbacks that found the output buffer short
    xruns: int  # callbacks with PortAudio status flags set
    overruns: int  # input samples dropped because the input buffer was full
    skipped: int  # input samples the worker skipped to catch up after falling behind
    input_peak: float
    output_peak: float
    extra: dict[str, float] = field(default_factory=dict)
    processor_errors: int = 0  # model calls that raised (the engine played dry meanwhile)
    bad_input: int = 0  # non-finite input samples replaced by silence
    bad_output: int = 0  # model calls that returned non-finite samples (played dry meanwhile)
    limited: int = 0  # output samples the soft clip changed
    fallback: bool = False  # playing dry now because the model failed recently
    level_gain_db: float = 0.0  # gain the level match applies to the wet now (0 when off)
    last_error: str = ""
    overload: str = ""  # the load governor's message while it runs fewer steps than asked, or dry
    steps_running: int = 0  # sampler steps the processor runs now (the governor's cap; 0 = dry)

    def line(self) -> str:
        line = (
            f"latency {self.latency_ms:5.1f} ms | load {self.load * 100:5.1f}% | dropouts {self.dropouts}"
            f" | xruns {self.xruns} | in {_db(self.input_peak):6.1f} dB | out {_db(self.output_peak):6.1f} dB"
        )
        if self.processor_errors or self.bad_output:
            line += f" | model faults {self.processor_errors + self.bad_output}{' (DRY)' if self.fallback else ''}"
        if self.bad_input:
            line += f" | bad input {self.bad_input}"
        if self.overload:
            line += f" | {self.overload}"
        return line


def _db(x: float) -> float:
    return 20.0 * math.log10(max(x, 1e-6))
