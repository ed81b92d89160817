"""ModelProcessor: streamed through ONNX Runtime it equals the offline reference (diffusion/stream.py)
shifted by its delay; torch and CPU backends agree; style changes crossfade; the CLI runs a bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from diffusion.checkpoint import load_denoiser
from diffusion.errors import StylehostError
from diffusion.resynth import PhaseGuidedResynth
from diffusion.schedule import consistency_sigmas as torch_consistency_sigmas
from diffusion.schedule import transfer_sigmas as torch_transfer_sigmas
from diffusion.stream import StreamConfig, stream_audio
from export import bundle as B
from export.onnx import export_bundle
from export.tensorrt import parity_inputs
from realtime.backends.choose import open_backend
from realtime.commands import ModelFactory, processor_factory
from realtime.model_processor import ModelProcessor, consistency_sigmas, transfer_sigmas
from realtime.params import EngineParams
from realtime.render import render_file
from stylehost.cli import main
from tests.export.tiny import tiny_bundle, tiny_model
from tests.realtime.test_processor import stream

MIX = {"violin": 0.7, "flute": 0.3}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> B.Bundle:
    torch.set_num_threads(1)
    return tiny_bundle(tmp_path_factory.mktemp("bundles"))


def clip(seconds: float = 0.6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(24000 * seconds)) / 24000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t) + 0.1 * np.sin(2 * np.pi * 587 * t)
    return (x + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def offline(bundle: B.Bundle, proc: ModelProcessor, x: np.ndarray, steps: int, strength: float,
            sampler: str = "euler") -> np.ndarray:
    """stream_audio on the clip with ``frame_origin`` hops of silence in front (see model_processor's
    docstring), shifted so that its sample n lines up with the processor's output sample n."""
    d = load_denoiser(bundle.torch_weights)
    lead = proc.frame_origin * proc.hop
    ref = stream_audio(d, PhaseGuidedResynth(d.cfg.spectrogram), np.concatenate([np.zeros(lead, np.float32), x]),
                       d.style_vector(MIX), StreamConfig(emit=proc.S, steps=steps, strength=strength, sampler=sampler))
    return np.concatenate([np.zeros(proc.delay_samples - lead, np.float32), ref])


@pytest.mark.parametrize("steps,strength", [(1, 1.0), (2, 0.8), (4, 0.5)])
def test_numpy_schedules_match_diffusion_schedules(steps: int, strength: float) -> None:
    want = torch_transfer_sigmas(steps, strength, 0.02, 40.0, 7.0).numpy()
    np.testing.assert_allclose(transfer_sigmas(steps, strength, 0.02, 40.0, 7.0), want, rtol=1e-6)
    want = torch_consistency_sigmas(steps, strength, 0.02, 40.0, 7.0).numpy()
    np.testing.assert_allclose(consistency_sigmas(steps, strength, 0.02, 40.0, 7.0), want, rtol=1e-6)


@pytest.mark.parametrize("emit,steps,strength", [(4, 2, 0.8), (4, 1, 1.0), (3, 4, 0.5)])
def test_processor_equals_offline_reference_shifted_by_delay(bundle: B.Bundle, emit: int, steps: int,
                                                             strength: float) -> None:
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=emit)
    assert proc.delay_samples == 480 and proc.stride == emit * 96 and proc.window == 3360
    proc.set_params(style_mix=MIX, strength=strength, steps=steps)
    x = clip()
    y = stream(proc, x)
    want = offline(bundle, proc, x, steps, strength)[: len(y)]
    assert np.sqrt(np.mean(want**2)) > 1e-3  # not comparing silence
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("steps,strength", [(2, 1.0), (3, 0.6)])
def test_student_bundle_runs_the_consistency_sampler_like_the_reference(tmp_path: Path, steps: int,
                                                                       strength: float) -> None:
    model = tiny_model(tmp_path / "student.pt", seed=5, meta={"sampler": "consistency"})
    student = export_bundle(model, tmp_path / "student")
    assert student.sampler_name == "consistency"
    proc = ModelProcessor(student, open_backend(student, "cpu"))
    proc.set_params(style_mix=MIX, strength=strength, steps=steps)
    x = clip()
    y = stream(proc, x)
    want = offline(student, proc, x, steps, strength, sampler="consistency")[: len(y)]
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)
    euler = ModelProcessor(student, open_backend(student, "cpu"))
    euler.sampler = "euler"  # the wrong sampler gives a different result: the test can tell them apart
    euler.set_params(style_mix=MIX, strength=strength, steps=steps)
    assert np.abs(stream(euler, x) - y).max() > 1e-3


def test_torch_and_cpu_backends_agree(bundle: B.Bundle) -> None:
    cpu, eager = open_backend(bundle, "cpu"), open_backend(bundle, "torch")
    for graph, inputs in parity_inputs(bundle).items():
        np.testing.assert_allclose(cpu.run(graph, *inputs), eager.run(graph, *inputs), atol=1e-4, rtol=0)
    outs = []
    for backend in (cpu, eager):
        proc = ModelProcessor(bundle, backend)
        proc.set_params(style_mix=MIX, strength=0.7, steps=2)
        outs.append(stream(proc, clip(0.3)))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-4, rtol=0)


