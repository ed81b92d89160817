"""A bundle whose resynth graph is the learned stage: export parity, manifest, and the live processor
equal to the offline reference (diffusion/stream.py with the stage), as for source-phase bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.checkpoint import load_denoiser
from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig
from diffusion.guide import GuideConfig, GuideStage, load_stage, save_stage
from diffusion.model import Denoiser
from diffusion.resynth import PhaseGuidedResynth
from diffusion.stream import StreamConfig, stream_audio
from export import bundle as B
from export.onnx import TOLERANCE, export_bundle
from realtime.backends.choose import open_backend
from realtime.model_processor import ModelProcessor
from tests.export.tiny import tiny_model
from tests.realtime.test_processor import stream

MIX = {"violin": 0.7, "flute": 0.3}
TINY_GUIDE = GuideConfig(channels=8, blocks=2)


def tiny_stage_file(path: Path, seed: int = 1, spec: SpectrogramConfig | None = None,
                    cfg: GuideConfig = TINY_GUIDE) -> Path:
    """A saved stage perturbed away from its identity init; ``spec`` None: the tiny model's framing."""
    torch.manual_seed(seed)
    if spec is None:
        spec = load_denoiser(tiny_model(path.with_name("for_spec.pt"))).cfg.spectrogram
    stage = GuideStage(spec, cfg, steps=1)
    with torch.no_grad():
        for p in stage.net.parameters():
            p.add_(0.2 * torch.randn_like(p))
    save_stage(path, stage, {"step": 0})
    return path


@pytest.fixture(scope="module", params=[1, 2], ids=["1step", "2steps"])
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> B.Bundle:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("guide_bundles")
    return export_bundle(tiny_model(root / "tiny.pt"), root / "tiny", stage_path=tiny_stage_file(root / "g.pt"),
                         stage_steps=request.param)


def staged_reference(proc: ModelProcessor, x: np.ndarray, length: int, d: Denoiser, cfg: StreamConfig,
                     stage: GuideStage | None) -> np.ndarray:
    """The offline reference of ``x`` (diffusion/stream.py; ``stage`` None: source-phase), aligned as ``proc``
    emits it: ``frame_origin`` hops of silence in front, shifted by the delay, cut to ``length`` samples."""
    lead = proc.frame_origin * proc.hop
    padded = np.concatenate([np.zeros(lead, np.float32), x])
    ref = stream_audio(d, PhaseGuidedResynth(d.cfg.spectrogram), padded, d.style_vector(MIX), cfg, stage=stage)
    return np.concatenate([np.zeros(proc.delay_samples - lead, np.float32), ref])[:length]


def clip(seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(24000 * seconds)) / 24000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t) + 0.1 * np.sin(2 * np.pi * 587 * t)
    return (x + 0.02 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def test_export_writes_the_stage_checked_for_parity(bundle: B.Bundle) -> None:
    stage = bundle.manifest["resynth_stage"]
    steps = stage["steps"]
    assert bundle.resynth_context == (2 * steps, steps) and stage["added_latency_samples"] == 0
    assert bundle.latency_samples == 480  # the stage's look-ahead lies inside the model window's
    assert bundle.manifest["format_version"] == 2 and "guide.pt" in bundle.manifest["files"]
    assert all(err <= TOLERANCE for err in bundle.manifest["parity"]["resynth"].values())
    io = bundle.graph_io("resynth")
    assert io["inputs"][0]["shape"][1] == "context_frames" and io["outputs"][0]["shape"][1] == "emit"
    assert bundle.manifest["benchmark"]["resynth_ms_p50_emit2"] > 0


@pytest.mark.parametrize("emit,steps,strength", [(2, 1, 0.7), (4, 2, 1.0)])
def test_processor_with_stage_equals_offline_reference(bundle: B.Bundle, emit: int, steps: int,
                                                      strength: float) -> None:
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=emit)
    proc.set_params(style_mix=MIX, strength=strength, steps=steps)
    x = clip()
    y = stream(proc, x)
    d = load_denoiser(bundle.torch_weights)
    stage = load_stage(bundle.path / "guide.pt", steps=bundle.manifest["resynth_stage"]["steps"])
    cfg = StreamConfig(emit=emit, steps=steps, strength=strength)
    want = staged_reference(proc, x, len(y), d, cfg, stage)
    plain = staged_reference(proc, x, len(y), d, cfg, None)
    assert np.sqrt(np.mean(want**2)) > 1e-3
    assert np.abs(want - plain).max() > 0.1 * np.abs(want).max()  # the stage is in use, not source-phase
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)


