"""Model bundles: a folder anyone can copy, load and inspect (ONNX graphs + ``manifest.json``).

Layout (``stylehost export onnx`` writes it; ``load_bundle`` refuses anything else)::

    models/NAME/
        manifest.json     format version, model name/version, styles + embedding table,
                          SpectrogramConfig, window/lookahead/emit frames, sampler constants,
                          latency in samples, every graph's inputs/outputs, sha256 of every file
        denoiser.onnx     (B,1,mels,T) x, (B,) sigma, (B,C,mels,T) source (C = 2 when it hears the input
                          and its excitation), (B,emb) style_vec -> x0
        frontend.onnx     (B, window samples) audio -> (B, mels, T) natural-log mel
        resynth.onnx      (B, S, n_fft) source frames, (B, mels, S) predicted log-mel -> (B, S, n_fft)
                          synthesis-windowed frames, ready to overlap-add at hop spacing; with a learned
                          'resynth_stage' (format 2) the inputs hold S + context_before + context_after
                          frames of the window around the emitted ones, the output still S
        model.pt          optional: the EMA weights, for the torch backend (debugging, parity)

Everything a runtime needs is in the manifest, so ``realtime`` never reads a torch checkpoint to
run a bundle. Validation happens before any stream starts and ends in one StylehostError. It reads
each graph too (``read_graph`` of export/graphfile.py, which needs no onnx package): every file a graph
can make ONNX Runtime or TensorRT read (ONNX external data) must be a plain name listed, and so hashed,
in ``files``; and every array the runtime builds from the manifest (style_table rows, windows of
``window`` frames, n_mels, n_fft, emitted frames) must have the shape the graph declares, so a mismatch
is one error at load, not a failing model call on every window (dry output forever).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from diffusion.files import sha256_file
from diffusion.input_gate import GateConfig
from diffusion.spectrogram import SpectrogramConfig
from export.graphfile import FLOAT, read_graph

FORMAT = "stylehost-bundle"
FORMAT_VERSION = 2  # 2 adds the optional 'resynth_stage' (a learned resynth graph that reads context frames)
MANIFEST = "manifest.json"
DEFAULT_MARGIN_MS = 6.0  # the engine's compute margin for a bundle that names none (manifest defaults.margin_ms)
GRAPHS = ("denoiser", "frontend", "resynth")
INT8_GRAPH = "denoiser_int8"  # optional (export/quantize.py): the denoiser with int8 convolutions, for the CPU
OPTIONAL_GRAPHS = {INT8_GRAPH: "denoiser"}  # optional graph -> the graph whose inputs and outputs it has
CONDITION_GRAPH = "condition"  # a streaming bundle's (sigma, style_vec) -> its denoiser's FiLM (streaming.condition)
MAX_STEPS = {False: 16, True: 4}  # Bundle.max_steps without a manifest value: Euler teacher, consistency student
REPO_MODELS = Path(__file__).resolve().parents[1] / "models"
DEFAULT_NAME = "default"
_REQUIRED = {
    "format": str, "format_version": int, "model": dict, "styles": list, "style_table": list,
    "spectrogram": dict, "window": int, "lookahead": int, "emit": int, "sampler": dict,
    "latency_samples": int, "graphs": dict, "files": dict,
}
_SAMPLER_KEYS = ("sigma_min", "sigma_max", "rho", "sigma_data", "logmel_mean", "logmel_std")


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: paths plus the numbers a runtime needs (no torch, no ONNX loaded yet)."""

    path: Path
    manifest: dict[str, Any]
    digest: str  # sha256 of manifest.json, which lists every file's sha256: the bundle's identity

    @property
    def name(self) -> str:
        return str(self.manifest["model"].get("name", self.path.name))

    @property
    def version(self) -> str:
        return str(self.manifest["model"].get("version", "?"))

    @property
    def summary(self) -> str:
        """One line on what the bundle is for and what it trades (manifest model.summary; may be empty)."""
        return str(self.manifest["model"].get("summary", ""))

    @property
    def styles(self) -> tuple[str, ...]:
        return tuple(self.manifest["styles"])

    @property
    def style_table(self) -> np.ndarray:
        """(n_styles, emb_dim) float32: a style mix is ``weights @ style_table``."""
        return np.asarray(self.manifest["style_table"], dtype=np.float32)

    @property
    def spectrogram(self) -> SpectrogramConfig:
        return SpectrogramConfig.from_dict(self.manifest["spectrogram"])

    @property
    def window(self) -> int:
        return int(self.manifest["window"])

    @property
    def lookahead(self) -> int:
        return int(self.manifest["lookahead"])

    @property
    def emit(self) -> int:
        return int(self.manifest["emit"])

    @property
    def sampler(self) -> dict[str, float]:
        return {k: float(self.manifest["sampler"][k]) for k in _SAMPLER_KEYS}

    @property
    def sampler_name(self) -> str:
        """'euler' (teachers) or 'consistency' (distilled students), as diffusion.sampling names them."""
        return str(self.manifest["sampler"].get("name", "euler"))

    @property
    def defaults(self) -> dict[str, float | int]:
        """Recommended steps, strength and emitted frames per call (manifest 'defaults', chosen by eval and
        the latency benchmark); 2 steps, strength 1 and the trained ``emit`` if absent."""
        d = self.manifest.get("defaults") or {}
        return {"steps": int(d.get("steps", 2)), "strength": float(d.get("strength", 1.0)),
                "emit": int(d.get("emit", self.emit))}

    @property
    def margin_ms(self) -> float:
        """The engine's compute margin this bundle plays at (manifest ``defaults.margin_ms``, measured with the
        latency benchmark: its call's p99 fits it at its stride), else ``DEFAULT_MARGIN_MS``. A streaming
        bundle whose every call does the same work holds a smaller margin than a window bundle."""
        d = self.manifest.get("defaults") or {}
        return float(d.get("margin_ms", DEFAULT_MARGIN_MS))

    @property
    def max_steps(self) -> int:
        """The most sampler steps this bundle supports: manifest ``defaults.max_steps``, else 4 for a
        consistency student (it was distilled and evaluated at 1-4; more steps re-noise a one-step
        model and do not improve it) and 16 for an Euler teacher (beyond that no call fits a stride)."""
        d = self.manifest.get("defaults") or {}
        return int(d.get("max_steps", MAX_STEPS[self.sampler_name == "consistency"]))

    @property
    def denoiser_input(self) -> str:
        """What the denoiser was trained to hear: "source" (the input's log-mel), "both" (that and the
        excitation's, two channels) or "excitation" (the log-mel
        of the input's harmonic excitation, diffusion/excitation.py). Manifest ``denoiser_input``."""
        return str(self.manifest.get("denoiser_input", "source"))

    @property
    def input_gate(self) -> GateConfig | None:
        """The gate that picks, per call, whether a one-window denoiser hears the input or its excitation
        (diffusion/input_gate.py), or None. Manifest ``input_gate``; played when ``denoiser_input`` is gated."""
        section = self.manifest.get("input_gate")
        return GateConfig.from_dict(section) if section else None

    @property
    def excitation(self) -> dict[str, Any] | None:
        """The harmonic excitation the resynth graph shapes (diffusion/excitation.py ExcitationConfig
        fields), or None: the graph shapes the source itself."""
        section = self.manifest.get("excitation")
        return dict(section) if section else None

    @property
    def resynth_context(self) -> tuple[int, int]:
        """(before, after): frames the resynth graph reads around the S emitted ones; (0, 0) for
        source-phase resynthesis (bundles without a learned 'resynth_stage')."""
        stage = self.manifest.get("resynth_stage") or {}
        return int(stage.get("context_before", 0)), int(stage.get("context_after", 0))

    @property
    def streaming(self) -> dict[str, Any] | None:
        """The ``streaming`` section of a causal bundle (export/streaming.py: its denoiser graph carries its
        state, ``emit`` frames per call), or None for a window bundle."""
        section = self.manifest.get("streaming")
        return dict(section) if section else None

    @property
    def latency_samples(self) -> int:
        return int(self.manifest["latency_samples"])

    @property
    def latency_ms(self) -> float:
        return 1000.0 * self.latency_samples / self.spectrogram.sample_rate

    def has_graph(self, graph: str) -> bool:
        """The three required graphs always; an optional one (``OPTIONAL_GRAPHS``) when the manifest lists it."""
        return graph in self.manifest["graphs"]

    def graph_path(self, graph: str) -> Path:
        return self.path / self.manifest["graphs"][graph]["file"]

    def graph_io(self, graph: str) -> dict[str, list[dict[str, Any]]]:
        """{"inputs": [{name, dtype, shape}], "outputs": [...]} as written by the exporter."""
        spec = self.manifest["graphs"][graph]
        return {"inputs": spec["inputs"], "outputs": spec["outputs"]}

    @property
    def torch_weights(self) -> Path | None:
        path = self.path / "model.pt"
        return path if "model.pt" in self.manifest["files"] else None

    def describe(self) -> str:
        return (f"{self.name} {self.version}: styles {', '.join(self.styles)}; sampler {self.sampler_name}; latency "
                f"{self.latency_samples} samples ({self.latency_ms:.1f} ms at {self.spectrogram.sample_rate} Hz); "
                f"{self.path}")


