"""`stylehost export quantize`: an int8 copy of a bundle's denoiser, for ONNX Runtime on the CPU.

It lives beside parity.py, not in export/: it streams clips through the engine's own processor and
backends to record real denoiser inputs and to check the result, and export/ knows nothing of realtime.

Why (issue 16): on the 2-core development CPU the fp32 denoiser is ~3.8 ms of a ~5.3 ms processor call
live, against a 6 ms compute margin, so about one call in eight is late and the output drops out. Its
convolutions are most of that time, and this CPU (and every x86 CPU with AVX-512 VNNI or AVX-VNNI, and
ARM with dot-product instructions) runs int8 convolutions about twice as fast; the 1.1 M weights also
shrink from 4.4 MB to 1.1 MB, about one core's L2 cache, so a call that follows an idle stride wait
starts less cold.

How: ONNX Runtime's static quantization in QDQ form, per-channel int8 weights and uint8 activations of
every Conv (the GroupNorms, FiLM and SiLU stay fp32). The activation ranges come from *real* denoiser
inputs: training-split clips (both SoundFonts and synthesized voices of diffusion/synth_augment.py)
streamed through the bundle's own processor, recording every denoiser call, at the steps and strengths
the bundle plays. The figures written beside the graph (manifest ``quantization``) are measured on
validation-split clips the calibration never saw: x0 error against fp32, the log-mel distance between
the int8 and fp32 renders and of each to the true target, and both denoisers' call times.

The graph is an optional bundle entry (``graphs.denoiser_int8``, same inputs and outputs as the
denoiser, hashed in ``files``); the CPU backend runs it when asked (``--precision int8``) or by default
(``auto``) when the bundle has one. Re-exporting the bundle drops it: run this command again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffusion.errors import StylehostError
from export.bundle import INT8_GRAPH, Bundle, file_entry, load_bundle, update_manifest
from realtime.backends.base import Backend
from realtime.model_processor import ModelProcessor

INT8_FILE = "denoiser_int8.onnx"


@dataclass(frozen=True)
class QuantizeConfig:
    """Where the calibration windows come from and how the result is checked."""

    clips: int = 16  # training-split clips streamed for calibration
    check_clips: int = 8  # validation-split clips for the figures (never calibrated on)
    seconds: float = 3.0  # of each clip
    windows: int = 256  # calibration feeds kept, evenly spread over the recorded calls
    steps: tuple[int, ...] = (1, 2)  # sampler steps the calibration plays (the bundle's default among them)
    strengths: tuple[float, ...] = (1.0, 0.7)
    p_synth: float = 0.25  # share of calibration sources that are synthesized voices
    timing_calls: int = 300
    seed: int = 0


class RecordingBackend(Backend):
    """Passes every call to ``inner`` and keeps a copy of each denoiser feed (calibration, checks)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner.bundle)
        self.inner = inner
        self.name, self.description = inner.name, f"recording {inner.description}"
        self.feeds: list[tuple[np.ndarray, ...]] = []

    def run(self, graph: str, *inputs: np.ndarray) -> np.ndarray:
        if graph == "denoiser":
            self.feeds.append(tuple(np.array(a, copy=True) for a in inputs))
        return self.inner.run(graph, *inputs)


