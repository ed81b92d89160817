"""Synthesized-voice augmentation: the voices are what they claim, windows agree with whole renders,
and PairWindows uses them only when asked (runs without it keep their random stream)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig
from diffusion.features import SpectrogramTransform
from diffusion.guide_train import EXCITATION_PREROLL, WaveWindows
from diffusion.model import ModelConfig
from diffusion.pairs import PairWindows, load_clips
from diffusion.synth_augment import SynthAugmentConfig, Voice, draw_voice, render_voice
from tests.diffusion.synthdata import make_dataset

SR = 24000
NOTES = [(57, 0.05, 0.6, 100), (64, 0.6, 1.4, 90)]  # A3 (220 Hz), E4
PLAIN = Voice(tilt=1.0, odd=False, detune_cents=0.0, formants=(), vibrato_cents=0.0, vibrato_hz=5.0, t60=0.0,
              attack_s=0.01, breath=0.0)

def partial_db(audio: np.ndarray, f0: float, k: int) -> float:
    """Level of partial k (dB re the fundamental) from a Hann-windowed spectrum of the note's middle."""
    seg = audio[int(0.2 * SR) : int(0.5 * SR)] * np.hanning(int(0.3 * SR))
    mag = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(len(seg), 1 / SR)

    def peak(f: float) -> float:
        return float(mag[(freqs > f - 15) & (freqs < f + 15)].max())

    return 20 * np.log10(peak(k * f0) / peak(f0) + 1e-12)

def test_voices_have_the_partials_they_claim() -> None:
    f0 = 220.0
    saw = render_voice(NOTES, 0, int(1.5 * SR), SR, PLAIN, seed=0)
    assert abs(partial_db(saw, f0, 2) + 6.0) < 1.0 and abs(partial_db(saw, f0, 3) + 9.5) < 1.0  # 1/k
    odd = render_voice(NOTES, 0, int(1.5 * SR), SR, replace(PLAIN, odd=True), seed=0)
    assert partial_db(odd, f0, 2) < -40 and abs(partial_db(odd, f0, 3) + 9.5) < 1.0
    pure = render_voice(NOTES, 0, int(1.5 * SR), SR, replace(PLAIN, tilt=40.0), seed=0)
    assert partial_db(pure, f0, 2) < -60
    bright = render_voice(NOTES, 0, int(1.5 * SR), SR, replace(PLAIN, formants=((660.0, 100.0, 20.0),)), seed=0)
    assert partial_db(bright, f0, 3) > partial_db(saw, f0, 3) + 12  # the resonance lifts the 3rd partial

def test_a_decaying_voice_decays_and_a_sustained_one_holds() -> None:
    def rms(audio: np.ndarray, t: float) -> float:
        return float(np.sqrt(np.mean(audio[int(t * SR) : int((t + 0.05) * SR)] ** 2)))

    held = render_voice(NOTES[:1], 0, SR, SR, PLAIN, seed=0)
    struck = render_voice(NOTES[:1], 0, SR, SR, replace(PLAIN, t60=0.3), seed=0)
    assert rms(held, 0.45) / rms(held, 0.1) > 0.9
    assert rms(struck, 0.45) / rms(struck, 0.1) < 0.1  # -60 dB per 0.3 s: 0.35 s later about -70 dB

def test_a_window_agrees_with_the_whole_render_and_a_preroll_before_the_clip_is_silent() -> None:
    voice = replace(PLAIN, vibrato_cents=40.0)
    whole = render_voice(NOTES, 0, int(1.5 * SR), SR, voice, seed=3)
    part = render_voice(NOTES, int(0.4 * SR), int(0.5 * SR), SR, voice, seed=3)
    np.testing.assert_allclose(part, whole[int(0.4 * SR) : int(0.9 * SR)], atol=1e-5)
    early = render_voice(NOTES, -2400, 4800, SR, voice, seed=3)
    assert np.all(early[:2400 + int(0.05 * SR) - 2400] == 0) and np.abs(early).max() > 0

def test_drawn_voices_span_the_family_and_are_finite() -> None:
    rng = np.random.default_rng(0)
    cfg = SynthAugmentConfig(p_synth=1.0)
    voices = [draw_voice(rng, cfg) for _ in range(200)]
    assert any(v.odd for v in voices) and any(v.t60 > 0 for v in voices) and any(v.detune_cents for v in voices)
    assert any(v.tilt == 40.0 for v in voices) and len({len(v.formants) for v in voices}) == 5
    for v in voices[:20]:
        audio = render_voice(NOTES, 0, int(1.5 * SR), SR, v, seed=1)
        assert np.all(np.isfinite(audio)) and 0.01 < np.abs(audio).max() <= 0.9 + 1e-6

@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synth-aug"), clips=5, seconds=1.0)