def file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def load_bundle(spec: str | Path, verify_hashes: bool = True) -> Bundle:
    """Open a bundle folder (or its manifest.json) and check it completely; StylehostError if anything is off."""
    path = Path(spec)
    if path.is_file() and path.name == MANIFEST:
        path = path.parent
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise StylehostError(
            f"no model bundle at {path} (no {MANIFEST}); export one with `stylehost export onnx`, "
            "or use --model passthrough for the DSP passthrough"
        )
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # audit: bundle-manifest-json
        raise StylehostError(f"malformed manifest {manifest_path}: not JSON ({exc})") from exc
    _check_manifest(manifest, manifest_path)
    root = path.resolve()
    for name, entry in manifest["files"].items():
        file = path / name
        # audit: bundle-link-or-outside
        if file.is_symlink() or not file.resolve().is_relative_to(root):  # a bundle is one self-contained folder
            raise StylehostError(f"bundle {path}: {name} is a link or lies outside the bundle folder; copy the file in")
        if not file.is_file():  # audit: bundle-missing-file
            raise StylehostError(f"bundle {path} is missing {name} (listed in {MANIFEST}); re-export the bundle")
        if verify_hashes and sha256_file(file) != entry["sha256"]:  # audit: bundle-hash-check
            raise StylehostError(
                f"bundle {path}: {name} does not match its sha256 in {MANIFEST} (corrupt or modified); "
                "re-export the bundle"
            )
    expected = _expected_io(manifest)
    for graph in (*GRAPHS, *((CONDITION_GRAPH,) if CONDITION_GRAPH in expected else ())):
        _check_graph(path, manifest, graph, expected[graph])
    for graph, like in OPTIONAL_GRAPHS.items():
        if graph in manifest["graphs"]:  # audit: bundle-optional-graph-checked
            _check_graph(path, manifest, graph, expected[like])
    return Bundle(path=path, manifest=manifest, digest=hashlib.sha256(raw).hexdigest())


