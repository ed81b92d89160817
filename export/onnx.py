"""`stylehost export onnx`: a model file -> a checked bundle folder (see export/bundle.py for the layout).

Export checks itself (as neutone's ``save_neutone_model``): every graph is exported to a temporary
folder, reloaded in ONNX Runtime (CPU, 1 thread) and compared with the torch module on seeded random
inputs and on real windows; only a bundle whose every figure is within ``TOLERANCE`` is renamed
into place, so a failing export never leaves a bundle behind.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusion.causal import CausalDenoiser
from diffusion.checkpoint import load_checkpoint, load_denoiser, meta_source_input, model_sampler
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig, check_stage_reach, heard_channels
from diffusion.guide import GuideStage, load_stage
from diffusion.guide import parameter_count as stage_parameters
from diffusion.model import Denoiser, count_macs, parameter_count
from diffusion.spectrogram import SpectrogramConfig, same_features
from export import bundle as B
from export.graphs import build_modules, context_of, example_inputs, io_specs

OPSET = 17
TOLERANCE = 1e-4  # fp32 parity, max absolute difference on every graph output
SCHEDULES = {  # diffusion.schedule functions, by the sampler a model file names (checkpoint.model_sampler)
    "euler": "transfer_sigmas: Karras ramp from strength_sigma(strength) to sigma_min, then 0",
    "consistency": "consistency_sigmas: first `steps` of a steps+1 transfer ramp, then 0; re-noise with step i",
}
DEMO_CLIP = Path(__file__).resolve().parents[1] / "demo" / "plucked_melody.flac"


def export_graphs(denoiser: Denoiser, folder: Path, stage: GuideStage | None = None) -> dict[str, Any]:
    """Write denoiser/frontend/resynth .onnx into ``folder``; returns the manifest's 'graphs' section.
    With a learned ``stage`` (diffusion/guide.py) it is the resynth graph."""
    specs = io_specs(denoiser, stage)
    examples = example_inputs(denoiser, stage=stage)
    graphs = {}
    for name, module in build_modules(denoiser, stage).items():
        spec = specs[name]
        file = f"{name}.onnx"
        dynamic = {
            io["name"]: {i: axis for i, axis in enumerate(io["shape"]) if isinstance(axis, str)}
            for io in spec["inputs"] + spec["outputs"]
        }
        try:
            # The TorchScript exporter's deprecation and tracer notes (GroupNorm's batch-size check) are
            # expected: dynamic axes are verified by the parity check at another batch size.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module, examples[name], str(folder / file), input_names=[i["name"] for i in spec["inputs"]],
                    output_names=[o["name"] for o in spec["outputs"]], dynamic_axes=dynamic, opset_version=OPSET,
                    dynamo=False,
                )
        except Exception as exc:  # the exporter raises many types; one message with context
            raise StylehostError(f"ONNX export of the {name} graph failed: {exc}") from exc
        graphs[name] = {"file": file, "opset": OPSET, **spec}
    return graphs


def real_audio(denoiser: Denoiser, audio_path: Path | None, seconds: float = 4.0) -> np.ndarray:
    """Mono audio at the model rate for the real-window parity check: the given file or the demo clip."""
    import soundfile as sf
    import soxr

    path = audio_path or DEMO_CLIP
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StylehostError(f"cannot read {path} for the parity check: {exc}") from exc
    mono = audio.mean(axis=1)
    target = denoiser.cfg.spectrogram.sample_rate
    if rate != target:
        mono = soxr.resample(mono, rate, target)
    mono = mono[: int(seconds * target)]
    if len(mono) < denoiser.cfg.spectrogram.num_samples(denoiser.cfg.window) * 2:
        raise StylehostError(f"{path} is too short for the parity check")
    return np.ascontiguousarray(mono, dtype=np.float32)


def real_inputs(denoiser: Denoiser, audio: np.ndarray, batch: int = 8, emit: int = 4,
                stage: GuideStage | None = None) -> dict[str, tuple]:
    """Inputs of every graph cut from real audio: windows spread over the clip, noised as the sampler
    would at sigmas from sigma_min to sigma_max, and the resynthesis of a real model prediction
    (with a stage: its context frames too)."""
    cfg = denoiser.cfg
    mods = build_modules(denoiser, stage)
    samples, hop, n_fft = cfg.spectrogram.num_samples(cfg.window), cfg.spectrogram.hop, cfg.spectrogram.n_fft
    starts = np.linspace(0, len(audio) - samples, batch).astype(int) // hop * hop
    wave = torch.from_numpy(np.stack([audio[s : s + samples] for s in starts]))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        heard = cfg.normalize(mods["frontend"](wave))[:, None]
        # A two-channel model hears the input and its excitation; parity only needs real second windows,
        # so the input's windows read half a window later stand in (the export has no excitation to run).
        later = torch.roll(heard, shifts=-cfg.window // 2, dims=-1)
        source = torch.cat([heard, later], dim=1)[:, : cfg.source_channels]
        sigma = torch.exp(torch.linspace(np.log(cfg.sigma_min), np.log(cfg.sigma_max), batch))
        x = heard + sigma[:, None, None, None] * torch.randn(heard.shape, generator=g)
        style = denoiser.style_vector({cfg.styles[0]: 0.5, cfg.styles[-1]: 0.5}, batch)
        pred = cfg.denormalize(denoiser(x, sigma, source, style))[:, 0]
    before, after = context_of(stage)
    first = cfg.window - cfg.lookahead - emit - before
    n = emit + before + after
    frames = torch.stack([wave[:, (first + s) * hop : (first + s) * hop + n_fft] for s in range(n)], dim=1)
    return {
        "denoiser": (x, sigma, source, style),
        "frontend": (wave,),
        "resynth": (frames.contiguous(), pred[:, :, first : first + n].contiguous()),
    }


def ort_session(path: Path, threads: int = 1):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_session(session, feeds: dict[str, np.ndarray], repeats: int, warmup: int = 10,
                 runs_per_repeat: int = 1) -> tuple[float, float]:
    """(median, p99) ms of ``runs_per_repeat`` back-to-back runs of ``session`` on ``feeds``, after
    ``warmup`` untimed runs (the first calls pay for allocation and thread start-up)."""
    for _ in range(warmup):
        session.run(None, feeds)
    times = np.empty(repeats)
    for r in range(repeats):
        t0 = time.perf_counter()
        for _ in range(runs_per_repeat):
            session.run(None, feeds)
        times[r] = 1000.0 * (time.perf_counter() - t0)
    return float(np.median(times)), float(np.percentile(times, 99))


def check_parity(denoiser: Denoiser, folder: Path, graphs: dict[str, Any], audio: np.ndarray,
                 stage: GuideStage | None = None) -> dict[str, Any]:
    """Max |ORT - torch| per graph on random and on real inputs; StylehostError if any exceeds TOLERANCE."""
    mods = build_modules(denoiser, stage)
    report: dict[str, Any] = {"tolerance": TOLERANCE, "runtime": "onnxruntime CPU, fp32"}
    cases = {"random": example_inputs(denoiser, batch=4, seed=7, emit=2, stage=stage),
             "real": real_inputs(denoiser, audio, stage=stage)}
    failures = []
    for name, spec in graphs.items():
        sess = ort_session(folder / spec["file"])
        report[name] = {}
        for case, inputs in cases.items():
            with torch.no_grad():
                want = mods[name](*inputs[name]).numpy()
            feeds = {io["name"]: t.numpy() for io, t in zip(spec["inputs"], inputs[name], strict=True)}
            got = sess.run(None, feeds)[0]
            err = float(np.max(np.abs(got - want)))
            report[name][case] = err
            if not err <= TOLERANCE:  # also catches NaN
                failures.append(f"{name} on {case} inputs: max |ORT - torch| = {err:.2e}")
    if failures:
        raise StylehostError(
            f"parity check failed (tolerance {TOLERANCE:g}): {'; '.join(failures)}; bundle not written"
        )
    return report


def time_resynth(folder: Path, denoiser: Denoiser, stage: GuideStage | None, emit: int,
                 calls: int = 200) -> dict[str, Any]:
    """Median and p99 ms of one batch-1 resynth call (``emit`` frames) in ONNX Runtime CPU, 1 thread."""
    sess = ort_session(folder / "resynth.onnx")
    frames, pred = example_inputs(denoiser, batch=1, emit=emit, stage=stage)["resynth"]
    p50, p99 = time_session(sess, {"frames": frames.numpy(), "pred_logmel": pred.numpy()}, calls, warmup=20)
    return {f"resynth_ms_p50_emit{emit}": p50, f"resynth_ms_p99_emit{emit}": p99}


def stage_section(stage: GuideStage, path: Path, lookahead: int) -> dict[str, Any]:
    """The manifest's 'resynth_stage': what the resynth graph is and the frames it reads."""
    if stage.after > lookahead:
        raise StylehostError(f"the stage reads {stage.after} frames after the emitted ones; the model window has "
                             f"only {lookahead}: fewer steps or a stage with less look-ahead")
    meta = load_checkpoint(path).get("meta") or {}
    return {"kind": "guide", "steps": stage.steps, "context_before": stage.before, "context_after": stage.after,
            "added_latency_samples": 0, "parameters": stage_parameters(stage), "source": str(path),
            "sha256": B.sha256_file(Path(path)), "config": meta.get("config", {}).get("guide"),
            "training": {k: v for k, v in meta.items() if k in ("step", "config", "provenance")},
            "method": "InDI restoration of the source-phase STFT (diffusion/guide.py, docs/guidediff.md)"}


