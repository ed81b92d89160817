"""`stylehost export onnx` for a causal streaming model (issue 17): the denoiser graph carries its state.

A causal denoiser (diffusion/causal.py) computes each frame once: a live call feeds the S new frames and the
state its time convolutions kept from the call before, and gets S frames of x0 and the new state. The bundle
is the usual one (export/bundle.py) with a ``streaming`` section:

    streaming.kind              "causal"
    streaming.causal_lookahead  L_c: input frames the network hears after the one it emits
    streaming.receptive_field   frames one output frame depends on
    streaming.state             [{name, shape}] per time convolution, shape without the batch axis

and these graphs, every axis fixed and the batch 1 (S = ``emit``, the frames per call; T = ``window`` = L + S +
context_before frames, what the processor keeps for the stage; L = ``lookahead`` = L_c + context_after):

    condition.onnx sigma (1,), style_vec (1,emb) -> c_skip, c_out, c_in (1,1,1,1), gain_i, shift_i (1,C_i,1,1)
    denoiser.onnx  x (1,1,mels,S), source (1,C,mels,S), the condition's outputs, state_0..state_n
                   -> x0 (1,1,mels,S), state_0_out..state_n_out
    frontend.onnx  (1, num_samples(S)) audio -> (1, mels, S) log-mel of the S newest frames
    resynth.onnx   the stage, as in every bundle, on its S + context frames

The condition graph is everything the network computes from sigma and style alone (the noise embedding and
every block's FiLM; without them the one-frame denoiser has 215 nodes after ONNX Runtime's fusions instead of
281): a live stream runs it when the style or the schedule changes, not per call (``streaming.condition`` names
its outputs).
``condition_graph=False`` exports the earlier form, sigma and style_vec as denoiser inputs (no condition graph).

Export checks itself as export/onnx.py does: ORT against torch on random inputs with random state, and on a
real clip streamed call by call against the whole-sequence torch pass, before the folder is renamed into place.
"""

from __future__ import annotations

import datetime
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diffusion.causal import CausalDenoiser
from diffusion.checkpoint import load_checkpoint, load_denoiser, meta_source_input, model_sampler
from diffusion.errors import StylehostError
from diffusion.guide import GuideStage, load_stage
from diffusion.model import parameter_count
from diffusion.resynth import PhaseGuidedResynth
from export import bundle as B
from export.graphs import Frontend
from export.onnx import (
    OPSET,
    SCHEDULES,
    TOLERANCE,
    _publish,
    build_manifest,
    bundle_framing,
    live_excitation,
    ort_session,
    real_audio,
    stage_section,
    time_session,
)

KIND = "causal"


class StreamStep(nn.Module):
    """``CausalDenoiser.step`` with the state as flat graph inputs and outputs (sigma and style_vec as inputs:
    the form without a condition graph)."""

    def __init__(self, denoiser: CausalDenoiser) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, source: torch.Tensor, style_vec: torch.Tensor,
                *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x0, new = self.denoiser.step(x, sigma, source, style_vec, list(state))
        return (x0, *new)


