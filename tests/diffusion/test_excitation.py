"""The harmonic excitation: partials the source lacks, the source where it is not pitched, no clicks, and
the live processor with an excitation bundle equal to the offline reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffusion.excitation import ExcitationConfig, HarmonicExcitation, excite, excite_window

SR = 24000


def vibrato_sine(seconds: float = 1.5, f0: float = 440.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(SR * seconds)) / SR
    f = f0 * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR)).astype(np.float32), f


def partial_db(x: np.ndarray, f0: float, k: int) -> float:
    seg = x * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    b = int(np.argmin(np.abs(freqs - k * f0)))
    return float(20 * np.log10(spec[b - 3 : b + 4].max() + 1e-12))


def test_a_sine_gets_a_harmonic_series_that_follows_its_vibrato() -> None:
    x, f = vibrato_sine()
    y = excite(x)
    mid = slice(18000, 18000 + 2048)
    f0 = float(f[mid].mean())
    levels = [partial_db(y[mid], f0, k) for k in range(1, 9)]
    assert partial_db(x[mid], f0, 3) < levels[0] - 60  # the source has no third partial
    assert all(lv > levels[0] - 30 for lv in levels)  # the excitation has all eight
    # The level follows the source's: RMS within 1.5 dB in the sustained part.
    rms = lambda a: float(np.sqrt(np.mean(a[6000:-6000] ** 2)))  # noqa: E731
    assert abs(20 * np.log10(rms(y) / rms(x))) < 1.5


def test_noise_and_silence_pass_as_the_source() -> None:
    n = (0.1 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    np.testing.assert_allclose(excite(n)[2000:], n[2000:], atol=1e-6)
    assert np.all(excite(np.zeros(SR, np.float32)) == 0.0)


def test_a_chord_keeps_the_source() -> None:
    """Three equal notes a tritone and a fifth apart are not one period: the source passes (chords keep
    today's path)."""
    t = np.arange(SR) / SR
    chord = sum(0.1 * np.sin(2 * np.pi * f * t + i) for i, f in enumerate((261.6, 370.0, 415.3)))
    y = excite(chord.astype(np.float32))
    err = np.sqrt(np.mean((y[4000:] - chord[4000:]) ** 2)) / np.sqrt(np.mean(chord[4000:] ** 2))
    assert err < 0.2


def test_switching_between_voiced_and_unvoiced_never_clicks() -> None:
    x, _ = vibrato_sine(1.0)
    noise = (0.05 * np.random.default_rng(2).standard_normal(SR // 2)).astype(np.float32)
    y = excite(np.concatenate([noise, x, noise, np.zeros(SR // 4, np.float32)]))
    assert np.isfinite(y).all()
    # A 60-partial sawtooth at 0.3 RMS steps by up to ~0.6 per sample by itself; a click would be more.
    assert np.abs(np.diff(y)).max() < 0.8


def test_hostile_input_stays_finite_and_bounded() -> None:
    gen = HarmonicExcitation()
    rng = np.random.default_rng(3)
    for block in (np.full(96, np.nan), np.full(96, 1e30), np.ones(96), rng.uniform(-1, 1, 96)):
        out = gen.process(np.nan_to_num(block, nan=0.0, posinf=8.0, neginf=-8.0).clip(-8, 8))
        assert np.isfinite(out).all()


def test_config_is_checked() -> None:
    from diffusion.errors import StylehostError

    with pytest.raises(StylehostError):
        ExcitationConfig(voiced_lo=0.9, voiced_hi=0.5)
    with pytest.raises(StylehostError, match="lag_hops must be 0 or 1"):
        ExcitationConfig(lag_hops=2)


@pytest.mark.parametrize("lag", [0, 1])
def test_the_excitation_of_a_hop_is_final_lag_hops_after_it(lag: int) -> None:
    """Issue 17: with lag_hops 0 a hop's excitation depends on no later input (a stage with no look-ahead can
    play it); with 1 it depends on the next hop (its f0), and on nothing after that."""
    x, _ = vibrato_sine(0.5)
    cut = 40 * 96  # a hop boundary in the sustained note
    later = x.copy()
    later[cut:] = 0.5 * np.random.default_rng(4).standard_normal(len(x) - cut)
    gen = HarmonicExcitation(config=ExcitationConfig(lag_hops=lag))
    assert gen.delay_samples == lag * 96
    a, b = excite(x, config=gen.config), excite(later, config=gen.config)
    np.testing.assert_array_equal(a[: cut - lag * 96], b[: cut - lag * 96])
    if lag:
        assert np.abs(a[cut - 96 : cut] - b[cut - 96 : cut]).max() > 1e-3
    # Live and offline are one path: the generator fed hop by hop gives excite()'s samples lag_hops later.
    live = np.concatenate([gen.process(x[i : i + 96].astype(np.float64)).copy() for i in range(0, cut, 96)])
    np.testing.assert_array_equal(live[lag * 96 :], a[: cut - lag * 96])


@pytest.mark.parametrize("heard", ["source", "excitation"])
def test_processor_with_excitation_equals_offline_reference(tmp_path: Path, heard: str) -> None:
    import torch

    from export import bundle as B
    from export.onnx import export_bundle
    from realtime.backends.choose import open_backend
    from realtime.model_processor import ModelProcessor
    from tests.diffusion.test_guide_bundle import MIX, tiny_stage_file
    from tests.export.tiny import tiny_model
    from tests.realtime.test_processor import stream

    torch.set_num_threads(1)
    bundle = export_bundle(tiny_model(tmp_path / "tiny.pt"), tmp_path / "b",
                           stage_path=tiny_stage_file(tmp_path / "g.pt"))
    manifest = json.loads((bundle.path / B.MANIFEST).read_text())
    manifest["excitation"] = ExcitationConfig().to_dict()
    (bundle.path / B.MANIFEST).write_text(json.dumps(manifest))
    bundle = B.load_bundle(bundle.path)
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=2, denoiser_input=heard)
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x, _ = vibrato_sine(0.8, 330.0)
    y = stream(proc, x)
    want = offline_reference(proc, x, len(y), excitation=ExcitationConfig(), denoiser_input=heard)
    other = offline_reference(proc, x, len(y))
    assert np.abs(want - other).max() > 0.1 * np.abs(want).max()  # the excitation is in use
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)


def offline_reference(proc, x: np.ndarray, length: int, denoiser=None, **stream_kwargs) -> np.ndarray:
    """stream_audio of ``x`` with ``proc``'s bundle (emit 2, 1 step, strength 1, its stage; ``denoiser``, if
    given, instead of the bundle's weights), aligned as ``proc`` emits it and cut to ``length`` samples."""
    from diffusion.checkpoint import load_denoiser
    from diffusion.guide import load_stage
    from diffusion.resynth import PhaseGuidedResynth
    from diffusion.stream import StreamConfig, stream_audio
    from tests.diffusion.test_guide_bundle import MIX

    d = denoiser if denoiser is not None else load_denoiser(proc.bundle.torch_weights)
    stage = load_stage(proc.bundle.path / "guide.pt", steps=1)
    lead = proc.frame_origin * proc.hop
    padded = np.concatenate([np.zeros(lead, np.float32), x])
    ref = stream_audio(d, PhaseGuidedResynth(d.cfg.spectrogram), padded, d.style_vector(MIX),
                       StreamConfig(emit=2, steps=1, strength=1.0), stage=stage, **stream_kwargs)
    return np.concatenate([np.zeros(proc.delay_samples - lead, np.float32), ref])[:length]


def test_partials_and_voiced_check_equal_their_direct_sums() -> None:
    """The doubling recurrence (``_partials``) and the factored DFT (``_low_share``) are speed-ups of the
    direct sin(k phase) sum and the 960-sample probe DFT: the same values to rounding."""
    rng = np.random.default_rng(4)
    for check in (960, 1000, 37):
        gen = HarmonicExcitation(config=ExcitationConfig(check_samples=check))
        gen._phase[:] = 40.0 + np.cumsum(rng.uniform(0.01, 0.5, gen.hop))
        for n in (1, 2, 7, 50, 60):
            gen._partials(n)
            k = np.arange(1, n + 1)[:, None]
            np.testing.assert_allclose(gen._rot[:n], np.exp(1j * k * gen._phase[None]), atol=1e-12, rtol=0)
        gen._hist[:] = rng.standard_normal(check)
        nn = np.arange(check)
        wx = gen._hist * gen._win
        for f0 in (55.0, 220.0, 1999.0, 7000.0):
            power = sum(abs(np.sum(wx * np.exp(2j * np.pi * f * nn / SR))) ** 2 for f in (f0, 2 * f0) if f < SR / 2)
            want = power / gen._norm / float(np.dot(wx, wx))
            assert abs(gen._low_share(f0) - want) <= 1e-12 * max(1.0, want)


def test_denoiser_fed_the_excitation_is_an_offline_experiment_with_checked_inputs(tmp_path: Path) -> None:
    """stream_audio(denoiser_input="excitation") (benchmarks/timbre.py --compare-excited): the denoiser sees
    the excitation, which changes the output; it needs a stage and an excitation, and names its choices."""
    import torch

    from diffusion.errors import StylehostError
    from diffusion.guide import load_stage
    from diffusion.model import Denoiser
    from diffusion.resynth import PhaseGuidedResynth
    from diffusion.stream import StreamConfig, stream_audio
    from tests.diffusion.test_guide_bundle import MIX, tiny_stage_file
    from tests.export.tiny import tiny_model

    torch.set_num_threads(1)
    from diffusion.checkpoint import load_denoiser

    d: Denoiser = load_denoiser(tiny_model(tmp_path / "tiny.pt"))
    stage = load_stage(tiny_stage_file(tmp_path / "g.pt"), steps=1)
    resynth, cfg = PhaseGuidedResynth(d.cfg.spectrogram), StreamConfig(emit=2, steps=1, strength=1.0)
    x, _ = vibrato_sine(0.6, 330.0)
    style = d.style_vector(MIX)
    plain = stream_audio(d, resynth, x, style, cfg, stage, ExcitationConfig())
    seen = stream_audio(d, resynth, x, style, cfg, stage, ExcitationConfig(), denoiser_input="excitation")
    assert plain.shape == seen.shape and np.all(np.isfinite(seen))
    assert np.abs(plain - seen).max() > 1e-3 * np.abs(plain).max()
    with pytest.raises(StylehostError, match="needs a stage and an excitation"):
        stream_audio(d, resynth, x, style, cfg, stage, None, denoiser_input="excitation")
    with pytest.raises(StylehostError, match="one of source, excitation, both"):
        stream_audio(d, resynth, x, style, cfg, stage, ExcitationConfig(), denoiser_input="mix")
    with pytest.raises(StylehostError, match="must be"):  # a one-channel model cannot hear both
        stream_audio(d, resynth, x, style, cfg, stage, ExcitationConfig(), denoiser_input="both")


@pytest.mark.parametrize("lag", [0, 1])
def test_excite_window_is_what_the_live_window_holds(lag: int) -> None:
    # Training pairs and the gate fit read excite_window; live, the window ends with lag hops not yet excited.
    x, _ = vibrato_sine(0.3)
    n = 30 * 96
    gen = HarmonicExcitation(config=ExcitationConfig(lag_hops=lag))
    live = np.concatenate([gen.process(x[i : i + 96].astype(np.float64)).copy() for i in range(0, n, 96)])
    held = np.concatenate([live[lag * 96 :], np.zeros(lag * 96, np.float32)])  # sample-aligned with the input
    np.testing.assert_array_equal(excite_window(x[:n], config=gen.config), held)