def update_manifest(path: Path, sections: dict[str, Any]) -> Bundle:
    """Add or replace top-level manifest sections (eval tables, defaults), atomically.

    Only manifest.json changes: the hashed model files are untouched, and the result must still load.
    """
    bundle = load_bundle(path)
    manifest = {**bundle.manifest, **sections}
    target = bundle.path / MANIFEST
    tmp = target.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    try:
        _check_manifest(json.loads(tmp.read_text()), target)
    except StylehostError:
        tmp.unlink()
        raise
    os.replace(tmp, target)
    return load_bundle(bundle.path)


def _check_manifest(m: Any, where: Path) -> None:
    """Schema check with one message naming the offending key (user input: no asserts)."""

    def bad(what: str) -> StylehostError:
        return StylehostError(f"malformed manifest {where}: {what}")

    if not isinstance(m, dict):
        raise bad("top level must be an object")
    if m.get("format") != FORMAT:
        raise bad(f"'format' must be {FORMAT!r}, got {m.get('format')!r}")
    version = m.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad(f"'format_version' must be an integer, got {version!r}")
    if version > FORMAT_VERSION:  # audit: bundle-newer-format
        raise StylehostError(
            f"bundle {where.parent} has format version {version}; this stylehost reads version "
            f"{FORMAT_VERSION}: upgrade stylehost (pip install -U stylehost) or re-export the bundle"
        )
    if version < 1:
        raise StylehostError(f"bundle {where.parent} has unsupported format version {version}; re-export it")
    for key, kind in _REQUIRED.items():
        if key not in m:
            raise bad(f"missing key {key!r}")  # audit: bundle-required-keys
        if not isinstance(m[key], kind) or (kind is int and isinstance(m[key], bool)):
            raise bad(f"{key!r} must be a {kind.__name__}, got {type(m[key]).__name__}")
    for key in _SAMPLER_KEYS:
        value = m["sampler"].get(key)
        # audit: bundle-finite-sampler
        if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
            raise bad(f"sampler.{key} must be a finite number")  # JSON allows NaN; a NaN sigma would be silent garbage
    conditioned = isinstance(m.get("streaming"), dict) and "condition" in m["streaming"]
    for graph in (*GRAPHS, *(g for g in OPTIONAL_GRAPHS if g in m["graphs"]), *((CONDITION_GRAPH,) * conditioned)):
        spec = m["graphs"].get(graph)
        if not isinstance(spec, dict) or not all(k in spec for k in ("file", "inputs", "outputs")):
            raise bad(f"graphs.{graph} must have 'file', 'inputs' and 'outputs'")
        if spec["file"] not in m["files"]:  # audit: bundle-graph-in-files
            raise bad(f"graphs.{graph}.file {spec['file']!r} has no entry in 'files'")
    for name, entry in m["files"].items():
        if "/" in name or "\\" in name or name.startswith("."):  # audit: bundle-plain-names
            raise bad(f"file name {name!r} must be a plain name inside the bundle")
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise bad(f"files.{name} needs a 'sha256' string")
    try:
        spec = SpectrogramConfig.from_dict(m["spectrogram"])
    except (StylehostError, TypeError) as exc:
        raise bad(f"spectrogram: {exc}") from exc
    table = np.asarray(m["style_table"], dtype=object)
    if table.ndim != 2 or table.shape[0] != len(m["styles"]) or not m["styles"]:
        raise bad(f"style_table must be one row per style ({len(m['styles'])}), got shape {table.shape}")
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in table.flat)
    if not numeric or not np.isfinite(table.astype(np.float64)).all():  # audit: bundle-finite-style-table
        raise bad("style_table must hold finite numbers only")
    if not 1 <= m["emit"] <= m["window"] - m["lookahead"] or m["lookahead"] < 0:
        raise bad(f"need 1 <= emit <= window - lookahead, got {m['emit']}, {m['window']}, {m['lookahead']}")
    if spec.n_fft % spec.hop:
        raise bad("n_fft must be a multiple of hop")
    stage = m.get("resynth_stage", {})
    if not isinstance(stage, dict):
        raise bad("'resynth_stage' must be an object")
    for key, most in (("context_before", m["window"] - m["lookahead"] - 1), ("context_after", m["lookahead"])):
        value = stage.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
            raise bad(f"resynth_stage.{key} must be an integer in 0..{most} (frames inside the window), got {value!r}")
    excitation = m.get("excitation")
    if excitation is not None:
        from diffusion.excitation import ExcitationConfig  # numpy only

        valid = set(ExcitationConfig.__dataclass_fields__)
        if not isinstance(excitation, dict) or set(excitation) - valid:
            raise bad(f"'excitation' must be an object with keys from {sorted(valid)}")
        try:
            ExcitationConfig(**excitation)
        except (TypeError, StylehostError) as exc:
            raise bad(f"'excitation': {exc}") from exc
    from diffusion.excitation import GATED, PLAYED_INPUTS  # numpy only

    heard = m.get("denoiser_input", "source")
    if heard not in PLAYED_INPUTS or (heard != "source" and excitation is None):
        raise bad(f"'denoiser_input' must be 'source', or 'excitation', 'both' or 'gated' with an 'excitation' "
                  f"section, got {heard!r}")
    gate = m.get("input_gate")
    if heard == GATED and gate is None:
        raise bad("'denoiser_input' 'gated' needs an 'input_gate' section: fit one with `stylehost gate-fit`")
    if gate is not None:
        if not isinstance(gate, dict):
            raise bad("'input_gate' must be an object")
        try:
            parsed = GateConfig.from_dict(gate)
        except StylehostError as exc:
            raise bad(f"'input_gate': {exc}") from exc
        mels = (m.get("spectrogram") or {}).get("n_mels")
        if parsed.n_mels != mels:
            raise bad(f"'input_gate' was fitted on {parsed.n_mels} mel bands, the model has {mels}")
    defaults = m.get("defaults", {})
    if not isinstance(defaults, dict):
        raise bad("'defaults' must be an object")
    steps, strength = defaults.get("steps", 2), defaults.get("strength", 1.0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise bad(f"defaults.steps must be an integer >= 1, got {steps!r}")
    if not isinstance(strength, int | float) or not 0.0 < strength <= 1.0:
        raise bad(f"defaults.strength must be in (0, 1], got {strength!r}")
    margin = defaults.get("margin_ms", DEFAULT_MARGIN_MS)
    if not isinstance(margin, int | float) or isinstance(margin, bool) or not 0.0 <= margin <= 100.0:
        raise bad(f"defaults.margin_ms must be a number of ms in [0, 100], got {margin!r}")
    most = defaults.get("max_steps", steps)
    if not isinstance(most, int) or isinstance(most, bool) or most < steps:
        raise bad(f"defaults.max_steps must be an integer >= defaults.steps, got {most!r}")
    emit = defaults.get("emit", m["emit"])
    if not isinstance(emit, int) or isinstance(emit, bool) or not 1 <= emit <= m["window"] - m["lookahead"]:
        raise bad(f"defaults.emit must be an integer in 1..window-lookahead, got {emit!r}")
    if "streaming" in m:
        _check_streaming(m, stage, bad)


def _check_streaming(m: dict[str, Any], stage: dict[str, Any], bad: Any) -> None:
    """A causal bundle's frame arithmetic (export/streaming.py): lookahead = the network's + the stage's,
    window = lookahead + emit + context_before, emit fixed, every state named and shaped."""
    st = m["streaming"]
    if not isinstance(st, dict) or st.get("kind") != "causal":
        raise bad("'streaming' must be an object with kind 'causal'")
    look = st.get("causal_lookahead")
    if not isinstance(look, int) or isinstance(look, bool) or not 0 <= look <= m["lookahead"]:
        raise bad(f"streaming.causal_lookahead must be an integer in 0..lookahead, got {look!r}")
    before, after = stage.get("context_before", 0), stage.get("context_after", 0)
    if m["lookahead"] != look + after or m["window"] != m["lookahead"] + m["emit"] + before:
        raise bad(f"a streaming bundle needs lookahead = causal_lookahead + context_after ({look} + {after}) and "
                  f"window = lookahead + emit + context_before, got lookahead {m['lookahead']}, window {m['window']}")
    if (m.get("defaults") or {}).get("emit", m["emit"]) != m["emit"]:
        raise bad("a streaming bundle's defaults.emit must be its emit (its graphs take that many frames)")
    state = st.get("state")
    if not _named_shapes(state) or not state:
        raise bad("streaming.state must be a non-empty list of {name, shape} with positive integer shapes")
    cond = st.get("condition")
    if cond is not None and (not _named_shapes(cond) or [e["name"] for e in cond][:3] != ["c_skip", "c_out", "c_in"]):
        raise bad("streaming.condition must be a list of {name, shape}: c_skip, c_out, c_in, then the blocks' FiLM")


def _named_shapes(entries: Any) -> bool:
    """A list of {name: str, shape: [positive ints]}: a streaming bundle's state and condition tensors."""
    return isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("shape"), list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in e["shape"]) for e in entries)