class ConditionedStep(nn.Module):
    """``CausalDenoiser.step_conditioned``: x, source, the condition tensors, then the state, flat."""

    def __init__(self, denoiser: CausalDenoiser) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.n_cond = len(denoiser.condition_shapes())

    def forward(self, x: torch.Tensor, source: torch.Tensor, *rest: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cond, state = list(rest[: self.n_cond]), list(rest[self.n_cond :])
        x0, new = self.denoiser.step_conditioned(x, source, cond, state)
        return (x0, *new)


class Condition(nn.Module):
    """``CausalDenoiser.condition``: (sigma, style_vec) -> the condition tensors, flat."""

    def __init__(self, denoiser: CausalDenoiser) -> None:
        super().__init__()
        self.denoiser = denoiser

    def forward(self, sigma: torch.Tensor, style_vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.denoiser.condition(sigma, style_vec))


def state_names(denoiser: CausalDenoiser) -> list[str]:
    return [f"state_{i}" for i in range(len(denoiser.init_state()))]


def streaming_section(denoiser: CausalDenoiser, condition_graph: bool = True) -> dict[str, Any]:
    state = denoiser.init_state()
    section: dict[str, Any] = {
        "kind": KIND, "causal_lookahead": denoiser.cfg.lookahead, "receptive_field": denoiser.net.receptive_field,
        "state": [{"name": n, "shape": list(s.shape[1:])} for n, s in zip(state_names(denoiser), state, strict=True)]}
    if condition_graph:
        section["condition"] = [{"name": n, "shape": list(shape)} for n, shape in denoiser.condition_shapes()]
    return section


def _io(name: str, *shape: int | str) -> dict[str, Any]:
    return {"name": name, "dtype": "float32", "shape": list(shape)}


def io_specs(denoiser: CausalDenoiser, stage: GuideStage, frames: int, condition_graph: bool = True
             ) -> dict[str, dict[str, Any]]:
    """Every axis fixed, the batch at 1 (one live stream per processor): with static shapes ONNX Runtime folds
    the traced shape arithmetic away (the causal graph went from 1,412 nodes to 779 and its call from 4.20 to
    3.18 ms p50 at 2 frames, measured interleaved on this CPU under load), which dynamic axes prevent."""
    cfg = denoiser.cfg
    m, n_fft, c = cfg.n_mels, cfg.spectrogram.n_fft, cfg.source_channels
    states = [(n, list(s.shape[1:])) for n, s in zip(state_names(denoiser), denoiser.init_state(), strict=True)]
    n = frames + stage.before + stage.after
    state_ins = [_io(n, 1, *s) for n, s in states]
    graphs: dict[str, dict[str, Any]] = {}
    if condition_graph:
        cond = [_io(name, 1, *shape) for name, shape in denoiser.condition_shapes()]
        graphs["condition"] = {"inputs": [_io("sigma", 1), _io("style_vec", 1, cfg.emb_dim)], "outputs": cond}
        ins = [_io("x", 1, 1, m, frames), _io("source", 1, c, m, frames), *cond, *state_ins]
    else:
        ins = [_io("x", 1, 1, m, frames), _io("sigma", 1), _io("source", 1, c, m, frames),
               _io("style_vec", 1, cfg.emb_dim), *state_ins]
    return {
        **graphs,
        "denoiser": {"inputs": ins,
                     "outputs": [_io("x0", 1, 1, m, frames), *(_io(f"{n}_out", 1, *s) for n, s in states)]},
        "frontend": {"inputs": [_io("audio", 1, cfg.spectrogram.num_samples(frames))],
                     "outputs": [_io("logmel", 1, m, frames)]},
        "resynth": {"inputs": [_io("frames", 1, n, n_fft), _io("pred_logmel", 1, m, n)],
                    "outputs": [_io("out_frames", 1, frames, n_fft)]},
    }


def example_inputs(denoiser: CausalDenoiser, stage: GuideStage, frames: int, batch: int = 1,
                   seed: int = 0, condition_graph: bool = True) -> dict[str, tuple[torch.Tensor, ...]]:
    """Seeded random inputs of every graph, the state random too (a stream's state is never zeros for long); with
    a condition graph the denoiser's condition tensors are the condition of the random sigma and style."""
    cfg = denoiser.cfg
    g = torch.Generator().manual_seed(seed)
    m, n_fft = cfg.n_mels, cfg.spectrogram.n_fft
    sigma = torch.exp(torch.empty(batch).uniform_(-3.9, 3.7, generator=g))
    x = torch.randn(batch, 1, m, frames, generator=g) * sigma[:, None, None, None]
    weights = torch.rand(batch, len(cfg.styles), generator=g)
    style = (weights / weights.sum(1, keepdim=True)) @ denoiser.net.style_table.detach()
    state = [torch.randn(batch, *s.shape[1:], generator=g) for s in denoiser.init_state()]
    n = frames + stage.before + stage.after
    source = torch.randn(batch, cfg.source_channels, m, frames, generator=g)
    if condition_graph:
        with torch.no_grad():
            cond = denoiser.condition(sigma, style)
        graphs: dict[str, tuple[torch.Tensor, ...]] = {"condition": (sigma, style),
                                                        "denoiser": (x, source, *cond, *state)}
    else:
        graphs = {"denoiser": (x, sigma, source, style, *state)}
    return {
        **graphs,
        "frontend": (0.1 * torch.randn(batch, cfg.spectrogram.num_samples(frames), generator=g),),
        "resynth": (0.1 * torch.randn(batch, n, n_fft, generator=g), torch.randn(batch, m, n, generator=g) - 4.0),
    }


def build_modules(denoiser: CausalDenoiser, stage: GuideStage, condition_graph: bool = True
                  ) -> dict[str, nn.Module]:
    resynth = PhaseGuidedResynth(denoiser.cfg.spectrogram).eval()
    d = denoiser.eval()
    step = {"condition": Condition(d).eval(), "denoiser": ConditionedStep(d).eval()} if condition_graph else {
        "denoiser": StreamStep(d).eval()}
    return {**step, "frontend": Frontend(resynth).eval(), "resynth": stage.eval()}


def export_graphs(denoiser: CausalDenoiser, stage: GuideStage, frames: int, folder: Path,
                  condition_graph: bool = True) -> dict[str, Any]:
    specs = io_specs(denoiser, stage, frames, condition_graph)
    examples = example_inputs(denoiser, stage, frames, condition_graph=condition_graph)
    graphs = {}
    for name, module in build_modules(denoiser, stage, condition_graph).items():
        spec = specs[name]
        dynamic = {io["name"]: {i: a for i, a in enumerate(io["shape"]) if isinstance(a, str)}
                   for io in spec["inputs"] + spec["outputs"]}
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, examples[name], str(folder / f"{name}.onnx"),
                                  input_names=[i["name"] for i in spec["inputs"]],
                                  output_names=[o["name"] for o in spec["outputs"]], dynamic_axes=dynamic,
                                  opset_version=OPSET, dynamo=False)
        except Exception as exc:  # the exporter raises many types; one message with context
            raise StylehostError(f"ONNX export of the streaming {name} graph failed: {exc}") from exc
        graphs[name] = {"file": f"{name}.onnx", "opset": OPSET, **spec}
    return graphs