def test_pair_windows_use_synthesized_sources_only_when_asked(data: Path) -> None:
    cfg = ModelConfig()
    clips = load_clips(data, cfg, "train")
    assert clips[0].notes, "the dataset manifest's notes are loaded"
    off = PairWindows(clips, cfg, 4, (0,), None, 1.0)
    zero = PairWindows(clips, cfg, 4, (0,), None, 1.0, SynthAugmentConfig(p_synth=0.0))
    a = [off.example(np.random.default_rng(5)) for _ in range(3)]
    b = [zero.example(np.random.default_rng(5)) for _ in range(3)]
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b, strict=True))  # p_synth 0: the same draws
    on = PairWindows(clips, cfg, 4, (0,), None, 1.0, SynthAugmentConfig(p_synth=1.0))
    rng = np.random.default_rng(5)
    for _ in range(5):
        source, target, _ = on.example(rng)
        assert len(source) == len(target) and not np.array_equal(source, target)  # same style, yet not the crop
        assert np.all(np.isfinite(source))
    for clip in clips:
        clip.notes = []
    with pytest.raises(StylehostError, match="re-render"):
        PairWindows(clips, cfg, 4, (0,), None, 1.0, SynthAugmentConfig(p_synth=0.5))

def test_add_mode_keeps_every_soundfont_example_and_adds_synthesized_ones(data: Path) -> None:
    cfg = ModelConfig()
    clips = load_clips(data, cfg, "train")
    off = PairWindows(clips, cfg, 8, (0,), None, 0.0)
    add = PairWindows(clips, cfg, 8, (0,), None, 0.0, SynthAugmentConfig(p_synth=0.25, mode="add"))
    base, more = off.draw_examples(np.random.default_rng(3)), add.draw_examples(np.random.default_rng(3))
    assert len(base) == 8 and len(more) == 10
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(base, more[:8], strict=False))  # the same SoundFont draws
    renders = [w for c in clips for f in c.audio.values() for w in f.values()]
    for source, target, _ in more[8:]:  # the two added sources are no SoundFont rendering of any clip
        assert len(source) == len(target) and np.all(np.isfinite(source))
        assert not any(np.allclose(source[:512], w[i : i + 512].astype(np.float32) / 32768.0, atol=1e-4)
                       for w in renders for i in range(0, len(w) - 512, 256))
    assert add.batch(np.random.default_rng(3), SpectrogramTransform(cfg.spectrogram))["source"].shape[0] == 10
    with pytest.raises(ValueError, match="mode"):
        SynthAugmentConfig(p_synth=0.25, mode="mix")

def test_wave_windows_give_the_stage_the_excitation_of_a_warmed_up_tracker(data: Path) -> None:
    cfg = ModelConfig(window=24)
    clips = load_clips(data, cfg, "train")
    windows = WaveWindows(clips, cfg, 3, (0,), None, 1.0)
    windows.excitation = ExcitationConfig()
    batch = windows.batch(np.random.default_rng(0), None)
    assert batch["shaped"].shape == batch["source"].shape == batch["target"].shape
    plain = WaveWindows(clips, cfg, 3, (0,), None, 1.0).batch(np.random.default_rng(0), None)
    np.testing.assert_array_equal(batch["source"], plain["source"])  # the pre-roll is dropped again
    assert EXCITATION_PREROLL >= 960  # at least one YIN frame of the source before the crop
    assert not np.allclose(batch["shaped"], batch["source"])  # pitched synthetic notes: harmonics replace them


def test_excitation_sources_are_the_excitation_of_the_plain_source_with_a_silent_last_hop(data: Path) -> None:
    from diffusion.augment import PREROLL_SECONDS
    from diffusion.excitation import excite

    cfg = ModelConfig()
    clips = load_clips(data, cfg, "train")
    hop, pre = cfg.spectrogram.hop, int(PREROLL_SECONDS * cfg.spectrogram.sample_rate)
    plain = PairWindows(clips, cfg, 2, (0,), None, 0.0)
    heard = PairWindows(clips, cfg, 2, (0,), None, 0.0, source_input="excitation")
    for seed in range(3):
        src, tgt, style = plain.example(np.random.default_rng(seed), keep_preroll=pre)
        exc, tgt2, style2 = heard.example(np.random.default_rng(seed), keep_preroll=pre)
        want = excite(src, cfg.spectrogram.sample_rate, hop, ExcitationConfig())
        want[-hop:] = 0.0
        assert style == style2 and np.array_equal(tgt, tgt2)
        np.testing.assert_allclose(exc, want, atol=1e-6)
        assert np.all(exc[-hop:] == 0.0) and not np.allclose(exc, src, atol=1e-3)
    with pytest.raises(StylehostError, match="source_input"):
        PairWindows(clips, cfg, 2, (0,), None, 0.0, source_input="mix")