# ---- graph files: what each .onnx declares and which files it reads -----------------------------------
# export/graphfile.py reads them (without the onnx package); these checks hold them to the manifest.


def _inside(name: str) -> bool:
    """A plain file name in the bundle folder: ONNX Runtime resolves a location against the graph's
    folder, so '..', an absolute path or a subfolder (and ORT's '*/_ORT_MEM_ADDR_/*') would escape it."""
    plain = PurePosixPath(name).name == PureWindowsPath(name).name == name
    return bool(name) and plain and name.isprintable() and not name.startswith(".")  # NUL would cut the path


def _shape_text(dims: list[int | None] | None) -> str:
    if dims is None:
        return "(unknown)"
    text = ", ".join("batch" if i == 0 and d is None else "?" if d is None else str(d) for i, d in enumerate(dims))
    return f"({text}{',' if len(dims) == 1 else ''})"


def _fits(a: list[int | None] | None, b: list[int | None] | None) -> bool:
    """Two shapes agree: same rank, and equal wherever both sizes are fixed (None: named or unknown)."""
    if a is None or b is None:
        return True
    # audit: bundle-array-shapes
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


_Expected = list[tuple[str, list[int | None], str]]  # (name, shape with None for the batch, its source in words)


def _expected_io(m: dict[str, Any]) -> dict[str, tuple[_Expected, _Expected]]:
    """Per graph: (inputs, outputs) as the runtime builds and reads them from the manifest's numbers:
    (name, shape with None for the batch, the source in words). realtime/model_processor.py feeds them."""
    from diffusion.excitation import heard_channels  # numpy only

    spec = SpectrogramConfig.from_dict(m["spectrogram"])
    mels, t, n_fft = spec.n_mels, m["window"], spec.n_fft
    samples = spec.num_samples(t)
    table = np.asarray(m["style_table"])
    stage = m.get("resynth_stage") or {}
    emit = (m.get("defaults") or {}).get("emit", m["emit"])
    n = emit + stage.get("context_before", 0) + stage.get("context_after", 0)
    window = f"spectrogram.n_mels {mels} x window {t}"
    frames = f"defaults.emit {emit} + resynth_stage context {n - emit}"
    extra: dict[str, tuple[_Expected, _Expected]] = {}
    if "streaming" in m:  # the denoiser and frontend take the `emit` new frames, the state beside them
        per_call = f"spectrogram.n_mels {mels} x emit {emit} frames per call"
        heard = heard_channels(m.get("denoiser_input", "source"))
        state = [(e["name"], [None, *e["shape"]], f"streaming.state {e['name']}") for e in m["streaming"]["state"]]
        t, samples, window = emit, spec.num_samples(emit), per_call
        x_io: tuple[str, list[int | None], str] = ("x", [None, 1, mels, emit], per_call)
        source_io: tuple[str, list[int | None], str] = ("source", [None, heard, mels, emit], per_call)
        sigma_io: tuple[str, list[int | None], str] = ("sigma", [None], "one sigma per call")
        style_io: tuple[str, list[int | None], str] = ("style_vec", [None, table.shape[1]],
                                                       f"style_table of shape {table.shape}")
        outputs = [("x0", [None, 1, mels, emit], per_call), *((f"{n}_out", shape, w) for n, shape, w in state)]
        cond_spec = m["streaming"].get("condition")
        if cond_spec is not None:  # the condition graph makes what the denoiser takes in sigma's and style's place
            cond = [(e["name"], [None, *e["shape"]], f"streaming.condition {e['name']}") for e in cond_spec]
            extra = {CONDITION_GRAPH: ([sigma_io, style_io], cond)}
            denoiser_io: tuple[_Expected, _Expected] = ([x_io, source_io, *cond, *state], outputs)
        else:
            denoiser_io = ([x_io, sigma_io, source_io, style_io, *state], outputs)
    else:
        denoiser_io = (
            [("x", [None, 1, mels, t], window), ("sigma", [None], "one sigma per window"),
             ("source", [None, heard_channels(m.get("denoiser_input", "source")), mels, t],
              f"{window}, one channel per window heard (denoiser_input)"),
             ("style_vec", [None, table.shape[1]], f"style_table of shape {table.shape}")],
            [("x0", [None, 1, mels, t], window)],
        )
    return {
        **extra,
        "denoiser": denoiser_io,
        "frontend": (
            [("audio", [None, samples], f"window {t} frames at n_fft {n_fft}, hop {spec.hop} ({samples} samples)")],
            [("logmel", [None, mels, t], window)],
        ),
        "resynth": (
            [("frames", [None, n, n_fft], f"{frames} frames of spectrogram.n_fft {n_fft}"),
             ("pred_logmel", [None, mels, n], f"spectrogram.n_mels {mels} x {frames} frames")],
            [("out_frames", [None, emit, n_fft], f"defaults.emit {emit} frames of spectrogram.n_fft {n_fft}")],
        ),
    }