def check_parity(denoiser: CausalDenoiser, stage: GuideStage, frames: int, folder: Path, graphs: dict[str, Any],
                 audio: np.ndarray) -> dict[str, Any]:
    """Max |ORT - torch| per graph on random inputs, and on a real clip streamed ``frames`` per call through the
    ORT denoiser with its state fed back (its condition from the ORT condition graph), against the torch
    whole-sequence pass (the stream's own definition)."""
    conditioned = "condition" in graphs
    mods = build_modules(denoiser, stage, conditioned)
    report: dict[str, Any] = {"tolerance": TOLERANCE, "runtime": "onnxruntime CPU, fp32"}
    failures = []
    sessions = {name: ort_session(folder / spec["file"]) for name, spec in graphs.items()}
    for name, spec in graphs.items():
        err = 0.0
        for seed in (7, 8, 9):  # batch 1 each (the graphs are static)
            inputs = example_inputs(denoiser, stage, frames, seed=seed, condition_graph=conditioned)
            with torch.no_grad():
                want = mods[name](*inputs[name])
            want_list = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
            feeds = {io["name"]: t.numpy() for io, t in zip(spec["inputs"], inputs[name], strict=True)}
            got = sessions[name].run(None, feeds)
            err = max(err, *(float(np.max(np.abs(g - w))) for g, w in zip(got, want_list, strict=True)))
        report[name] = {"random": err}
        if not err <= TOLERANCE:
            failures.append(f"{name} on random inputs: max |ORT - torch| = {err:.2e}")
    report["denoiser"]["streamed_real"] = err = streamed_error(denoiser, sessions, graphs, frames, audio)
    if not err <= TOLERANCE:
        failures.append(f"denoiser streamed over a real clip: max |ORT - torch| = {err:.2e}")
    if failures:
        raise StylehostError(f"parity check failed (tolerance {TOLERANCE:g}): {'; '.join(failures)}; "
                             "bundle not written")
    return report


def streamed_error(denoiser: CausalDenoiser, sessions: dict[str, Any], graphs: dict[str, Any], frames: int,
                   audio: np.ndarray, calls: int = 48) -> float:
    """Max |ORT streamed - torch whole pass| of x0 over ``calls`` calls of ``frames`` frames of a real clip."""
    cfg = denoiser.cfg
    n = calls * frames
    wave = torch.from_numpy(audio[: cfg.spectrogram.num_samples(n)])[None]
    with torch.no_grad():
        source = cfg.normalize(PhaseGuidedResynth(cfg.spectrogram).transform.log_mel(wave))[:, None]
        x = source + 40.0 * torch.randn(source.shape, generator=torch.Generator().manual_seed(3))
        sigma = torch.full((1,), 40.0)
        style = denoiser.style_vector({cfg.styles[0]: 1.0}, 1)
        want = denoiser(x, sigma, source, style).numpy()
    names = [io["name"] for io in graphs["denoiser"]["inputs"]]
    if "condition" in graphs:  # the condition graph's outputs, computed once, fed to every call
        fixed = sessions["condition"].run(None, {"sigma": sigma.numpy(), "style_vec": style.numpy()})
    else:
        fixed = [sigma.numpy(), style.numpy()]
    state = [s.numpy() for s in denoiser.init_state()]
    got = []
    for c in range(calls):
        cols = slice(c * frames, (c + 1) * frames)
        x_c, source_c = x[..., cols].numpy(), source[..., cols].numpy()
        feeds = [x_c, source_c, *fixed] if "condition" in graphs else [x_c, fixed[0], source_c, fixed[1]]
        out = sessions["denoiser"].run(None, dict(zip(names, [*feeds, *state], strict=True)))
        got.append(out[0])
        state = out[1:]
    return float(np.max(np.abs(np.concatenate(got, axis=-1) - want)))