def test_strength_zero_gives_back_the_input_delayed(bundle: B.Bundle) -> None:
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"))
    proc.set_params(style_mix={"piano": 1.0}, strength=0.0, steps=1)
    x = clip()
    y = stream(proc, x)
    d = proc.delay_samples + proc.hop * 8  # past the stream's first frames, which the reference leaves out
    np.testing.assert_allclose(y[d:], x[d - proc.delay_samples : len(y) - proc.delay_samples], atol=1e-4)


def test_style_change_crossfades_without_a_jump(bundle: B.Bundle) -> None:
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"))
    proc.set_params(style_mix={"violin": 1.0}, strength=0.7, steps=1)  # before the first call: at once
    table = bundle.style_table
    a, b = table[bundle.styles.index("violin")], table[bundle.styles.index("cello")]
    np.testing.assert_array_equal(proc.style_vector, a)
    window, out = np.zeros(proc.window, np.float32), np.zeros(proc.stride, np.float32)
    proc.process(window, out)
    proc.set_params(style_mix={"cello": 1.0})
    vectors = []
    for _ in range(proc._fade_len + 3):
        proc.process(window, out)
        vectors.append(proc.style_vector)
    fade_ms = 1000.0 * proc._fade_len * proc.stride / proc.sample_rate
    assert 80.0 <= fade_ms <= 120.0
    steps = np.linalg.norm(np.diff(np.stack([a, *vectors]), axis=0), axis=1)
    total = np.linalg.norm(b - a)
    assert steps.max() <= total / proc._fade_len * 1.001  # evenly spread, never a jump
    assert np.linalg.norm(vectors[0] - a) > 0 and np.linalg.norm(vectors[0] - b) > 0
    np.testing.assert_allclose(vectors[-1], b, atol=1e-6)


def test_unknown_style_for_the_bundle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    restricted = export_bundle(tiny_model(tmp_path / "r.pt", styles=("piano", "violin")), tmp_path / "r")
    sf.write(tmp_path / "in.wav", np.zeros((4800, 1), np.float32), 24000)
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "o.wav"), "--style", "flute",
                 "--model", str(restricted.path), "--backend", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "has no style 'flute'; its styles: piano, violin" in err
    assert not (tmp_path / "o.wav").exists()


def test_processor_drops_styles_the_bundle_lacks_without_raising(tmp_path: Path) -> None:
    """set_params runs on the worker thread: an unknown style must not kill it."""
    restricted = export_bundle(tiny_model(tmp_path / "r.pt", styles=("piano", "violin")), tmp_path / "r")
    proc = ModelProcessor(restricted, open_backend(restricted, "cpu"))
    proc.set_params(style_mix={"violin": 0.5, "flute": 0.5})
    assert proc.ignored_styles == ["flute"]
    np.testing.assert_allclose(proc.style_vector, restricted.style_table[1], atol=1e-6)
    proc.set_params(style_mix={"flute": 1.0})
    np.testing.assert_allclose(proc.style_vector, restricted.style_table[1], atol=1e-6)


def test_render_with_a_bundle_through_the_engine(bundle: B.Bundle, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    x = np.stack([clip(1.0), clip(1.0, seed=1)], axis=1)
    sf.write(tmp_path / "in.wav", x, 48000)
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "violin",
                 "--model", str(bundle.path), "--backend", "auto", "--steps", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "NOT style transfer" not in captured.err
    assert "backend auto -> cpu" in captured.err and "skipped tensorrt" in captured.err
    assert "latency 480 samples" in captured.err
    y, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == 48000 and y.shape == x.shape and np.abs(y).max() > 1e-3


def test_render_matches_processor_at_model_rate(bundle: B.Bundle, tmp_path: Path) -> None:
    """The engine adds no error of its own: render at 24 kHz = the processor stream, latency removed."""
    x = clip(0.5)
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    backend = open_backend(bundle, "cpu")
    factory = ModelFactory(bundle, backend)
    # The level match is the engine's own deliberate change (tests/realtime/test_level.py): off here.
    params = EngineParams(style_mix=(("violin", 0.7), ("flute", 0.3)), strength=0.8, steps=2, match_level=False)
    render_file(tmp_path / "in.wav", tmp_path / "out.wav", factory, params=params, progress=False)
    y = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    proc = factory()
    proc.set_params(**params.model_params())
    want = stream(proc, np.concatenate([x, np.zeros(2 * proc.window, np.float32)]))[proc.delay_samples:][: len(x)]
    np.testing.assert_allclose(y, want, atol=1e-5)


def test_default_bundle_is_used_when_present(bundle: B.Bundle, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "REPO_MODELS", tmp_path)
    factory, passthrough = processor_factory(None, "cpu")
    assert passthrough
    shutil.copytree(bundle.path, tmp_path / "default")
    factory, passthrough = processor_factory(None, "cpu")
    assert not passthrough and isinstance(factory(), ModelProcessor)
    factory, passthrough = processor_factory("passthrough", "cpu")
    assert passthrough


def test_processor_rejects_bad_emit(bundle: B.Bundle) -> None:
    with pytest.raises(StylehostError, match="emit"):
        ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=31)