def _manifest_io(m: dict[str, Any], graph: str, side: str, where: Path) -> list[tuple[str, list[int | None]]]:
    """graphs.GRAPH.inputs / .outputs as (name, dims), with str (a named axis) as None."""
    ios = m["graphs"][graph][side]
    if not isinstance(ios, list) or not all(
        isinstance(io, dict) and isinstance(io.get("name"), str) and isinstance(io.get("shape"), list)
        and all(isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool)) for d in io["shape"])
        for io in ios
    ):
        raise StylehostError(f"malformed manifest {where}: graphs.{graph}.{side} must be a list of "
                             "{name, dtype, shape} with shape a list of integers and axis names")
    return [(io["name"], [None if isinstance(d, str) else d for d in io["shape"]]) for io in ios]


def _check_graph(path: Path, m: dict[str, Any], graph: str, expected: tuple[_Expected, _Expected]) -> None:
    """The graph reads no file but hashed ones in the folder, and takes the arrays the manifest makes
    (``expected``: its inputs and outputs from ``_expected_io``)."""
    file = m["graphs"][graph]["file"]
    info = read_graph(path / file)
    where = f"bundle {path}: the {graph} graph ({file})"
    for location in sorted(info.external):
        if not _inside(location):  # audit: bundle-external-data-inside
            raise StylehostError(f"{where} reads external data from {location!r}, not a plain file name in "
                                 "the bundle folder; refused (a bundle is one folder: re-export it)")
        if location not in m["files"]:  # audit: bundle-external-data-listed
            raise StylehostError(f"{where} reads external data from {location!r}, which {MANIFEST} does not list "
                                 "with a sha256; refused (list it under 'files', or re-export the bundle)")
    if info.unlocated:
        raise StylehostError(f"{where} has external tensor {info.unlocated[0]!r} with no location; re-export it")
    # audit: bundle-epcontext-refused
    if "EPContext" in info.op_types:  # a precompiled engine: its ep_cache_context may name any file
        raise StylehostError(f"{where} holds an EPContext node (a precompiled engine); stylehost runs only the "
                             "exported graphs: re-export the bundle")
    manifest_where = path / MANIFEST
    for side, want, got in (("inputs", expected[0], info.inputs), ("outputs", expected[1], info.outputs)):
        listed = _manifest_io(m, graph, side, manifest_where)
        if (side == "inputs" and len(got) != len(want)) or not got:
            raise StylehostError(f"{where} has {side} {[io[0] for io in got]}; the runtime "
                                 f"{'feeds' if side == 'inputs' else 'reads'} {[io[0] for io in want]}: "
                                 "re-export the bundle")
        if [io[0] for io in listed] != [io[0] for io in got]:  # audit: bundle-io-names
            raise StylehostError(f"malformed manifest {manifest_where}: graphs.{graph}.{side} names "
                                 f"{[io[0] for io in listed]}, but {file} has {[io[0] for io in got]}")
        for (name, shape, source), (_, elem, dims), (_, says) in zip(want, got, listed, strict=False):
            if elem is not None and elem != FLOAT:
                raise StylehostError(f"{where} {side[:-1]} {name!r} has element type {elem}; the runtime uses "
                                     "float32 (type 1): re-export the bundle")
            if not _fits(shape, dims):
                raise StylehostError(f"{where} {side[:-1]} {name!r} has shape {_shape_text(dims)}, but {source} "
                                     f"in {MANIFEST} makes it {_shape_text(shape)}; re-export the bundle")
            if not _fits(says, dims) or not _fits(shape, says):
                raise StylehostError(f"malformed manifest {manifest_where}: graphs.{graph}.{side} gives {name!r} "
                                     f"shape {_shape_text(says)}, but {file} declares {_shape_text(dims)} and "
                                     f"{source} makes it {_shape_text(shape)}")


