"""The input gate (diffusion/input_gate.py): features, glide, fit, manifest, and live == offline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig
from diffusion.input_gate import DB_PER_NEPER, GateConfig, InputGate, window_features
from tests.diffusion.test_excitation import offline_reference, vibrato_sine

FLOOR = math.log(1e-5)


def constant_gate(bias: float, n_mels: int = 64, tau_s: float = 0.05) -> GateConfig:
    """A gate whose raw weight is sigmoid(bias) on every window with sound (its weights are zero)."""
    return GateConfig(tuple([0.0] * 2 * n_mels), tuple([1.0] * 2 * n_mels), tuple([0.0] * 2 * n_mels), bias,
                      tau_s=tau_s)


def test_features_ignore_silence_and_quiet_frames_and_floor_each_frame() -> None:
    assert window_features(np.full((4, 8), FLOOR, np.float32)) is None
    x = np.full((3, 3), FLOOR, np.float32)
    x[:, 0] = [-2.0, -3.0, -30.0]  # peak -2; band 2 is floored 60 dB (13.8 nepers) under it
    x[:, 1] = [-2.5, -2.0, -4.0]  # peak -2
    x[:, 2] = [-14.0, -14.0, -14.0]  # 12 nepers under the loudest: more than 40 dB, ignored
    f = window_features(x)
    assert f is not None and f.shape == (6,)
    floor = -60.0 / DB_PER_NEPER
    np.testing.assert_allclose(f[:3], [(0.0 - 0.5) / 2, (-1.0 + 0.0) / 2, (floor - 2.0) / 2], atol=1e-5)
    np.testing.assert_allclose(f[3:], [0.5, 1.0, 26.0], atol=1e-5)  # |frame 1 - frame 0| per band


def test_the_glide_is_a_one_pole_filter_with_its_time_constant() -> None:
    gate = InputGate(constant_gate(40.0, tau_s=0.1), stride_s=0.008)
    loud = np.zeros((64, 32), np.float32)
    w = [gate.smooth(gate.raw_weight(loud)) for _ in range(13)]  # 13 calls = 104 ms, about one tau
    assert all(0 < a < b < 1 for a, b in zip(w, w[1:], strict=False))
    assert abs(w[-1] - (1 - math.exp(-13 * 0.008 / 0.1))) < 1e-6
    assert gate.raw_weight(np.full((64, 32), FLOOR, np.float32)) == 0.0  # silence: the input, as today
    gate.reset()
    assert gate.value == 0.0


def test_config_round_trips_and_refuses_bad_sections() -> None:
    gate = constant_gate(0.5)
    assert GateConfig.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate
    with pytest.raises(StylehostError, match="unknown keys"):
        GateConfig.from_dict({**gate.to_dict(), "extra": 1})
    with pytest.raises(StylehostError, match="one even length"):
        GateConfig.from_dict({**gate.to_dict(), "weights": [0.0] * 3})
    with pytest.raises(StylehostError, match="refit"):
        GateConfig.from_dict({**gate.to_dict(), "features": "other"})
    with pytest.raises(StylehostError, match="non-finite"):
        GateConfig.from_dict({**gate.to_dict(), "bias": float("nan")})
    with pytest.raises(StylehostError, match="fitted on 64"):
        InputGate(gate, 0.008).raw_weight(np.zeros((32, 8), np.float32))


def gated_bundle(tmp_path: Path, gate: GateConfig):  # -> export.bundle.Bundle
    """The tiny model and stage as a bundle that shapes the excitation and plays gated with ``gate``."""
    import torch

    from export import bundle as B
    from export.onnx import export_bundle
    from tests.diffusion.test_guide_bundle import tiny_stage_file
    from tests.export.tiny import tiny_model

    torch.set_num_threads(1)
    bundle = export_bundle(tiny_model(tmp_path / "tiny.pt"), tmp_path / "b",
                           stage_path=tiny_stage_file(tmp_path / "g.pt"))
    B.update_manifest(bundle.path, {"excitation": ExcitationConfig().to_dict()})
    return B.update_manifest(bundle.path, {"input_gate": gate.to_dict(), "denoiser_input": "gated"})


@pytest.mark.parametrize("bias", [0.0, 40.0])
def test_the_processor_plays_a_gated_bundle_as_the_offline_reference(tmp_path: Path, bias: float) -> None:
    """Half-way (sigmoid 0 = 0.5) and fully on: the live blend and glide equal stream_audio's; the blend is in
    use (it is neither input alone), and a gate that is fully on converges to hearing the excitation."""
    from realtime.backends.choose import open_backend
    from realtime.model_processor import ModelProcessor
    from tests.diffusion.test_guide_bundle import MIX
    from tests.realtime.test_processor import stream

    gate = constant_gate(bias)
    bundle = gated_bundle(tmp_path, gate)
    assert bundle.denoiser_input == "gated" and bundle.input_gate == gate
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=2)
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x, _ = vibrato_sine(0.8, 330.0)
    y = stream(proc, x)
    exc = ExcitationConfig()
    want = offline_reference(proc, x, len(y), excitation=exc, denoiser_input="gated", gate=gate)
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)
    heard = {h: offline_reference(proc, x, len(y), excitation=exc, denoiser_input=h) for h in ("source", "excitation")}
    for h, other in heard.items():  # fully on, it differs from the excitation-hearing one only while it glides
        assert np.abs(other - want).max() > (1e-4 if bias and h == "excitation" else 1e-3), h
    assert abs(proc.gate_weight - (0.5 if bias == 0 else 1.0)) < 1e-3  # 0.8 s is 16 glide time constants
    if bias:  # once glided over, the output is the excitation-hearing one
        tail = slice(len(y) // 2, None)
        np.testing.assert_allclose(want[tail], heard["excitation"][tail], atol=1e-4, rtol=0)
    for h in ("source", "excitation"):  # a performer can still pick one input
        one = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=2, denoiser_input=h)
        one.set_params(style_mix=MIX, strength=1.0, steps=1)
        np.testing.assert_allclose(stream(one, x), heard[h], atol=1e-4, rtol=0)


def test_a_gated_manifest_needs_its_gate_and_the_models_bands(tmp_path: Path) -> None:
    from export import bundle as B

    bundle = gated_bundle(tmp_path, constant_gate(0.0))
    manifest = json.loads((bundle.path / B.MANIFEST).read_text())
    for section, match in ((None, "needs an 'input_gate' section"),
                           (constant_gate(0.0, n_mels=32).to_dict(), "fitted on 32 mel bands")):
        broken = {**manifest, "input_gate": section} if section else {k: v for k, v in manifest.items()
                                                                        if k != "input_gate"}
        (bundle.path / B.MANIFEST).write_text(json.dumps(broken))
        with pytest.raises(StylehostError, match=match):
            B.load_bundle(bundle.path)


def test_a_gate_fitted_on_training_windows_tells_soundfonts_from_synthesized_voices(small_dataset: Path) -> None:
    """fit_gate on the small dataset: both classes mostly right on the validation split it never fitted on."""
    import torch

    from diffusion.gate_fit import GateFitConfig, fit_gate
    from diffusion.model import ModelConfig

    torch.set_num_threads(1)
    gate = fit_gate(small_dataset, ModelConfig(styles=("piano", "guitar", "flute")), GateFitConfig(windows=240))
    val = gate.fit["val"]
    assert val["windows"] > 60
    assert val["soundfont_accuracy"] > 0.8 and val["synth_accuracy"] > 0.8, val
    assert gate.fit["lambda"] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def test_sample_weights_decide_between_conflicting_labels() -> None:
    """fit_logistic with sample weights: the same feature value labelled both ways leans to the heavier side."""
    from diffusion.gate_fit import fit_logistic

    x = np.array([[-1.0], [-1.0], [1.0], [1.0]])
    y = np.array([0.0, 1.0, 0.0, 1.0])
    w, b = fit_logistic(x, y, 1e-4, sample_weight=np.array([1.0, 3.0, 3.0, 1.0]))
    p = 1.0 / (1.0 + np.exp(-(x[:, 0] * w[0] + b)))
    assert p[0] == pytest.approx(0.75, abs=1e-3) and p[2] == pytest.approx(0.25, abs=1e-3)
    w1, b1 = fit_logistic(x, y, 1e-4)
    assert abs(w1[0]) < 1e-6 and abs(b1) < 1e-6  # unweighted: no side


def test_a_benefit_gate_is_scored_by_the_denoiser_it_serves(small_dataset: Path, tmp_path: Path) -> None:
    """labels "benefit" on the small dataset with a tiny denoiser: every window is scored hearing the input
    and the excitation, the fit's expected error on its own windows beats both constant choices' better one
    or equals it, the oracle bounds it, and the blended run (the denoiser on the mixed input, as live) is
    reported on validation."""
    import torch

    from diffusion.checkpoint import load_denoiser
    from diffusion.excitation import ExcitationConfig
    from diffusion.gate_fit import DenoiserRun, GateFitConfig, fit_benefit_gate
    from tests.export.tiny import tiny_model

    torch.set_num_threads(1)
    model = load_denoiser(tiny_model(tmp_path / "tiny.pt", styles=("piano", "guitar", "flute")))
    run = DenoiserRun(model, ExcitationConfig())
    gate = fit_benefit_gate(small_dataset, run, GateFitConfig(windows=160, labels="benefit", batch=32))
    train, val = gate.fit["train"]["all"], gate.fit["val"]["all"]
    assert gate.fit["labels"] == "benefit" and val["windows"] == 80
    for r in (train, val):
        assert r["oracle_db"] <= min(r["input_db"], r["excitation_db"]) + 1e-9
        assert r["oracle_db"] <= r["gate_linear_db"] + 1e-9
    assert train["gate_linear_db"] <= min(train["input_db"], train["excitation_db"]) + 0.02, train
    assert np.isfinite(val["gate_blended_db"]) and 0.0 <= val["mean_weight"] <= 1.0
    assert gate.fit["val"]["soundfont"]["windows"] + gate.fit["val"]["synth"]["windows"] == 80


def test_the_fit_scores_gates_with_the_processors_raw_weight() -> None:
    """gate_fit computes each window's features once and scores every lambda's gate on them: the weights are
    the ones InputGate.raw_weight gives the processor, silence included."""
    import torch

    from diffusion.gate_fit import gate_inputs, gate_raw_weights

    rng = np.random.default_rng(3)
    windows = rng.normal(-5.0, 2.0, (6, 16, 10)).astype(np.float32)
    windows[2] = FLOOR  # silence: weight 0
    windows[3] = rng.normal(-10.2, 0.05, (16, 10))  # quiet: peak about -10, inside the fade (-11 to -9)
    gate = InputGate(GateConfig(tuple(rng.normal(size=32)), tuple(rng.uniform(0.5, 2, 32)),
                                tuple(rng.normal(size=32)), 0.3), 0.008)
    fast = gate_raw_weights(gate, gate_inputs(torch.from_numpy(windows)))
    np.testing.assert_allclose(fast, [gate.raw_weight(w) for w in windows], rtol=1e-12, atol=0)
    assert fast[2] == 0.0 and 0 < fast[3] < 0.6