def offline_stream(proc: ModelProcessor, audio: np.ndarray) -> np.ndarray:
    """The processor's output for a clip, call by call as the engine feeds it (silence before the clip),
    with its delay removed: sample n of the result is input sample n restyled. Worked example: stride 192,
    delay 480, a 1000-sample clip -> ceil(1480 / 192) = 8 calls, output samples 480..1479 kept."""
    w, s, d = proc.window, proc.stride, proc.delay_samples
    calls = -(-(len(audio) + d) // s)
    padded = np.zeros(w + calls * s, np.float32)
    padded[w : w + len(audio)] = audio
    out = np.empty(calls * s, np.float32)
    for i in range(calls):
        proc.process(padded[(i + 1) * s : (i + 1) * s + w], out[i * s : (i + 1) * s])
    return out[d : d + len(audio)]


def _sources(data_dir: Path, split: str, count: int, seconds: float, p_synth: float,
             rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, str, str]]:
    """(source, true target, source description, target style) for ``count`` random clips of ``split``."""
    import soundfile as sf

    from diffusion.synth_augment import SynthAugmentConfig, draw_voice, render_voice

    manifest = _dataset_manifest(data_dir)
    clips = [c for c in manifest["clips"] if c["split"] == split]
    if not clips:
        raise StylehostError(f"no {split} clips in {data_dir}: run `stylehost data render`")
    sr, styles = int(manifest["sample_rate"]), list(manifest["styles"])
    n = int(seconds * sr)
    out = []
    for index in rng.choice(len(clips), size=min(count, len(clips)), replace=False):
        clip = clips[int(index)]
        src_style, tgt_style = rng.choice(styles, size=2, replace=False)
        offset = int(rng.integers(0, max(1, clip["samples"] - n)))
        target, _ = sf.read(data_dir / clip["audio"]["fluidr3"][tgt_style]["path"], dtype="float32")
        if rng.random() < p_synth and clip.get("notes"):
            voice = draw_voice(rng, SynthAugmentConfig(p_synth=1.0))
            source = render_voice(clip["notes"], offset, n, sr, voice, seed=int(rng.integers(1 << 31)))
            what = "synth voice"
        else:
            font = str(rng.choice(list(clip["audio"])))
            audio, _ = sf.read(data_dir / clip["audio"][font][src_style]["path"], dtype="float32")
            source, what = audio[offset : offset + n], f"{font} {src_style}"
        out.append((source, target[offset : offset + n], what, str(tgt_style)))
    return out


def _dataset_manifest(data_dir: Path) -> dict[str, Any]:
    """The rendered dataset's manifest.json (`stylehost data render`), read as JSON: the training side's
    reader (diffusion/data.py) is not the runtime's to import."""
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise StylehostError(f"no dataset at {data_dir} (missing manifest.json): run `stylehost data render`")
    return dict(json.loads(path.read_text()))


def _processor(bundle: Bundle, backend: Backend, style: str, steps: int, strength: float) -> ModelProcessor:
    proc = ModelProcessor(bundle, backend, emit=int(bundle.defaults["emit"]))
    proc.set_params(style_mix={style: 1.0}, steps=steps, strength=strength)
    return proc


def calibration_feeds(bundle: Bundle, data_dir: Path, cfg: QuantizeConfig) -> list[dict[str, np.ndarray]]:
    """Real denoiser inputs: training clips streamed through the bundle's processor (fp32), every call kept,
    then ``cfg.windows`` of them evenly spread."""
    from realtime.backends.ort import OrtBackend

    rng = np.random.default_rng(cfg.seed)
    recorder = RecordingBackend(OrtBackend(bundle, "cpu", precision="fp32"))
    for source, _, _, style in _sources(data_dir, "train", cfg.clips, cfg.seconds, cfg.p_synth, rng):
        steps = int(rng.choice(cfg.steps))
        strength = float(rng.choice(cfg.strengths))
        offline_stream(_processor(bundle, recorder, style, steps, strength), source)
    names = [io["name"] for io in bundle.graph_io("denoiser")["inputs"]]
    keep = np.linspace(0, len(recorder.feeds) - 1, min(cfg.windows, len(recorder.feeds))).round().astype(int)
    return [dict(zip(names, recorder.feeds[i], strict=True)) for i in keep]