# ---- discovery ------------------------------------------------------------------------------------


def user_models_dir() -> Path:
    """Per-user bundle folder (platformdirs), e.g. ~/.local/share/stylehost/models on Linux."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("stylehost")) / "models"


def search_dirs() -> list[Path]:
    """Where bundles are found by name, first match wins: the repo's models/, then the user folder."""
    return [REPO_MODELS, user_models_dir()]


def discover(dirs: list[Path] | None = None) -> list[tuple[Path, Bundle | StylehostError]]:
    """Every folder with a manifest.json under the search dirs, each loaded or with why it is refused."""
    found: list[tuple[Path, Bundle | StylehostError]] = []
    for root in search_dirs() if dirs is None else dirs:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
            try:
                found.append((folder, load_bundle(folder)))
            except StylehostError as exc:
                found.append((folder, exc))
    return found


def resolve(spec: str | None, dirs: list[Path] | None = None) -> Path | None:
    """``--model`` value -> bundle folder; None (passthrough) for 'passthrough', or when no spec is
    given and no bundle named 'default' exists in the repo's models/."""
    if spec == "passthrough":
        return None
    if spec is None:
        default = REPO_MODELS / DEFAULT_NAME
        return default if (default / MANIFEST).is_file() else None
    path = Path(spec)
    if path.exists() or "/" in spec or "\\" in spec:
        return path
    for root in search_dirs() if dirs is None else dirs:
        if (root / spec / MANIFEST).is_file():
            return root / spec
    where = ", ".join(str(d) for d in (search_dirs() if dirs is None else dirs))
    raise StylehostError(f"no model bundle named {spec!r} in {where}; `stylehost models` lists the bundles found")