def time_denoiser(folder: Path, denoiser: Denoiser, calls: int = 50) -> dict[str, Any]:
    """Median and p99 ms of one batch-1 denoiser call in ONNX Runtime CPU with 1 thread."""
    sess = ort_session(folder / "denoiser.onnx")
    feeds = {n: t[:1].numpy() for n, t in zip(("x", "sigma", "source", "style_vec"),
                                                  example_inputs(denoiser)["denoiser"], strict=True)}
    p50, p99 = time_session(sess, feeds, calls)
    return {"denoiser_ms_p50": p50, "denoiser_ms_p99": p99,
            "runtime": "onnxruntime CPU, 1 intra-op thread, batch 1", "calls": calls}


def bundle_framing(denoiser: Denoiser | CausalDenoiser, stage: GuideStage | None) -> SpectrogramConfig:
    """The bundle's SpectrogramConfig: the denoiser's features with the stage's resynthesis pair.

    A stage trained on the low-delay pair (guide-train ``synthesis_len``) plays after a denoiser trained on the
    symmetric one: the log-mel features are the same Hann frames either way (SpectrogramConfig.synthesis_len),
    only the synthesis, and so the delay, changes."""
    spec = denoiser.cfg.spectrogram
    if stage is None or stage.spec == spec:
        return spec
    if not same_features(stage.spec, spec):
        raise StylehostError(f"the stage was trained on other features ({stage.spec}) than the denoiser ({spec})")
    return stage.spec