def write_int8(bundle: Bundle, feeds: list[dict[str, np.ndarray]], target: Path) -> None:
    """Quantize the bundle's denoiser with ``feeds`` as calibration data, into ``target``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    with tempfile.TemporaryDirectory() as tmp:
        # Batch 1, the engine's: every Shape/Gather/Unsqueeze chain of the export folds into a constant.
        model = onnx.load(str(bundle.graph_path("denoiser")))
        make_dim_param_fixed(model.graph, "batch", 1)
        fix_output_shapes(model)
        fixed, pre = Path(tmp) / "fixed.onnx", Path(tmp) / "pre.onnx"
        onnx.save(model, str(fixed))
        # The symbolic shape pass cannot follow the exported GroupNorm reshapes; ONNX's own inference can.
        quant_pre_process(str(fixed), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / INT8_FILE
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
        shutil.move(str(out), str(target))


def _session(path: Path):  # -> onnxruntime.InferenceSession
    from export.onnx import ort_session

    return ort_session(path, threads=1)


def denoiser_error(bundle: Bundle, int8_path: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """x0 of the int8 graph against fp32 on the same feeds, in the normalised log-mel units the model
    works in (1 unit = logmel_std nats = 30 dB at the default 3.5)."""
    fp32, int8 = _session(bundle.graph_path("denoiser")), _session(int8_path)
    err, ref = [], []
    for feed in feeds:
        a, b = fp32.run(None, feed)[0], int8.run(None, feed)[0]
        err.append(b - a)
        ref.append(a)
    e, r = np.concatenate([x.ravel() for x in err]), np.concatenate([x.ravel() for x in ref])
    std = float(bundle.sampler["logmel_std"])
    return {"max_abs": float(np.abs(e).max()), "rms": float(np.sqrt(np.mean(e**2))),
            "rms_x0": float(np.sqrt(np.mean(r**2))), "rms_db": float(np.sqrt(np.mean(e**2)) * std * 20 / np.log(10)),
            "feeds": len(feeds)}


def call_times(bundle: Bundle, int8_path: Path, feed: dict[str, np.ndarray], calls: int) -> dict[str, dict[str, float]]:
    """p50/p99 ms of both graphs, interleaved call by call (a loaded machine slows both alike), each call
    after a 4 ms sleep as in the engine's stride wait (a call right after another runs warmer)."""
    sessions = {"fp32": _session(bundle.graph_path("denoiser")), "int8": _session(int8_path)}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for s in sessions.values():
        for _ in range(20):
            s.run(None, feed)
    for i in range(calls):
        for name in (("fp32", "int8") if i % 2 else ("int8", "fp32")):
            time.sleep(0.004)
            t0 = time.perf_counter()
            sessions[name].run(None, feed)
            times[name].append(1000.0 * (time.perf_counter() - t0))
    return {k: {"p50_ms": float(np.median(v)), "p99_ms": float(np.percentile(v, 99)), "max_ms": float(np.max(v))}
            for k, v in times.items()}