def time_denoiser(folder: Path, denoiser: CausalDenoiser, stage: GuideStage, frames: int,
                  calls: int = 200, condition_graph: bool = True) -> dict[str, Any]:
    """Median and p99 ms of one batch-1 streaming call (``frames`` frames with the state), ORT CPU, 1 thread."""
    sess = ort_session(folder / "denoiser.onnx")
    names = [i.name for i in sess.get_inputs()]
    example = example_inputs(denoiser, stage, frames, condition_graph=condition_graph)["denoiser"]
    feeds = {n: t.numpy() for n, t in zip(names, example, strict=True)}
    p50, p99 = time_session(sess, feeds, calls, warmup=20)
    return {"denoiser_ms_p50": p50, "denoiser_ms_p99": p99, "frames_per_call": frames,
            "runtime": "onnxruntime CPU, 1 intra-op thread, batch 1", "calls": calls}


def export_streaming_bundle(model_path: Path, out: Path, stage_path: Path, frames: int = 2, name: str | None = None,
                            version: str | None = None, audio_path: Path | None = None, stage_steps: int = 1,
                            force: bool = False, excitation_lag: int | None = None,
                            condition_graph: bool = True) -> B.Bundle:
    """Export, check, write the manifest, verify the folder, rename into place (as ``export_bundle``;
    ``excitation_lag`` as there: 0 lets a network with no look-ahead play a stage with no after-frame;
    ``condition_graph`` False: sigma and style_vec stay denoiser inputs, the module docstring's earlier form)."""
    out = Path(out)
    if out.exists() and not force:
        raise StylehostError(f"{out} already exists; pass --force to replace it")
    denoiser = load_denoiser(model_path)
    if not isinstance(denoiser, CausalDenoiser):
        raise StylehostError(f"{model_path} is not a causal model (model.causal): export it without --streaming")
    if frames < 1:
        raise StylehostError(f"frames per call must be >= 1, got {frames}")
    meta = load_checkpoint(model_path).get("meta") or {}
    sampler = model_sampler(model_path)
    if sampler not in SCHEDULES:
        raise StylehostError(f"{model_path} asks for sampler {sampler!r}; export knows {', '.join(SCHEDULES)}")
    if meta_source_input(meta) != "source":
        raise StylehostError(f"{model_path} hears {meta_source_input(meta)!r}; streaming bundles hear the source only")
    cfg = denoiser.cfg
    stage = load_stage(stage_path, steps=stage_steps)
    spec = bundle_framing(denoiser, stage)  # a stage on other features is refused before anything is exported
    look = cfg.lookahead + stage.after  # the stage reads `after` predicted frames past the ones it emits
    extra: dict[str, Any] = {"resynth_stage": stage_section(stage, Path(stage_path), look)}
    # one rule for every path (the live processor, eval, window export): the network's look-ahead covers the lag
    excitation = live_excitation(Path(stage_path), stage, look, excitation_lag,
                                 f"export of {model_path} with the stage {stage_path}")
    if excitation is not None:
        extra["excitation"] = excitation
    model_sha = B.sha256_file(Path(model_path))
    version = version or str(meta.get("version") or f"{datetime.date.today():%Y%m%d}-{model_sha[:8]}")
    audio = real_audio(denoiser, audio_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        graphs = export_graphs(denoiser, stage, frames, tmp, condition_graph)
        parity = check_parity(denoiser, stage, frames, tmp, graphs, audio)
        bench = time_denoiser(tmp, denoiser, stage, frames, condition_graph=condition_graph)
        shutil.copyfile(model_path, tmp / "model.pt")
        shutil.copyfile(stage_path, tmp / "guide.pt")
        files = {p.name: B.file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        window = look + frames + stage.before
        manifest = build_manifest(denoiser, name or out.name, version, Path(model_path), sampler, graphs, {
            # the window bundle's framing keys, replaced by the streaming ones (module docstring)
            "window": window, "lookahead": look, "emit": frames,
            "latency_samples": spec.synthesis_span + (look - 1) * spec.hop, "stride_samples": frames * spec.hop,
            "streaming": streaming_section(denoiser, condition_graph), "files": files, "parity": parity,
            "benchmark": bench,
            "size": {"parameters": parameter_count(denoiser)},
            "training": {k: v for k, v in meta.items() if k in ("kind", "step", "config", "provenance", "teacher")},
            "defaults": {"steps": 1, "strength": 1.0, "emit": frames}, **extra}, spec)
        (tmp / B.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        B.load_bundle(tmp)
        _publish(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return B.load_bundle(out)
