"""Mutation audit for issue 10 (reliability): remove each protection, run its tests, and see them fail.

    python -m benchmarks.mutation_audit                      # every mutation (~15 min: JACK tests, 3-min hangs)
    python -m benchmarks.mutation_audit --only bundle-hash-check --only output-soft-clip
    python -m benchmarks.mutation_audit --list               # names, files, tests
    python -m benchmarks.mutation_audit --check              # every marker still found exactly once

Each mutation is a text patch on one named file, found by named markers in the code, never by quoting
it: a comment ``# audit: NAME`` at the end of the line to patch, or alone on the line before it (several
names, comma-separated, where rows patch one line). An ``Edit`` replaces that line (indented like it; ""
drops it), or only a fragment of it, or inserts lines before or after it. A marker must occur exactly once
in its file, so the audit breaks loudly when a marker is lost, and not when code around it moves or is
reformatted (tests/benchmarks/test_mutation_audit.py checks that in CI without running anything, and that
no marker is left without a row). The patches are applied to a temporary copy of the working
tree (tracked and untracked, not ignored files), never to the checkout itself; the named tests run there
with ``PYTHONPATH`` pointing at the copy, first without the mutation (they must pass: "with protection"),
then with it (they must fail: "without protection"). A mutation counts as caught only if a test fails and
the failure text matches ``reason``, so a test that breaks for some unrelated cause is not credited.

Writes docs/results/mutation_audit.json and docs/results/mutation_audit.md (with ``--only``, the named rows
are replaced in the existing files and the others kept). Not part of the test suite: too slow for CI.
JACK tests start their own dummy server; the audit runs one pytest at a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
TIMEOUT_S = 900  # one pytest run; the hang mutations end in the tests' own 180 s timeouts

BAD = "tests/realtime/test_bad_audio.py"
RENDER = "tests/realtime/test_render_files.py"
FAULTS = "tests/realtime/test_faults.py"
LOAD = "tests/realtime/test_load.py"
BUNDLE = "tests/export/test_bundle.py"
SECURITY = "tests/export/test_bundle_security.py"
TORCH_CUDA = "tests/realtime/test_torch_cuda.py"
EXCITATION = "tests/diffusion/test_excitation.py"
SIGNALS = "tests/realtime/test_render_signals.py"
OPTIONS = "tests/realtime/test_options.py"
CLI = "tests/realtime/test_cli.py"
C = "realtime/commands.py"
R = "realtime/render.py"
JACKSRV = "tests/benchmarks/test_jackserver.py"
LATFAIL = "tests/benchmarks/test_latency_failures.py"
LATENCY = "tests/benchmarks/test_latency.py"
INTEGRITY = "tests/export/test_bundle_integrity.py"
QUANTIZE = "tests/realtime/test_quantize.py"
GOV = "tests/realtime/test_governor.py"
CLISTART = "tests/realtime/test_cli_startup.py"
PANELSIG = "tests/gui/test_panel_signals.py"
NOTORCH = "tests/realtime/test_no_torch.py"
LIVEJACK = "tests/realtime/test_live_jack.py"
LOWDELAY = "tests/diffusion/test_low_delay_stage.py"


MARKER = re.compile(r"#\s*audit:\s*([a-z0-9-]+(?:\s*,\s*[a-z0-9-]+)*)\s*$")


@dataclass(frozen=True)
class Edit:
    """One patch at the line a ``# audit: MARKER`` comment names (module docstring)."""

    marker: str
    new: str  # the marked line's replacement, one or more lines, indented like it ("" drops the line)
    old: str = ""  # replace only this fragment of the marked line (it must occur there exactly once)
    insert: str = ""  # "before" or "after": insert ``new`` beside the marked line, which stays


@dataclass(frozen=True)
class Mutation:
    name: str
    item: str  # the line of issue 10 it belongs to
    protection: str  # what the code does, in a few words
    file: str  # relative to the repo root
    edits: tuple[Edit, ...]  # each found by its marker in ``file``
    tests: tuple[str, ...]  # pytest node ids (a whole test function runs all its parameters)
    reason: str = ""  # regex that the failure text must match (empty: any failure)
    note: str = ""

    def summary(self, root: Path = ROOT) -> str:
        """The changed lines of every edit, for the table: `old` -> `new`, or drop `old`."""
        lines = _lines(root / self.file)
        parts = []
        for e in self.edits:
            found = _marked(lines, e.marker)
            line = _code(lines[found[0]]).strip() if len(found) == 1 else f"(marker {e.marker}?)"
            new = " ".join(ln.strip() for ln in e.new.splitlines())
            if e.insert:
                parts.append(f"`{new}` {e.insert} `{line}`")
            elif e.old:
                parts.append(f"`{line}` -> `{line.replace(e.old, e.new, 1)}`")
            else:
                parts.append(f"`{line}` -> `{new}`" if new else f"drop `{line}`")
        return "; ".join(parts)


@dataclass
class Outcome:
    passed: bool
    failed: list[str] = field(default_factory=list)  # test case ids that failed or errored
    messages: list[str] = field(default_factory=list)  # first lines of their failure messages
    seconds: float = 0.0
    returncode: int = 0