def render_check(bundle: Bundle, data_dir: Path, cfg: QuantizeConfig) -> tuple[dict[str, Any], list]:
    """Validation clips rendered with both graphs at the bundle's defaults: log-mel distance (dB) of int8
    to fp32 and of each to the true target. Returns the figures and the recorded val feeds."""
    from diffusion.features import SpectrogramTransform
    from diffusion.metrics import log_mel_distance
    from realtime.backends.ort import OrtBackend

    rng = np.random.default_rng(cfg.seed + 1)
    transform = SpectrogramTransform(bundle.spectrogram)
    fp32 = RecordingBackend(OrtBackend(bundle, "cpu", precision="fp32"))
    int8 = OrtBackend(bundle, "cpu", precision="int8")
    steps, strength = int(bundle.defaults["steps"]), float(bundle.defaults["strength"])
    rows = []
    for source, target, what, style in _sources(data_dir, "val", cfg.check_clips, cfg.seconds, cfg.p_synth, rng):
        a = offline_stream(_processor(bundle, fp32, style, steps, strength), source)
        b = offline_stream(_processor(bundle, int8, style, steps, strength), source)
        rows.append({"source": what, "target": style, "int8_vs_fp32_db": log_mel_distance(b, a, transform),
                     "fp32_vs_target_db": log_mel_distance(a, target, transform),
                     "int8_vs_target_db": log_mel_distance(b, target, transform)})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("int8_vs_fp32_db", "fp32_vs_target_db",
                                                             "int8_vs_target_db")}
    names = [io["name"] for io in bundle.graph_io("denoiser")["inputs"]]
    feeds = [dict(zip(names, f, strict=True)) for f in fp32.feeds[:: max(1, len(fp32.feeds) // 200)]]
    return {"steps": steps, "strength": strength, "clips": rows, "mean": mean}, feeds


def quantize_bundle(path: Path, data_dir: Path, cfg: QuantizeConfig = QuantizeConfig(),
                    say=print) -> Bundle:
    """Write ``denoiser_int8.onnx`` into the bundle with its manifest entry and figures; returns the bundle."""
    from diffusion.provenance import command_line, git_commit

    bundle = load_bundle(path)
    say(f"calibrating on {cfg.clips} training clips of {data_dir} ...")
    feeds = calibration_feeds(bundle, data_dir, cfg)
    target = bundle.path / INT8_FILE
    write_int8(bundle, feeds, target)
    say(f"checking on {cfg.check_clips} validation clips ...")
    m = bundle.manifest
    quantized = update_manifest(bundle.path, {
        "graphs": {**m["graphs"], INT8_GRAPH: {**m["graphs"]["denoiser"], "file": INT8_FILE}},
        "files": {**m["files"], INT8_FILE: file_entry(target)}})
    check, val_feeds = render_check(quantized, data_dir, cfg)
    section = {
        "graph": INT8_GRAPH, "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 "
        "activations, Conv only, MinMax ranges", "config": asdict(cfg), "calibration_feeds": len(feeds),
        "denoiser_error": denoiser_error(quantized, target, val_feeds),
        "render": check, "timing": call_times(quantized, target, val_feeds[len(val_feeds) // 2], cfg.timing_calls),
        "runtime": "onnxruntime CPU, 1 intra-op thread, batch 1", "command": command_line(), "git_commit": git_commit(),
    }
    return update_manifest(bundle.path, {"quantization": section})


def add_quantize_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="bundle folder to add the int8 denoiser to, e.g. models/default")
    p.add_argument("--data", type=Path, default=Path("data/paired"), help="rendered dataset folder")
    p.add_argument("--clips", type=int, default=QuantizeConfig.clips, help="training clips for calibration")
    p.add_argument("--check-clips", type=int, default=QuantizeConfig.check_clips, help="validation clips")
    p.add_argument("--seconds", type=float, default=QuantizeConfig.seconds)
    p.add_argument("--seed", type=int, default=QuantizeConfig.seed)


def cli_quantize(args: argparse.Namespace) -> int:
    cfg = QuantizeConfig(clips=args.clips, check_clips=args.check_clips, seconds=args.seconds, seed=args.seed)
    bundle = quantize_bundle(Path(args.model), args.data, cfg)
    q = bundle.manifest["quantization"]
    err, mean, timing = q["denoiser_error"], q["render"]["mean"], q["timing"]
    print(f"wrote {bundle.path / INT8_FILE}: x0 error rms {err['rms']:.4f} (x0 rms {err['rms_x0']:.3f}), "
          f"max {err['max_abs']:.3f}")
    print(f"renders on {len(q['render']['clips'])} val clips: int8 vs fp32 {mean['int8_vs_fp32_db']:.2f} dB log-mel; "
          f"to the target fp32 {mean['fp32_vs_target_db']:.2f}, int8 {mean['int8_vs_target_db']:.2f} dB")
    print(f"denoiser call p50/p99: fp32 {timing['fp32']['p50_ms']:.2f}/{timing['fp32']['p99_ms']:.2f} ms, "
          f"int8 {timing['int8']['p50_ms']:.2f}/{timing['int8']['p99_ms']:.2f} ms")
    return 0