def test_torch_backend_runs_the_stage_like_onnx(bundle: B.Bundle) -> None:
    from export.tensorrt import parity_inputs  # the GPU backends' parity inputs, sized for the stage

    cpu, eager = open_backend(bundle, "cpu"), open_backend(bundle, "torch")
    for graph, inputs in parity_inputs(bundle).items():
        want = eager.run(graph, *inputs)
        assert graph != "resynth" or want.shape[1] == bundle.emit
        np.testing.assert_allclose(cpu.run(graph, *inputs), want, atol=1e-4, rtol=0)
    outs = []
    for backend in ("cpu", "torch"):
        proc = ModelProcessor(bundle, open_backend(bundle, backend))
        proc.set_params(style_mix=MIX, strength=0.7, steps=1)
        outs.append(stream(proc, clip(0.3)))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-4, rtol=0)


def test_emit_too_large_for_the_stage_context_is_refused(bundle: B.Bundle) -> None:
    before = bundle.resynth_context[0]
    with pytest.raises(StylehostError, match="lower emit"):
        ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=bundle.window - bundle.lookahead - before + 1)


def test_manifest_context_outside_the_window_is_refused(bundle: B.Bundle, tmp_path: Path) -> None:
    import json
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle.path, copy)
    m = json.loads((copy / B.MANIFEST).read_text())
    m["resynth_stage"]["context_after"] = bundle.lookahead + 1
    (copy / B.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StylehostError, match="context_after"):
        B.load_bundle(copy)


def test_export_cli_picks_the_stage_and_keeps_sections(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stylehost.cli import main

    model = tiny_model(tmp_path / "tiny.pt")
    out = tmp_path / "b"
    assert main(["export", "onnx", "--model", str(model), "--out", str(out)]) == 0
    assert B.load_bundle(out).resynth_context == (0, 0)  # plain export: source-phase resynthesis
    B.update_manifest(out, {"eval": {"note": "kept"}, "defaults": {"steps": 1, "strength": 0.7, "emit": 2}})
    stage = tiny_stage_file(tmp_path / "g.pt")
    assert main(["export", "onnx", "--model", str(model), "--out", str(out), "--force", "--stage", str(stage),
                 "--stage-steps", "2", "--keep-sections", "eval,defaults,distill"]) == 0
    again = B.load_bundle(out)
    assert again.resynth_context == (4, 2) and again.manifest["eval"] == {"note": "kept"}
    assert again.defaults["emit"] == 2 and "distill" not in again.manifest
    assert "learned stage, 2 step(s)" in capsys.readouterr().out


def test_a_stage_trained_on_the_excitation_exports_with_its_excitation_section(tmp_path: Path) -> None:
    """A stage trained (guide-train excitation=true) to shape the harmonic excitation would be fed the
    wrong frames without it: its bundle's manifest carries the excitation the engine then plays."""
    from diffusion.excitation import ExcitationConfig
    from export.onnx import stage_excitation

    plain = tiny_stage_file(tmp_path / "plain.pt")
    assert stage_excitation(plain) is None
    assert export_bundle(tiny_model(tmp_path / "m.pt"), tmp_path / "b0", stage_path=plain).excitation is None
    stage = load_stage(plain)
    trained = tmp_path / "exc.pt"
    save_stage(trained, stage, {"step": 0, "config": {"excitation": True, "harmonic": {"noise_db": -36.0}}})
    bundle = export_bundle(tiny_model(tmp_path / "m.pt"), tmp_path / "b1", stage_path=trained)
    assert bundle.excitation == ExcitationConfig(noise_db=-36.0).to_dict()