def build_manifest(denoiser: Denoiser | CausalDenoiser, name: str, version: str, source: Path, sampler: str,
                   graphs: dict[str, Any], extra: dict[str, Any], spec: SpectrogramConfig | None = None
                   ) -> dict[str, Any]:
    """``spec``: the bundle's framing (``bundle_framing``), the denoiser's by default."""
    cfg = denoiser.cfg
    spec = spec or cfg.spectrogram
    # see realtime/model_processor.py
    latency = spec.synthesis_span + (cfg.lookahead - 1) * spec.hop  # audit: manifest-latency-span
    return {
        "format": B.FORMAT,
        "format_version": B.FORMAT_VERSION,  # 2: an optional 'resynth_stage' may change the resynth graph
        "model": {"name": name, "version": version, "source": str(source),
                  "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
        "styles": list(cfg.styles),
        "style_table": [[float(v) for v in row] for row in denoiser.net.style_table.detach().numpy()],
        "spectrogram": spec.to_dict(),
        "window": cfg.window,
        "lookahead": cfg.lookahead,
        "emit": cfg.emit,
        "sampler": {"name": sampler, "schedule": SCHEDULES[sampler],
                    "sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max, "rho": cfg.rho,
                    "sigma_data": cfg.sigma_data, "logmel_mean": cfg.logmel_mean, "logmel_std": cfg.logmel_std,
                    "noise": "diffusion.noise.frame_noise(seed, absolute frame, n_mels, step)"},
        "latency_samples": latency,
        "stride_samples": cfg.emit * spec.hop,
        "graphs": graphs,
        "model_config": cfg.to_dict(),
        **extra,
    }


def stage_excitation(path: Path) -> dict[str, Any] | None:
    """The ExcitationConfig a stage file was trained to shape (guide-train ``excitation=true``), else None."""
    config = (load_checkpoint(path).get("meta") or {}).get("config") or {}
    if not config.get("excitation"):
        return None
    return ExcitationConfig(**config.get("harmonic", {})).to_dict()


def live_excitation(stage_path: Path, stage: GuideStage, lookahead: int, lag: int | None,
                    what: str) -> dict[str, Any] | None:
    """The excitation section a bundle plays its stage with: the stage's own (a stage trained on the harmonic
    excitation must be played with it), at ``lag`` hops if given (ExcitationConfig.lag_hops: 0 lets a stage
    with no after-frame play at look-ahead 0), refused by the processor's rule (``check_stage_reach``) if the
    bundle's ``lookahead`` cannot hold that lag. None for a stage trained without it; then a lag is refused."""
    excitation = stage_excitation(stage_path)
    if excitation is None:
        if lag is not None:
            raise StylehostError(f"--excitation-lag needs a stage trained on the harmonic excitation; {stage_path} "
                                 "was trained without it")
        return None
    if lag is not None:
        excitation = ExcitationConfig(**{**excitation, "lag_hops": lag}).to_dict()
    check_stage_reach(stage.after, lookahead, what, int(excitation["lag_hops"]))
    return excitation


def export_bundle(model_path: Path, out: Path, name: str | None = None, version: str | None = None,
                  audio_path: Path | None = None, torch_weights: bool = True, force: bool = False,
                  stage_path: Path | None = None, stage_steps: int = 1, lookahead: int | None = None,
                  window: int | None = None, excitation_lag: int | None = None) -> B.Bundle:
    """The whole command: export, check, write the manifest, verify the folder, rename into place.

    ``stage_path``: a guide stage file (``stylehost guide-train``) exported as the resynth graph with
    ``stage_steps`` InDI steps; without it, source-phase resynthesis. ``lookahead``: play the window model
    with fewer look-ahead frames than it was trained with (Denoiser.play_with_lookahead; the manifest's
    ``lookahead`` and latency say so, its ``training`` section still names the trained one). ``window``: play
    it on fewer frames per call than trained (Denoiser.play_with_window: less compute per call).
    ``excitation_lag``: the live excitation's lag in hops (ExcitationConfig.lag_hops) instead of the one the
    stage was trained with; 0 lets a stage with no after-frame play at look-ahead 0. A lag the bundle's
    look-ahead cannot hold is refused here, before anything is exported, as the processor would refuse it."""
    out = Path(out)
    if out.exists() and not force:
        raise StylehostError(f"{out} already exists; pass --force to replace it")
    denoiser = load_denoiser(model_path)
    if denoiser.cfg.causal is not None:  # its window graph would play, but as a window model: say so instead
        raise StylehostError(f"{model_path} is a causal streaming model (model.causal): bundles of it need the "
                             "denoiser's state in and out of the graph, which export does not write yet (issue 17)")
    denoiser.play_with_lookahead(lookahead).play_with_window(window)
    meta = load_checkpoint(model_path).get("meta") or {}
    sampler = model_sampler(model_path)
    if sampler not in SCHEDULES:
        raise StylehostError(f"{model_path} asks for sampler {sampler!r}; export knows {', '.join(SCHEDULES)}")
    model_sha = B.sha256_file(Path(model_path))
    version = version or str(meta.get("version") or f"{datetime.date.today():%Y%m%d}-{model_sha[:8]}")
    audio = real_audio(denoiser, audio_path)
    stage, extra = None, {}  # type: tuple[GuideStage | None, dict[str, Any]]
    if stage_path is not None:
        stage = load_stage(stage_path, steps=stage_steps)
        extra["resynth_stage"] = stage_section(stage, Path(stage_path), denoiser.cfg.lookahead)
        excitation = live_excitation(Path(stage_path), stage, denoiser.cfg.lookahead, excitation_lag,
                                     f"export of {model_path}")
        if excitation is not None:
            extra["excitation"] = excitation
    elif excitation_lag is not None:
        raise StylehostError("--excitation-lag needs a stage trained on the harmonic excitation (--stage)")
    framing = bundle_framing(denoiser, stage)  # a stage on other features is refused before anything is exported
    heard = meta_source_input(meta)
    if heard_channels(heard) != denoiser.cfg.source_channels:
        raise StylehostError(f"{model_path} hears {denoiser.cfg.source_channels} window(s) per call, but its training "
                             f"config's source_input is {heard!r}: the file is inconsistent")
    if heard != "source":  # a denoiser trained on the excitation must hear it live too (ModelProcessor)
        if "excitation" not in extra:
            raise StylehostError(f"{model_path} was trained to hear the harmonic excitation (source_input {heard!r}); "
                                 "export it with a stage trained on the excitation (--stage)")
        extra["denoiser_input"] = heard
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        graphs = export_graphs(denoiser, tmp, stage)
        parity = check_parity(denoiser, tmp, graphs, audio, stage)
        bench = {**time_denoiser(tmp, denoiser), **time_resynth(tmp, denoiser, stage, emit=2)}
        if torch_weights:
            shutil.copyfile(model_path, tmp / "model.pt")
            if stage_path is not None:
                shutil.copyfile(stage_path, tmp / "guide.pt")
        files = {p.name: B.file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        training = {k: v for k, v in meta.items() if k in ("kind", "step", "config", "provenance", "teacher")}
        size = {"parameters": parameter_count(denoiser), "macs_per_window": count_macs(denoiser)}
        manifest = build_manifest(denoiser, name or out.name, version, Path(model_path), sampler, graphs,
                                  {"files": files, "parity": parity, "benchmark": bench, "size": size,
                                   "training": training, **extra}, framing)
        (tmp / B.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        B.load_bundle(tmp)  # the folder we are about to publish passes the loader's own checks
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return B.load_bundle(out)


def _publish(tmp: Path, out: Path) -> None:
    """Rename tmp into place; an existing bundle (with --force) is moved aside first, then removed."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{hashlib.sha256(str(time.time()).encode()).hexdigest()[:8]}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