E = "realtime/engine.py"
W = "realtime/worker.py"
F = "realtime/faults.py"
MIX = "realtime/mix.py"
S = "realtime/session.py"
MUTATIONS: tuple[Mutation, ...] = (
    # ---- bad audio ----------------------------------------------------------------------------------
    Mutation(
        "input-sanitiser", "bad audio: NaN/inf input; state recovers",
        "non-finite input samples become 0 (counted) before the dry line, resampler and processor", F,
        (Edit("input-sanitiser", "if False:  # MUTATION"),),
        (f"{BAD}::test_nan_and_inf_burst_never_reach_the_output_and_the_history_recovers",
         f"{RENDER}::test_nan_in_a_float_file_renders_finite_and_is_reported"),
        reason=r"a NaN reached the processor|assert 0 == 101",
    ),
    Mutation(
        "input-ceiling-before-gain", "bad audio: loud transients, huge values",
        "input clipped to +-8 before the gain (3e38 x gain would overflow to inf)", F,
        (Edit("input-ceiling-before-gain", "pass  # MUTATION"),),
        (f"{BAD}::test_hostile_signals_give_finite_output_within_full_scale",),
        reason=r"overflow encountered",
    ),
    Mutation(
        "input-ceiling-after-gain", "bad audio: loud transients, +24 dB gain",
        "input clipped to +-8 after the gain, so no model ever sees more", F,
        (Edit("input-ceiling-after-gain", ""),),
        (f"{BAD}::test_hostile_signals_give_finite_output_within_full_scale",
         f"{BAD}::test_the_model_never_sees_more_than_the_input_ceiling"),
        reason=r"INPUT_CEILING|<= 8",
    ),
    Mutation(
        "processor-ceiling", "bad audio: model output blow-up",
        "wet samples clipped to +-8 before the mix", F,
        (Edit("processor-ceiling", ""),),
        (f"{BAD}::test_hostile_signals_give_finite_output_within_full_scale",
         f"{BAD}::test_huge_finite_model_output_is_bounded_without_overflow"),
        reason=r"overflow encountered",
    ),
    Mutation(
        "output-soft-clip", "bad audio: finite, bounded output",
        "soft clip on the mixed output (identity below 0.9, never beyond 1.0)", MIX,
        (Edit("output-soft-clip", "self.limited += 0  # MUTATION"),),
        (f"{BAD}::test_hostile_signals_give_finite_output_within_full_scale",),
        reason=r"<= 1\.0",
    ),
    Mutation(
        "output-nan-guard", "bad audio: NaN never reaches the device",
        "last guard in _emit: a non-finite mix becomes 0 before the output ring", MIX,
        (Edit("output-nan-guard", "pass  # MUTATION"),),
        (f"{BAD}::test_nan_and_inf_burst_never_reach_the_output_and_the_history_recovers",
         f"{BAD}::test_model_fault_falls_back_to_dry_at_the_same_latency_and_recovers",
         f"{BAD}::test_non_finite_mix_never_reaches_the_output_ring"),
        reason=r"isfinite",
    ),
    Mutation(
        "processor-raise-fallback", "faults: backend raises mid-run -> dry fallback + report",
        "a processor that raises is caught in the worker: zeroed, reset, dry at the same latency", W,
        (Edit("processor-raise-fallback", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{BAD}::test_model_fault_falls_back_to_dry_at_the_same_latency_and_recovers",
         f"{RENDER}::test_render_survives_model_faults_and_says_so",
         f"{FAULTS}::test_backend_raising_mid_stream_falls_back_to_dry_at_the_same_latency",
         f"{FAULTS}::test_start_stop_cycles_and_a_fault_leak_no_threads"),
        reason=r"backend failed|onnxruntime failed|processor_errors|illegal memory access|backend gone",
    ),
    Mutation(
        "processor-nan-check", "bad audio: model returns NaN -> dry fallback",
        "a processor output with NaN/inf is a fault: zeroed, reset, dry", F,
        (Edit("processor-nan-check", "if False:  # MUTATION"),),
        (f"{BAD}::test_model_fault_falls_back_to_dry_at_the_same_latency_and_recovers",),
        reason=r"samples differ from the dry line",
    ),
    Mutation(
        "fault-resets-processor", "bad audio / faults: model state recovers",
        "the faulty processor is reset (its overlap-add tail holds NaN)", F,
        (Edit("fault-resets-processor", "pass  # MUTATION"),),
        (f"{BAD}::test_model_fault_falls_back_to_dry_at_the_same_latency_and_recovers",),
        reason=r"fallback=True|== 3",
    ),
    Mutation(
        "fault-falls-back-to-dry", "faults: backend raises mid-run -> dry fallback",
        "on a fault the mix jumps to the dry line (same latency) instead of playing the zeroed wet", F,
        (Edit("fault-falls-back-to-dry", "pass  # MUTATION"),),
        (f"{BAD}::test_model_fault_falls_back_to_dry_at_the_same_latency_and_recovers",
         f"{FAULTS}::test_backend_raising_mid_stream_falls_back_to_dry_at_the_same_latency"),
        reason=r"> 0\.4|samples differ from the dry line",
    ),
    Mutation(
        "set-params-refusal", "faults: a processor refusing parameters",
        "set_params exceptions are counted, the worker keeps running", W,
        (Edit("set-params-refusal", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{BAD}::test_processor_refusing_params_does_not_kill_the_worker",),
        reason=r"steps 3 unsupported",
    ),
    Mutation(
        "worker-survives-exceptions", "faults: the worker outlives any bug",
        "the worker loop counts any exception and keeps pumping", W,
        (Edit("worker-survives-exceptions", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{BAD}::test_worker_thread_survives_an_exception_outside_the_processor",),
        reason=r"thread died|worker_errors",
    ),
    # ---- files for render -------------------------------------------------------------------------
    Mutation(
        "render-input-is-file", "bad files: unreadable",
        "missing file / folder named before libsndfile ('System error')", "realtime/render.py",
        (Edit("render-input-is-file", "if False:  # MUTATION"),),
        (f"{RENDER}::test_unreadable_inputs_are_one_line_errors_and_out_is_untouched",),
        reason=r"no such file|it is a folder",
    ),
    Mutation(
        "render-libsndfile-errors-wrapped", "bad files: empty, wrong format",
        "libsndfile's refusal becomes one StylehostError line (exit 2)", "realtime/render.py",
        (Edit("render-libsndfile-errors-wrapped", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{RENDER}::test_unreadable_inputs_are_one_line_errors_and_out_is_untouched",),
        reason=r"LibsndfileError|Format not recognised|Error opening",
    ),
    Mutation(
        "render-zero-frames", "bad files: empty (0 frames)",
        "a 0-frame file is refused instead of replacing OUT with an empty file", "realtime/render.py",
        (Edit("render-zero-frames", "if False:  # MUTATION"),),
        (f"{RENDER}::test_unreadable_inputs_are_one_line_errors_and_out_is_untouched",),
        reason=r"\(0 == 2\)",
    ),
    Mutation(
        "render-out-folder", "bad files: OUT in a missing folder",
        "a missing OUT folder is named before rendering", "realtime/render.py",
        (Edit("render-out-folder", "if False:  # MUTATION"),),
        (f"{RENDER}::test_render_in_place_and_into_a_missing_folder",),
        reason=r"does not exist",
    ),
    Mutation(
        "render-atomic-write", "bad files: OUT written atomically",
        "write to a temp file beside OUT, then os.replace", "realtime/render.py",
        (Edit("render-temp-write", "str(out_path)", old="str(tmp)"), Edit("render-replace", ""),),
        (f"{RENDER}::test_interrupted_render_keeps_the_old_out_and_leaves_no_temp",
         f"{RENDER}::test_render_in_place_and_into_a_missing_folder"),
        reason=r"read_bytes\(\) == before|shape|Not equal|Mismatch",
    ),
    Mutation(
        "render-temp-cleanup", "bad files: no temp file left behind",
        "the temp file is removed when a render fails", "realtime/render.py",
        (Edit("render-temp-cleanup", "if False:  # MUTATION"),),
        (f"{RENDER}::test_interrupted_render_keeps_the_old_out_and_leaves_no_temp",),
        reason=r"leftovers",
    ),
    Mutation(
        "render-keeps-subtype", "bad files: 8-bit",
        "OUT keeps IN's subtype (8-bit stays 8-bit)", "realtime/render.py",
        (Edit("render-keeps-subtype", "if False:  # MUTATION"),),
        (f"{RENDER}::test_unusual_formats_render_correctly",),
        reason=r"PCM_U8",
    ),
    Mutation(
        "render-per-channel", "bad files: 6 channels",
        "--stereo per-channel reaches the engine (one processor per channel)", "realtime/render.py",
        (Edit("render-stereo-mode", "\"mid\",", old="stereo_mode,"),),
        (f"{RENDER}::test_unusual_formats_render_correctly",),
        reason=r"Not equal to tolerance",
    ),
    Mutation(
        "render-streamed-reads", "bad files: hours long",
        "the input is read block by block (injected: a whole-file read)", "realtime/render.py",
        (Edit("render-stream", "_whole = src.read(dtype=\"float32\", always_2d=True)  # MUTATION\nsrc.seek(0)",
              insert="before"),),
        (f"{RENDER}::test_long_files_are_streamed_not_loaded",),
        reason=r"< 8000000",
    ),
    # ---- faults: the stream dies --------------------------------------------------------------------
    Mutation(
        "stream-death-detection", "faults: device/server disappears -> reported",
        "LiveSession.active: PortAudio's flag and the 2 s callback stall", "realtime/audio.py",
        (Edit("stream-alive", "return self._stream is not None  # MUTATION"),),
        (f"{FAULTS}::test_server_stop_mid_stream_is_reported_to_the_controller_and_leaks_no_thread",
         f"{FAULTS}::test_live_command_exits_with_one_line_when_the_server_stops"),
        reason=r"message|TimeoutExpired|returncode",
        note="with no detection the dead stream is later stopped and PortAudio hangs until the tests' timeouts",
    ),
    Mutation(
        "stall-detection", "faults: device/server disappears -> reported",
        "no callback for 2 s counts as dead (alone, without PortAudio's flag)", "realtime/audio.py",
        (Edit("stream-alive", "", old=" and not self._stalled()"),),
        (f"{FAULTS}::test_server_stop_mid_stream_is_reported_to_the_controller_and_leaks_no_thread",),
        reason=r"message|TimeoutExpired|detected_s",
    ),
    Mutation(
        "abandon-dead-stream", "faults: server disappears -> no 10-minute hang",
        "a dead stream is abandoned, not stopped (PortAudio 19.6 JACK would wait 10 min)", "realtime/audio.py",
        (Edit("abandon-dead-stream", "if True:  # MUTATION"),),
        (f"{FAULTS}::test_server_stop_mid_stream_is_reported_to_the_controller_and_leaks_no_thread",),
        reason=r"TimeoutExpired|timed out",
        note="the child hangs in Pa_StopStream until the test's 180 s timeout",
    ),
    Mutation(
        "skip-pa-terminate", "faults: server disappears -> the process exits",
        "sounddevice's exit handler (Pa_Terminate) is skipped after an abandon", "realtime/audio.py",
        (Edit("skip-pa-terminate", "pass  # MUTATION"),),
        (f"{FAULTS}::test_server_stop_mid_stream_is_reported_to_the_controller_and_leaks_no_thread",),
        reason=r"TimeoutExpired|timed out",
        note="the child hangs in Pa_Terminate at exit until the test's 180 s timeout",
    ),
    Mutation(
        "worker-joined-on-stop", "faults: restart without thread leaks",
        "LiveSession.stop always stops and joins the engine's worker", "realtime/audio.py",
        (Edit("worker-joined-on-stop", "pass  # MUTATION"),),
        (f"{FAULTS}::test_server_stop_mid_stream_is_reported_to_the_controller_and_leaks_no_thread",
         f"{FAULTS}::test_start_stop_cycles_and_a_fault_leak_no_threads"),
        reason=r"active_count|after",
    ),
    # ---- faults: bundles refused before streaming ---------------------------------------------------
    Mutation(
        "bundle-hash-check", "faults: hash mismatch refused",
        "every file's sha256 checked against the manifest", "export/bundle.py",
        (Edit("bundle-hash-check", "if False:  # MUTATION"),),
        (f"{BUNDLE}::test_damaged_bundles_are_refused_with_one_clear_error",
         f"{BUNDLE}::test_tampered_bundle_is_refused_before_any_stream"),
        reason=r"does not match its sha256|DID NOT RAISE",
    ),
    Mutation(
        "bundle-newer-format", "faults: newer-format bundle refused",
        "format_version > FORMAT_VERSION refused with 'upgrade stylehost'", "export/bundle.py",
        (Edit("bundle-newer-format", "if False:  # MUTATION"),),
        (f"{BUNDLE}::test_damaged_bundles_are_refused_with_one_clear_error",),
        reason=r"DID NOT RAISE|format version 2",
    ),
    Mutation(
        "bundle-missing-file", "faults: truncated bundle (file missing) refused",
        "every listed file must exist", "export/bundle.py",
        (Edit("bundle-missing-file", "if False:  # MUTATION"),),
        (f"{BUNDLE}::test_damaged_bundles_are_refused_with_one_clear_error",),
        reason=r"missing resynth|No such file|FileNotFoundError",
    ),
    Mutation(
        "bundle-required-keys", "security: manifest validation",
        "every required manifest key present with its type", "export/bundle.py",
        (Edit("bundle-required-keys", "continue  # MUTATION"),),
        (f"{BUNDLE}::test_damaged_bundles_are_refused_with_one_clear_error",),
        reason=r"missing key|KeyError",
    ),
    Mutation(
        "bundle-manifest-json", "faults: corrupt bundle refused",
        "a manifest that is not JSON is one line, not a traceback", "export/bundle.py",
        (Edit("bundle-manifest-json", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{BUNDLE}::test_damaged_bundles_are_refused_with_one_clear_error",),
        reason=r"JSONDecodeError",
    ),
    Mutation(
        "bundle-graph-in-files", "faults: corrupt bundle refused",
        "every graph must be listed (and so hashed) in 'files'", "export/bundle.py",
        (Edit("bundle-graph-in-files", "if False:  # MUTATION"),),
        (f"{SECURITY}::test_a_graph_missing_from_files_is_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-plain-names", "security: manifest validation (paths)",
        "file names are plain names inside the bundle (no '/', '..', absolute paths)", "export/bundle.py",
        (Edit("bundle-plain-names", "if False:  # MUTATION"),),
        (f"{SECURITY}::test_manifest_pointing_outside_the_folder_is_refused",
         f"{BUNDLE}::test_damaged_bundles_are_refused_with_one_clear_error"),
        reason=r"plain name|DID NOT RAISE",
        note="still refused, by the link/outside check: the tests see that check's message",
    ),
    Mutation(
        "bundle-link-or-outside", "security: manifest validation (links)",
        "a listed file that is a symlink or resolves outside the folder is refused", "export/bundle.py",
        (Edit("bundle-link-or-outside", "if False:  # MUTATION"),),
        (f"{SECURITY}::test_manifest_pointing_outside_the_folder_is_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-finite-sampler", "security: manifest validation (numbers)",
        "sampler constants must be finite (JSON allows NaN/Infinity)", "export/bundle.py",
        (Edit("bundle-finite-sampler", "", old=" or not np.isfinite(value)"),),
        (f"{SECURITY}::test_non_finite_manifest_numbers_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-finite-style-table", "security: manifest validation (numbers)",
        "the style table must hold finite numbers", "export/bundle.py",
        (Edit("bundle-finite-style-table", "if False:  # MUTATION"),),
        (f"{SECURITY}::test_non_finite_manifest_numbers_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "ort-load-wrapped", "faults: truncated ONNX (hash rewritten to match) refused",
        "ONNX Runtime's load error becomes one StylehostError line before any stream", "realtime/backends/ort.py",
        (Edit("ort-load-wrapped", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{SECURITY}::test_truncated_onnx_with_a_matching_hash_is_refused_before_any_stream",),
        reason=r"onnxruntime|InvalidProtobuf|Fail|Load model",
    ),
    # ---- security ------------------------------------------------------------------------------------
    Mutation(
        "torch-weights-only", "security: no unsafe torch.load",
        "torch.load(..., weights_only=True) for the torch backend's model.pt", "diffusion/checkpoint.py",
        (Edit("torch-weights-only", "weights_only=False", old="weights_only=True"),),
        (f"{SECURITY}::test_malicious_model_pt_with_matching_hash_is_refused_and_runs_nothing",
         f"{SECURITY}::test_runtime_never_unpickles"),
        reason=r"TextIOWrapper|DID NOT RAISE|marker",
        note="the payload ran: the file object its open() returned reached load_state_dict (TypeError)",
    ),
    Mutation(
        "no-pickle-in-runtime", "security: no pickle in the runtime path",
        "(injected) `import pickle` in a runtime module is caught by the source check", "realtime/backends/torch.py",
        (Edit("runtime-imports", "import pickle  # noqa: F401  MUTATION", insert="after"),),
        (f"{SECURITY}::test_runtime_never_unpickles",),
        reason=r"import pickle",
    ),
    Mutation(
        "params-finite-weights", "security: preset validation",
        "style weights must be finite (NaN passes every comparison)", "realtime/params.py",
        (Edit("params-finite-weights", "if False:  # MUTATION"),),
        (f"{SECURITY}::test_hostile_preset_values_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "params-strength-range", "security: preset validation",
        "strength in [0, 1] (NaN refused)", "realtime/params.py",
        (Edit("params-strength-range", "if False:  # MUTATION"),),
        (f"{SECURITY}::test_hostile_preset_values_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "params-known-styles", "security: preset validation",
        "a preset's style names must be the panel's (built-in) styles; a bundle's own are checked when it runs",
        "gui/presets.py",
        (Edit("preset-known-styles", "pass  # MUTATION"),),
        (f"{SECURITY}::test_hostile_preset_values_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "preset-steps-not-bool", "security: preset validation",
        "`steps: true` refused (True == 1 in Python)", "gui/presets.py",
        (Edit("preset-steps-not-bool", "", old="isinstance(steps, bool) or "),),
        (f"{SECURITY}::test_hostile_preset_values_are_refused",),
        reason=r"steps must be one of",
        note="EngineParams refuses bool steps too, so the preset is still refused; the test sees the other message",
    ),
    Mutation(
        "preset-pad-finite", "security: preset validation",
        "the pad position must be two finite numbers", "gui/presets.py",
        (Edit("preset-pad-finite", "", old=" and math.isfinite(v)"),),
        (f"{SECURITY}::test_hostile_preset_pad_is_refused",),
        reason=r"DID NOT RAISE",
    ),
    # ---- load -----------------------------------------------------------------------------------------
    Mutation(
        "params-writer-lock", "load: parameters hammered from several threads",
        "set_params serialises writers, so a partial update never rebases on a stale snapshot", E,
        (Edit("params-writer-lock", "if True:  # MUTATION"),),
        (f"{LOAD}::test_params_hammered_from_threads_while_streaming",
         f"{LOAD}::test_partial_updates_from_threads_are_never_lost"),
        reason=r"lost",
    ),
    Mutation(
        "soak-leak", "load: soak, no growth in memory",
        "(injected) every output block kept: the short soak's memory check catches it", MIX,
        (Edit("output-tap-write", "self.__dict__.setdefault(\"_leak\", []).append(out.copy())  # MUTATION",
              insert="after"),),
        (f"{LOAD}::test_short_soak_no_growth_in_memory_latency_or_dropouts",),
        reason=r"< \(64 \* 1024\)",
    ),
    # ---- issue 19: hardening, and issue 16: no torch on the live path ----------------------------------
    Mutation(
        "eval-excitation-lag", "issue 17: eval at look-ahead 0 scored an excitation the live engine cannot give",
        "eval and the live processor refuse a stage reading more frames after the emitted ones than the lagging "
        "live excitation allows", "diffusion/excitation.py",
        (Edit("eval-excitation-lag", "if False:  # MUTATION"),),
        ("tests/diffusion/test_low_delay_stage.py::test_eval_refuses_what_the_live_excitation_cannot_play",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "processor-excitation-lag", "issue 17: a lag-free excitation lets a stage with no look-ahead play",
        "the live excitation window is filled as far as the generator's own lag (lag_hops), not one hop short "
        "whatever the lag", "realtime/model_processor.py",
        (Edit("processor-excitation-lag", "hop", old="self._excitation.delay_samples"),),
        ("tests/diffusion/test_low_delay_stage.py::test_a_lag_free_excitation_plays_a_stage_with_no_look_ahead",),
        reason=r"Mismatched elements",
    ),
    Mutation(
        "processor-gate-glide", "issue 15: a gated bundle switches between its two inputs with no click",
        "the live gate glides its weight over calls (one-pole, tau_s) exactly as the offline reference does",
        "realtime/model_processor.py",
        (Edit("processor-gate-glide", "self._gate.raw_weight(self._gate_win)",
              old="self._gate.smooth(self._gate.raw_weight(self._gate_win))"),),
        ("tests/diffusion/test_input_gate.py::test_the_processor_plays_a_gated_bundle_as_the_offline_reference",),
        reason=r"Mismatched elements|approx",
    ),
    Mutation(
        "gate-fit-sample-weight", "issue 15: a benefit gate weighs each window by the dB its choice saves",
        "the logistic fit weights each window's log-loss by its sample weight", "diffusion/gate_fit.py",
        (Edit("gate-fit-sample-weight", "sw = np.ones(n)", insert="after"),),
        ("tests/diffusion/test_input_gate.py::test_sample_weights_decide_between_conflicting_labels",),
        reason=r"approx|assert",
    ),
    Mutation(
        "callback-never-waits", "CI: a slow model's run counted 47 xruns against 26 in a fast one (load, not waiting)",
        "the callback takes what the output ring holds and fills the rest; it never waits for the worker",
        "realtime/callback.py",
        (Edit("callback-never-waits", "deadline = time.perf_counter() + 0.2  # MUTATION: wait for the worker\n"
              "while self._out_ring.read_available < frames and time.perf_counter() < deadline:\n"
              "    time.sleep(0.001)", insert="before"),),
        (f"{LIVEJACK}::test_slow_model_drops_out_callback_stays_on_time_and_recovers",),
        reason=r"callback_max_ms",
    ),
    Mutation(
        "jack-reclaim-dead-slots", "CI: 40 JACK tests failed once, every jackd said 'Failed to open server'",
        "a new private server first frees the registry slots of servers that died by SIGKILL (jack2 has 8)",
        "benchmarks/jackserver.py",
        (Edit("jack-reclaim-dead-slots", "pass  # MUTATION"),),
        (f"{JACKSRV}::test_servers_killed_with_sigkill_do_not_use_up_jacks_eight_server_slots",),
        reason=r"Failed to open server",
    ),
    Mutation(
        "features-hann", "issue 17: a low-delay stage must play after a denoiser trained on Hann features",
        "the log-mel features keep the Hann window whatever resynthesis pair the config names",
        "diffusion/features.py",
        (Edit("features-hann", "return self.log_mel_from_magnitude(self.magnitude(*self.stft(wave)))",
              old="return self.log_mel_from_magnitude(self.magnitude(*self.feature_stft(wave)))"),),
        (f"{LOWDELAY}::test_the_low_delay_pair_keeps_the_hann_features",),
        reason=r"Tensor-likes are not close|not equal",
    ),
    Mutation(
        "manifest-latency-span", "issue 17: a bundle on the low-delay pair said 480 samples where it plays 192",
        "the manifest's latency counts the synthesis span, not the frame length",
        "export/onnx.py",
        (Edit("manifest-latency-span", "latency = spec.n_fft + (cfg.lookahead - 1) * spec.hop",
              old="latency = spec.synthesis_span + (cfg.lookahead - 1) * spec.hop"),),
        (f"{LOWDELAY}::test_the_bundle_takes_the_stages_pair_and_its_shorter_delay",),
        reason=r"latency|assert",
    ),
    Mutation(
        "stage-taps-aligned", "issue 17: a stage without look-ahead starts from the shipped one's weights",
        "the first layer's time taps are copied aligned on the emitted frame",
        "diffusion/guide.py",
        (Edit("stage-taps-aligned", "new[..., want.context + j] = old[..., have.context + j + 1]",
              old="new[..., want.context + j] = old[..., have.context + j]"),),
        (f"{LOWDELAY}::test_dropping_the_look_ahead_keeps_every_other_weight",),
        reason=r"Tensor-likes are not close",
    ),
    Mutation(
        "jack-strand-dead-server", "CI run aborted (Pa_Terminate's assertion) after its JACK server stopped answering",
        "a server that no longer cycles is left alone at exit: PortAudio is never terminated on it",
        "benchmarks/jackserver.py",
        (Edit("jack-strand-dead-server", "sd._terminate()  # MUTATION: terminate PortAudio on a dead server"),),
        (f"{JACKSRV}::test_a_server_dying_under_portaudio_fails_clearly_instead_of_aborting_the_process",),
        reason=r"Assertion|returncode|-6",
        # failure seen: python: src/hostapi/jack/pa_jack.c:820: Terminate: Assertion `err == 0' failed.
    ),
    Mutation(
        "jack-probe-in-child", "issue 19: bench latency --server NAME segfaulted (rc 139) with another server up",
        "server_running probes in a child process: a libjack client here on a second server broke Pa_Terminate",
        "benchmarks/jackserver.py",
        (Edit("jack-probe-in-child", "jack = _jack()  # MUTATION: the probe client in this process\n"
              "try:\n"
              "    jack.Client(f\"probe-{uuid.uuid4().hex[:6]}\", no_start_server=True, servername=name).close()\n"
              "except jack.JackOpenError:\n"
              "    return False\n"
              "return True", insert="before"),),
        (f"{JACKSRV}::test_bench_latency_through_a_named_server_while_portaudio_sits_on_another",),
        reason=r"rc -11|assert -11 == 0",
        # failure seen: AssertionError: rc -11 (a segfault is -11) | assert -11 == 0
    ),
    Mutation(
        "bench-named-server-must-run", "issue 19: bench latency --server NAME when NAME is not running",
        "a --server that does not answer is one error line naming the running ones, never another server",
        "benchmarks/latency.py",
        (Edit("bench-named-server-must-run", "if False:  # MUTATION"),),
        (f"{JACKSRV}::test_bench_latency_names_a_server_that_is_not_running_instead_of_crashing",),
        reason=r"assert 0 == 2",
        # failure seen: AssertionError: rc 0 | assert 0 == 2 (it measured JACK_DEFAULT_SERVER instead)
    ),
    Mutation(
        "bench-dry-is-no-figure", "session 21: bench latency reported the governor's dry line as the model's latency",
        "a run whose load governor played the dry line for over 1% of its strides is an error, with no "
        "end_to_end_latency_ms",
        "benchmarks/latency.py",
        (Edit("bench-dry-is-no-figure", "if False:  # MUTATION"),),
        (f"{LATFAIL}::test_a_model_the_governor_played_dry_is_no_model_figure",),
        reason=r"KeyError: 'error'",
    ),
    Mutation(
        "governor-last-step-on-late-calls", "session 21: the governor played a fitting one-step model dry",
        "at one step only late calls take the model off, not a mean load above high_load",
        "realtime/governor.py",
        (Edit("governor-last-step-on-late-calls", "and self.cap > 0", old="and self.cap > 1"),),
        (f"{GOV}::test_one_step_at_a_high_load_that_fits_keeps_playing",),
        reason=r"assert \(0 == 1\)",
    ),
    Mutation(
        "no-pulse-is-nan", "issue 19: bench latency reported 0.000 ms when no pulse came back",
        "find_arrivals returns NaN when the best match holds < 1e-3 of the pulse's energy (silence is no arrival)",
        "benchmarks/jackserver.py",
        (Edit("no-pulse-is-nan", "if False:  # MUTATION"),),
        (f"{LATFAIL}::test_a_recording_without_the_pulse_has_no_arrival",
         f"{LATFAIL}::test_lost_pulses_are_never_counted_as_a_delay",
         f"{LATFAIL}::test_an_engine_returning_silence_is_a_failed_measurement"),
        reason=r"isnan|assert np\.False_|KeyError: 'error'",
        # failure seen: all three: isnan(0.0) is False | assert np.False_ | KeyError: 'error'
    ),
    Mutation(
        "no-pulse-fails-the-command", "issue 19: no pulse back is a failed measurement, exit non-zero",
        "after writing the JSON (failures recorded as errors), runs without a pulse end the command: one line, exit 2",
        "benchmarks/latency.py",
        (Edit("no-pulse-fails-the-command", "if False:  # MUTATION after the JSON"),),
        (f"{LATFAIL}::test_bench_latency_with_a_silent_model_exits_2_and_writes_no_latency",),
        reason=r"assert 0 == 2",
        # failure seen: AssertionError: assert 0 == 2 (main(['bench', 'latency', ...]) returned 0)
    ),
    Mutation(
        "bench-latency-seconds-range", "issue 19: every numeric option checked at the parser",
        "--seconds is a finite number in [0.5, 3600] (argtypes.ranged_float): nan is argparse's one line, exit 2",
        "benchmarks/latency.py",
        (Edit("bench-latency-seconds-range", "float", old="ranged_float(MIN_SECONDS, MAX_SECONDS)"),),
        (f"{LATENCY}::test_numeric_options_are_range_checked_at_the_parser",),
        reason=r"cannot convert float NaN|DID NOT RAISE",
        # failure seen: 4 of 16 cases: --seconds nan -> ValueError: cannot convert float NaN to integer (the
        # traceback of the issue), inf -> OverflowError, 0 and -5 -> DID NOT RAISE SystemExit (exit 2 from the
        # handler's "holds no pulse" line, not the parser's)
    ),
    Mutation(
        "bundle-external-data-listed", "issue 19: ONNX external data bypasses the bundle hashes",
        "every external-data file a graph reads must be listed (and so hashed) in 'files'", "export/bundle.py",
        (Edit("bundle-external-data-listed", "if False:  # MUTATION"),),
        (f"{INTEGRITY}::test_unlisted_external_data_is_refused_before_any_stream",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-external-data-hashed", "issue 19: ONNX external data bypasses the bundle hashes",
        "a listed external-data file is hashed like the graphs (the sha256 check, for w.bin)", "export/bundle.py",
        (Edit("bundle-hash-check", "if False:  # MUTATION"),),
        (f"{INTEGRITY}::test_listed_external_data_is_hashed_like_the_graphs",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-external-data-inside", "issue 19: ONNX external data outside the bundle folder",
        "an external-data location must be a plain file name in the folder (no '..', absolute path, subfolder, "
        "ORT memory tag)", "export/bundle.py",
        (Edit("bundle-external-data-inside", "if False:  # MUTATION"),),
        (f"{INTEGRITY}::test_external_data_outside_the_folder_is_refused",),
        reason=r"Regex pattern did not match|DID NOT RAISE",
        note="still refused, as not listed in 'files' (listed names are plain): the test sees that message",
    ),
    Mutation(
        "bundle-epcontext-refused", "issue 19: files a graph can make a provider read",
        "a graph with an EPContext node (a precompiled engine named by path) is refused", "export/bundle.py",
        (Edit("bundle-epcontext-refused", "if False:  # MUTATION"),),
        (f"{INTEGRITY}::test_an_epcontext_node_is_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-optional-graph-checked", "issue 16: the int8 denoiser is held to the manifest like the others",
        "an optional graph (denoiser_int8) must take the denoiser's inputs and give its outputs", "export/bundle.py",
        (Edit("bundle-optional-graph-checked", "if False:  # MUTATION"),),
        (f"{QUANTIZE}::test_an_int8_graph_of_the_wrong_shape_is_refused_at_load",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "int8-needs-graph", "issue 16: --precision int8 without an int8 graph",
        "asking for int8 from a bundle without one is one error naming `stylehost export quantize`, not fp32",
        "realtime/backends/ort.py",
        (Edit("int8-needs-graph", "if False:  # MUTATION"),),
        (f"{QUANTIZE}::test_int8_is_refused_where_it_cannot_run",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "stream-excitation-tail-cut", "issue 15: the offline reference hears what the live denoiser hears",
        "with the denoiser fed the excitation, each offline window's newest column is the frame with its last hop "
        "cut, as the live generator's one-hop lag leaves it", "diffusion/stream.py",
        (Edit("stream-excitation-tail-cut", "cut = excited  # MUTATION: the newest column whole"),),
        (f"{EXCITATION}::test_processor_with_excitation_equals_offline_reference",),
        reason=r"Mismatched elements",
    ),
    Mutation(
        "torch-cuda-fp16-parity", "issue 18: fp16 only where parity allows",
        "torch-cuda's auto precision keeps the fp16 denoiser only within the fp16 tolerance of its fp32 output",
        "realtime/backends/torch_cuda.py",
        (Edit("torch-cuda-fp16-parity", "if True:  # MUTATION"),),
        (f"{TORCH_CUDA}::test_fp16_is_refused_where_it_does_not_match",),
        reason=r"'fp16' == 'fp32'",
    ),
    Mutation(
        "torch-cuda-gpu-first", "issue 18: no GPU is one line, torch not loaded",
        "torch-cuda asks whether a GPU is there before importing torch, so auto on a CPU machine never loads it",
        "realtime/backends/torch_cuda.py",
        (Edit("torch-cuda-gpu-first", "if False:  # MUTATION"),),
        (f"{TORCH_CUDA}::test_no_gpu_is_one_line_and_loads_no_torch",),
    ),
    Mutation(
        "bundle-unreadable-graph", "issue 19: a graph the loader cannot read is refused",
        "a graph file that is not a readable ONNX protobuf is one StylehostError line at load", "export/graphfile.py",
        (Edit("bundle-unreadable-graph", "except ZeroDivisionError as exc:  # MUTATION"),),
        (f"{SECURITY}::test_truncated_onnx_with_a_matching_hash_is_refused_before_any_stream",
         f"{INTEGRITY}::test_a_graph_that_is_not_onnx_is_refused"),
        reason=r"_Unreadable",
    ),
    Mutation(
        "bundle-array-shapes", "issue 19: manifest arrays that do not fit the graphs",
        "style_table width, window, n_mels, n_fft, emit and the manifest's graph shapes must fit the graph files",
        "export/bundle.py",
        (Edit("bundle-array-shapes", "return True  # MUTATION"),),
        (f"{INTEGRITY}::test_manifest_arrays_that_do_not_fit_the_graphs_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "bundle-io-names", "issue 19: manifest arrays that do not fit the graphs",
        "the manifest's graph input/output names must be the graph file's, in order (TensorRT binds by them)",
        "export/bundle.py",
        (Edit("bundle-io-names", "if False:  # MUTATION"),),
        (f"{INTEGRITY}::test_manifest_arrays_that_do_not_fit_the_graphs_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "pump-bounded", "issue 19: an overloaded live engine could not be stopped, then aborted",
        "the worker's pump handles the blocks waiting when called, then returns (sees stop and the catch-up skip)", W,
        (Edit("pump-bounded", "while self._in_ring.read_available >= B:  # MUTATION"),),
        (f"{GOV}::test_pump_returns_while_input_keeps_arriving",),
        reason=r"< 3\.0",
    ),
    Mutation(
        "governor-steps-down", "issue 19: an overloaded engine degrades (fewer steps, then dry), not crackles",
        "the load governor judges every call's compute time and caps the steps (0 = dry at the same latency)", W,
        (Edit("governor-observes", "cap = None  # MUTATION"),),
        (f"{GOV}::test_overloaded_live_engine_steps_down_stops_dropping_and_stops_at_once",
         f"{GOV}::test_hopeless_model_plays_dry_at_the_same_latency"),
        reason=r"cap <= 2|playing dry|OVERLOAD",
    ),
    Mutation(
        "panel-closes-on-signals", "issue 19: the panel aborted on Ctrl-C (SIGABRT)",
        "SIGINT/SIGTERM schedule the window's close instead of raising inside a Qt slot", "gui/app.py",
        (Edit("panel-closes-on-signals", "pass  # MUTATION"),),
        (f"{PANELSIG}::test_signal_closes_the_panel_cleanly",),
        reason=r"in poll|-6 == 0|KeyboardInterrupt",
    ),
    Mutation(
        "cli-builds-only-the-chosen-leaf", "issue 19: every command's module imported up front (2 s, PyQt6)",
        "the parser adds arguments (and imports the module) of the chosen command only", "stylehost/cli.py",
        (Edit("cli-builds-only-the-chosen-leaf", "if True:  # MUTATION"),),
        (f"{CLISTART}::test_top_level_help_imports_nothing_heavy",),
        reason=r"PyQt6|torch|onnxruntime|sounddevice",
    ),
    Mutation(
        "cli-ctrl-c-while-importing", "issue 19: Ctrl-C in the first 2 s gave a raw traceback",
        "parsing (and the imports it triggers) is inside the KeyboardInterrupt handler", "stylehost/cli.py",
        (Edit("cli-main-try", "args = build_parser(argv).parse_args(argv)  # MUTATION", insert="before"),
         Edit("cli-parse", "")),
        (f"{CLISTART}::test_ctrl_c_while_a_command_module_imports_is_one_line",),
        reason=r"KeyboardInterrupt",
    ),
    Mutation(
        "live-channels-refused", "issue 19: --channels 0|99 silently ran with 2",
        "asked-for channels are honoured or refused with the devices' counts", "realtime/audio.py",
        (Edit("live-channels-refused", "if False:  # MUTATION"),),
        (f"{LIVEJACK}::test_channels_the_device_cannot_give_are_refused",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "no-torch-live-path", "issue 16: no torch on the live path",
        "the processors take the spectrogram config from the numpy-only diffusion/spectrogram.py",
        "realtime/processor.py",
        (Edit("no-torch-live-path", "diffusion.features", old="diffusion.spectrogram"),),
        (f"{NOTORCH}::test_no_module_of_the_live_path_imports_torch",
         f"{NOTORCH}::test_render_with_the_shipped_model_loads_no_torch"),
        reason=r"True|libtorch",
    ),
    Mutation(
        "render-signal-cleanup", "issue 19: SIGTERM/SIGHUP during render leave no temp file",
        "the CLI turns SIGTERM/SIGHUP into an exception for the render (cleanup runs, exit 128+signum)", C,
        (Edit("render-signal-cleanup", "if True:  # MUTATION"),),
        (f"{SIGNALS}::test_sigterm_or_sighup_mid_render_removes_the_temp_and_exits_128_plus_the_signal",),
        reason=r"temp files left behind",
    ),
    Mutation(
        "render-stale-temps", "issue 19: a temp left by a SIGKILLed render is removed",
        "the next render of OUT removes OUT's temps whose PID is not alive", R,
        (Edit("render-stale-temps", ""),),
        (f"{SIGNALS}::test_a_temp_left_by_a_killed_render_is_removed_by_the_next_render_of_that_out",),
        reason=r"\.out\.tmp-\d+\.wav",
    ),
    Mutation(
        "render-stale-temps-live-kept", "issue 19: a running render's temp is never swept",
        "a temp whose PID is alive (another render of the same OUT) is kept", R,
        (Edit("render-stale-temps-live-kept", "", old=" and not _alive(int(match.group(1)))"),),
        (f"{SIGNALS}::test_a_temp_left_by_a_killed_render_is_removed_by_the_next_render_of_that_out",),
        reason=r"assert \[.*\] == \[",
    ),
    Mutation(
        "option-margin-range", "issue 19: --margin-ms nan|inf|-1000 refused",
        "--margin-ms finite in [0, 100], at the parser", C,
        (Edit("option-margin-range", "float", old="ranged_float(*MARGIN_MS)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-strength-range", "issue 19: --strength 0 refused",
        "--strength in (0, 1], at the parser", C,
        (Edit("option-strength-range", "float", old="ranged_float(0.0, 1.0, lo_open=True)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-wet-range", "issue 19: --wet outside [0, 1] refused",
        "--wet in [0, 1], at the parser", C,
        (Edit("option-wet-range", "float", old="ranged_float(0.0, 1.0)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-channels-range", "issue 19: --channels 0|99 refused (ran as 2)",
        "--channels in [1, 32], at the parser (LiveSession refuses more than the devices have)", C,
        (Edit("option-channels-range", "int", old="ranged_int(*CHANNELS)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-live-blocksize-range", "issue 19: live --blocksize outside [16, 8192] refused",
        "live --blocksize in [16, 8192], at the parser", C,
        (Edit("option-live-blocksize-range", "int", old="ranged_int(*LIVE_BLOCKSIZE)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-render-blocksize-range", "issue 19: render --blocksize 1000000 refused (83 s, 1.1 GB)",
        "render --blocksize in [16, 65536], at the parser", C,
        (Edit("option-render-blocksize-range", "int", old="ranged_int(*RENDER_BLOCKSIZE)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-samplerate-range", "issue 19: --samplerate outside [8000, 192000] refused",
        "live --samplerate in [8000, 192000], at the parser", C,
        (Edit("option-samplerate-range", "int", old="ranged_int(*SAMPLE_RATES)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-seconds-range", "issue 19: --seconds 0|-5|inf|nan refused",
        "live --seconds finite and > 0, at the parser", C,
        (Edit("option-seconds-range", "float", old="ranged_float(0.0, None, lo_open=True)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "option-steps-range", "issue 19: --steps outside [1, 64] refused",
        "--steps an integer in [1, 64], at the parser", C,
        (Edit("option-steps-range", "int", old="ranged_int(1, STEPS_MAX)"),),
        (f"{OPTIONS}::test_out_of_range_numbers_are_refused_by_the_parser",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "render-out-is-folder", "issue 19: OUT is a folder (x.wav, x)",
        "a folder as OUT is named before rendering (was found by os.replace after the render / 'unknown extension')",
        R,
        (Edit("render-out-is-folder", "if False:  # MUTATION"),),
        (f"{RENDER}::test_out_problems_are_named_before_anything_is_rendered",),
        reason=r"Regex pattern did not match",
    ),
    Mutation(
        "render-out-not-regular", "issue 19: OUT is a FIFO or device",
        "an existing OUT that is not a regular file is refused, never replaced", R,
        (Edit("render-out-not-regular", "if False:  # MUTATION"),),
        (f"{RENDER}::test_out_problems_are_named_before_anything_is_rendered",),
        reason=r"DID NOT RAISE",
    ),
    Mutation(
        "render-known-extensions", "issue 19: unknown OUT extension names the known ones",
        "an unknown or missing extension is said as such, with every writable extension listed", R,
        (Edit("render-known-extensions",
              "raise StylehostError(f\"cannot write {out_path.name!r}: unknown extension; use one of wav, flac, "
              "ogg, aiff\")  # MUTATION"),),
        (f"{RENDER}::test_out_problems_are_named_before_anything_is_rendered",),
        reason=r"Regex pattern did not match",
    ),
    Mutation(
        "render-temp-created-first", "issue 19: read-only OUT folder",
        "the temp file is created before rendering, so an unwritable folder is named (was 'System error.')", R,
        (Edit("render-temp-created-first", ""),),
        (f"{RENDER}::test_an_unwritable_out_folder_is_named_before_rendering",),
        reason=r"Regex pattern did not match",
        note="needs root and a permitted tmpfs mount (read-only tmpfs); without root the chmod-555 branch runs",
    ),
    Mutation(
        "render-disk-full-libsndfile", "issue 19: full disk during writing",
        "libsndfile's 'System error.' with no space left on OUT's disk is said as 'disk full'", R,
        (Edit("render-disk-full-libsndfile", "full = False  # MUTATION"),),
        (f"{RENDER}::test_a_full_disk_is_named_and_out_is_kept_without_a_temp",),
        reason=r"System error",
        note="a real 64 KB tmpfs (root); skipped with its reason where mount is refused",
    ),
    Mutation(
        "render-disk-full-errno", "issue 19: full disk during writing (ENOSPC/EDQUOT)",
        "an OSError with ENOSPC or EDQUOT is said as 'disk full'", R,
        (Edit("render-disk-full-errno", "if False:  # MUTATION"),),
        (f"{RENDER}::test_enospc_from_a_write_is_called_disk_full",),
        reason=r"No space left on device",
    ),
    Mutation(
        "render-fifo-input", "issue 19: FIFO input",
        "an input that exists but is not a regular file is said so (was 'no such file')", R,
        (Edit("render-fifo-input", "if False:  # MUTATION"),),
        (f"{RENDER}::test_a_fifo_input_is_not_a_regular_file",),
        reason=r"no such file",
    ),
    Mutation(
        "render-seek-free-reads", "issue 19: MP3 input rendered near-silence with rc 0",
        "input blocks are read straight on with sf_readf_float (soundfile's read seeks after every block)", R,
        (Edit("render-seek-free-reads",
              "n = len(src.read(B, dtype=\"float32\", always_2d=True, out=block)) if fed < frames else 0"
              "  # MUTATION"),),
        (f"{RENDER}::test_compressed_input_renders_at_its_level_over_the_whole_file",),
        reason=r"Not equal to tolerance",
    ),
    Mutation(
        "render-reports-bad-input", "issue 19: NaN replacements reported on the command line",
        "render prints the engine's count of replaced non-finite input samples on stderr", C,
        (Edit("render-reports-bad-input", "if False:  # MUTATION"),),
        (f"{RENDER}::test_replaced_non_finite_samples_are_reported_on_the_command_line",),
        reason=r"replaced 101 non-finite",
    ),
    Mutation(
        "render-keeps-mode", "issue 19: overwriting OUT keeps its mode",
        "an existing OUT's permission bits are copied to the temp file before the rename", R,
        (Edit("render-keeps-mode", ""),),
        (f"{RENDER}::test_replacing_out_keeps_its_permission_bits",),
        reason=r"== 388",
    ),
    Mutation(
        "torch-error-no-unsafe-advice", "issue 19: a relayed torch error never advises weights_only=False",
        "torch.load's refusal is reworded to one line naming the refused global, without its advice",
        "diffusion/checkpoint.py",
        (Edit("torch-error-no-unsafe-advice", "{exc}", old="{torch_load_reason(exc)}"),),
        (f"{CLI}::test_a_refused_checkpoint_is_one_line_that_never_advises_weights_only_false",),
        reason=r"weights_only",
    ),
    Mutation(
        "steps-beyond-bundle-refused", "issue 19: --steps above what the bundle supports",
        "a --steps beyond Bundle.max_steps is one line naming the supported range", S,
        (Edit("steps-beyond-bundle", "if False:  # MUTATION"),),
        (f"{CLISTART}::test_steps_beyond_what_the_bundle_supports_are_refused_with_the_range",),
        reason=r"0 == 2\)?|supports 1\.\.4",
    ),
    # ---- issue 16: one session opener; style names checked once, against the bundle -------------------
    Mutation(
        "session-style-check", "issue 16: style names checked once, against the bundle's own list",
        "open_session's check_params refuses a style the bundle lacks, naming the bundle's styles, before a "
        "stream starts or a snapshot is sent", S,
        (Edit("session-style-check", "if False:  # MUTATION"),),
        ("tests/realtime/test_session.py::test_a_style_the_bundle_lacks_is_refused_naming_its_styles",
         "tests/realtime/test_model_processor.py::test_unknown_style_for_the_bundle_is_refused"),
        reason=r"DID NOT RAISE|0 == 2",
    ),
    Mutation(
        "params-style-names", "issue 16: EngineParams takes any style the bundle has",
        "a style name must be a non-empty string (which names exist is the bundle's to say)", "realtime/params.py",
        (Edit("params-style-name", "if False:  # MUTATION"),),
        ("tests/realtime/test_engine.py::test_input_gain_and_params_validation",),
        reason=r"DID NOT RAISE",
    ),
)


# ---- applying --------------------------------------------------------------------------------------


def check(root: Path = ROOT, mutations: tuple[Mutation, ...] = MUTATIONS) -> list[str]:
    """Problems that would make a mutation rot: a marker not found exactly once, an edit that does not apply,
    a marker no mutation uses (in the files the mutations patch), a missing test."""
    problems = []
    for m in mutations:
        try:
            patched(m, _lines(root / m.file))
        except AuditError as exc:
            problems.append(f"{m.name}: {exc}")
        for node in m.tests:
            file, _, func = node.partition("::")
            src = (root / file).read_text() if (root / file).is_file() else ""
            if not re.search(rf"^def {re.escape(func.split('[')[0])}\(", src, re.M):
                problems.append(f"{m.name}: no test {node}")
    if mutations is MUTATIONS:
        used = {(m.file, e.marker) for m in mutations for e in m.edits}
        for file in sorted({m.file for m in mutations}):
            for line in _lines(root / file):
                for marker in _markers(line):
                    if (file, marker) not in used:
                        problems.append(f"{file}: marker `audit: {marker}` has no mutation")
    names = [m.name for m in mutations]
    problems += [f"duplicate mutation name {n}" for n in sorted({n for n in names if names.count(n) > 1})]
    return problems


class AuditError(Exception):
    """A mutation that cannot be applied: its marker is missing or ambiguous, or its fragment is not there."""


def patched(m: Mutation, lines: list[str]) -> list[str]:
    """``lines`` (with their line ends) with every edit of ``m`` applied; AuditError if one cannot be."""
    targets = []
    for e in m.edits:
        found = _marked(lines, e.marker)
        if len(found) != 1:
            raise AuditError(f"{m.file} holds the marker `audit: {e.marker}` {len(found)} times (want 1)")
        line = lines[found[0]]
        if e.old and _code(line).count(e.old) != 1:
            raise AuditError(f"{m.file}: the line marked {e.marker} holds {e.old!r} {_code(line).count(e.old)} times "
                             "(want 1)")
        targets.append((found[0], e))
    out = list(lines)
    for index, e in sorted(targets, key=lambda t: -t[0]):  # bottom up: earlier indices stay valid
        line = out[index]
        indent = line[: len(line) - len(line.lstrip())]
        new = [indent + ln + "\n" for ln in e.new.splitlines()]
        if e.insert == "before":
            out[index:index] = new
        elif e.insert == "after":
            out[index + 1 : index + 1] = new
        elif e.old:
            out[index] = line.replace(e.old, e.new, 1)
        else:
            out[index : index + 1] = new
    return out


def apply(m: Mutation, root: Path) -> str:
    """Patch ``root/m.file`` in place; returns the original text (to restore)."""
    path = root / m.file
    original = path.read_text()
    try:
        text = "".join(patched(m, original.splitlines(keepends=True)))
    except AuditError as exc:
        raise SystemExit(f"mutation {m.name}: {exc}") from exc
    path.write_text(text)
    return original


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True) if path.is_file() else []


def _markers(line: str) -> list[str]:
    match = MARKER.search(line)
    return [n.strip() for n in match.group(1).split(",")] if match else []


def _marked(lines: list[str], marker: str) -> list[int]:
    """Indices of the lines ``marker`` names: its own line, or the next line when the marker stands alone."""
    found = []
    for i, line in enumerate(lines):
        if marker in _markers(line):
            if line.lstrip().startswith("#"):  # alone on its line: it names the next line of code
                i += 1
                while i < len(lines) and lines[i].lstrip().startswith("#"):
                    i += 1
            found.append(i)
    return [i for i in found if i < len(lines)]


def _code(line: str) -> str:
    """The line without its marker comment (what the table shows)."""
    return MARKER.sub("", line).rstrip()


def copy_tree(dst: Path) -> None:
    """Tracked and untracked (not ignored) files of the working tree, so uncommitted edits are audited too."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    for rel in filter(None, out.split("\0")):
        src = ROOT / rel
        if src.is_file():
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def run_tests(root: Path, tests: tuple[str, ...], label: str) -> Outcome:
    """One pytest process in ``root``; per-case outcomes from its JUnit XML."""
    xml = root / f".audit-{label}.xml"
    env = dict(os.environ, PYTHONPATH=str(root), QT_QPA_PLATFORM="offscreen", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
           "-o", "junit_family=xunit1", *tests]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        code, tail = proc.returncode, proc.stdout[-3000:] + proc.stderr[-2000:]
    except subprocess.TimeoutExpired:
        code, tail = -1, f"pytest ran past {TIMEOUT_S} s"
    outcome = Outcome(passed=code == 0, seconds=round(time.monotonic() - t0, 1), returncode=code)
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            for bad in list(case.findall("failure")) + list(case.findall("error")):
                outcome.failed.append(case.get("name", "?"))
                text = (bad.get("message") or "") + "\n" + (bad.text or "")
                outcome.messages.append(_gist(text))
        xml.unlink()
    if code != 0 and not outcome.failed:
        outcome.messages.append(_gist(tail))
    return outcome


def _gist(text: str) -> str:
    """The lines of a failure that say why: assertion lines ('E   ...') first, else the message."""
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    body = " | ".join(lines[:6]) if lines else " ".join(text.split())
    return body[:600]


def audit(mutations: list[Mutation], keep: bool = False) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="stylehost-mutation-"))
    rows = []
    try:
        copy_tree(tmp)
        baseline_tests = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
        print(f"baseline: {len(baseline_tests)} tests in {tmp}", flush=True)
        base = run_tests(tmp, baseline_tests, "baseline")
        failed_base = set(base.failed)
        print(f"  {'pass' if base.passed else 'FAIL ' + ', '.join(base.failed)} ({base.seconds} s)", flush=True)
        for m in mutations:
            original = apply(m, tmp)
            try:
                print(f"{m.name}: {m.file}; {len(m.tests)} test(s)", flush=True)
                out = run_tests(tmp, m.tests, m.name)
            finally:
                (tmp / m.file).write_text(original)
            funcs = {t.partition("::")[2] for t in m.tests}
            with_ok = base.passed or not any(f.split("[")[0] in funcs for f in failed_base)
            caught = not out.passed
            right = caught and (not m.reason or re.search(m.reason, " ".join(out.messages)) is not None)
            verdict = ("baseline fails" if not with_ok else "caught" if right
                       else "fails, other reason" if caught else "SURVIVED")
            print(f"  {verdict} ({out.seconds} s){': ' + out.messages[0][:200] if out.messages else ''}", flush=True)
            rows.append({**asdict(m), "with_protection": "pass" if with_ok
                         else "fail", "without_protection": "fail" if caught else "pass", "verdict": verdict,
                         "failed": out.failed, "messages": out.messages, "seconds": out.seconds})
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


# ---- reporting -------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Mutation audit (issue 10)",
        "",
        f"Generated by `python -m benchmarks.mutation_audit`; last run {report['date']} (commit {report['commit']}),"
        f" rows audited {_span(report)}.",
        "Each protection removed by the text patch shown, its tests run in a temporary copy of the tree.",
        "*caught*: a test failed, for the reason given in `reason` (benchmarks/mutation_audit.py).",
        "",
        "| protection | file | mutation | tests without the protection | with protection | verdict | why it failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        failed = {f.split("[")[0] for f in r["failed"]}
        tests = "<br>".join(f"`{t.split('::')[1]}`: {'**fails**' if t.split('::')[1] in failed else 'passes'}"
                            for t in r["tests"])
        why = (r["messages"][0] if r["messages"] else "").replace("|", "/")[:160]
        if r.get("note"):
            why = f"{why} ({r['note']})" if why else r["note"]
        verdict = {"caught": "caught", "SURVIVED": "**SURVIVED**"}.get(r["verdict"], r["verdict"])
        lines.append(f"| {r['name']}: {r['protection']} | `{r['file']}` | {_summary(r)} | {tests} | "
                     f"{r['with_protection']} | {verdict} | {why} |")
    counts = {v: sum(r["verdict"] == v for r in report["rows"]) for v in {r["verdict"] for r in report["rows"]}}
    lines += ["", "Totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), ""]
    return "\n".join(lines)


BEGIN, END = "<!-- mutation-audit:begin -->", "<!-- mutation-audit:end -->"


def docs_table(report: dict[str, Any]) -> str:
    """The short table for docs/reliability.md: protection -> tests -> does each fail without it."""
    lines = [BEGIN, f"Audited {_span(report)}; details and failure messages in "
             "[results/mutation_audit.md](results/mutation_audit.md).", "",
             "| issue 10 item | protection removed (`mutation`) | test: fails without it? | verdict |",
             "|---|---|---|---|"]
    for r in report["rows"]:
        failed = {f.split("[")[0] for f in r["failed"]}
        tests = "<br>".join(f"`{t.split('::')[1]}`: {'yes' if t.split('::')[1] in failed else 'no'}"
                            for t in r["tests"])
        verdict = r["verdict"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(f"| {r['item']} | {r['protection']} (`{r['name']}`) | {tests} | {verdict} |")
    return "\n".join([*lines, END])


def update_docs(report: dict[str, Any], doc: Path = ROOT / "docs" / "reliability.md") -> None:
    text = doc.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        doc.write_text(head + docs_table(report) + rest.split(END, 1)[1])


def _span(report: dict[str, Any]) -> str:
    """When (and at which commit) the rows were audited: one value, or first ... last."""
    stamps = sorted({r.get("audited", "?") for r in report["rows"]})
    return stamps[0] if len(stamps) == 1 else f"{stamps[0]} ... {stamps[-1]}"


def _summary(row: dict[str, Any]) -> str:
    m = next((m for m in MUTATIONS if m.name == row["name"]), None)
    return (m.summary() if m else row["name"]).replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutation (repeatable, or a,b)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--check", action="store_true", help="check every marker is found exactly once")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--out", type=Path, default=RESULTS / "mutation_audit.json")
    args = parser.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.name:28s} {m.file:28s} {', '.join(t.split('::')[1] for t in m.tests)}")
        return 0
    names = [n for item in args.only for n in item.split(",") if n]
    unknown = sorted(set(names) - {m.name for m in MUTATIONS})
    if unknown:
        parser.error(f"unknown mutation(s) {unknown}; --list shows them")
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    problems = check(mutations=tuple(chosen) if names else MUTATIONS)
    if problems or args.check:
        print("\n".join(problems) or f"all {len(chosen)} mutations apply")
        return 1 if problems else 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    commit += "+dirty" if dirty else ""  # the copy holds uncommitted edits too
    rows = audit(chosen, keep=args.keep)
    for row in rows:
        row["audited"] = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {commit}"
    previous = json.loads(args.out.read_text()).get("rows", []) if names and args.out.is_file() else []
    done = {r["name"] for r in rows}
    order = [m.name for m in MUTATIONS]
    merged = sorted([r for r in previous if r["name"] not in done and r["name"] in order] + rows,
                    key=lambda r: order.index(r["name"]))
    report = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "commit": commit, "command": "python -m benchmarks.mutation_audit "
              + " ".join(f"--only {n}" for n in names), "rows": merged}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report))
    if args.out == RESULTS / "mutation_audit.json":
        update_docs(report)
    survived = [r["name"] for r in rows if r["verdict"] != "caught"]
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}; not caught: {survived or 'none'}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
