"""The GuideDiff-style stage (diffusion/guide.py), its training (guide_train.py) and RTISI-LA (phase.py).

Streaming: a window-by-window restoration equals the whole-clip one; an untrained stage is exactly
source-phase iSTFT; a few training steps lower the loss on synthetic instruments; RTISI-LA makes
the spectrogram more consistent than its start.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.guide import GuideConfig, GuideStage, frames_of, load_stage, restore_clip, restore_windows, save_stage
from diffusion.guide_report import oracle_contexts
from diffusion.guide_train import GuideTrainConfig, WaveWindows, guide_losses, train_guide
from diffusion.model import ModelConfig
from diffusion.pairs import load_clips
from diffusion.phase import RtisiLa, rtisi_clip
from diffusion.resynth import PhaseGuidedResynth
from tests.diffusion.synthdata import make_dataset

SPEC = SpectrogramConfig()
TINY = GuideConfig(channels=8, blocks=2)


def tiny_stage(steps: int = 1, seed: int = 0) -> GuideStage:
    """A tiny stage perturbed away from its identity init (the zero last layer would hide mistakes)."""
    torch.manual_seed(seed)
    stage = GuideStage(SPEC, TINY, steps=steps)
    with torch.no_grad():
        for p in stage.net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return stage.eval()


SR = SPEC.sample_rate


def tone(seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * t) + 0.1 * np.sin(2 * np.pi * 587 * t + 1.0)
    return torch.tensor(x + 0.01 * rng.standard_normal(len(t)), dtype=torch.float32)


def restyled_logmel(wave: torch.Tensor) -> torch.Tensor:
    """The clip's log-mel with a smooth band gain (+-6 dB) and noise: a plausible predicted log-mel."""
    logmel = SpectrogramTransform(SPEC).log_mel(wave[None])[0]
    g = torch.Generator().manual_seed(3)
    tilt = torch.linspace(-0.7, 0.7, SPEC.n_mels)[:, None]
    return logmel + tilt + 0.2 * torch.randn(logmel.shape, generator=g)


def test_untrained_stage_is_exactly_source_phase_istft() -> None:
    wave = tone()
    logmel = restyled_logmel(wave)
    stage = GuideStage(SPEC, TINY, steps=2).eval()  # zero last layer: every step returns its input
    with torch.no_grad():
        got = restore_clip(stage, wave[None], logmel[None])[0]
        used = SPEC.num_samples(logmel.shape[1])
        want = PhaseGuidedResynth(SPEC)(wave[None, :used], logmel[None])[0]
    torch.testing.assert_close(got[:used], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("steps,emit", [(1, 2), (2, 2), (2, 4), (1, 3)])
def test_window_by_window_equals_whole_clip(steps: int, emit: int) -> None:
    wave = tone()
    logmel = restyled_logmel(wave)
    stage = tiny_stage(steps)
    floor = float(np.log(SPEC.log_floor))
    with torch.no_grad():
        whole = restore_clip(stage, wave[None], logmel[None])[0]
        contexts = oracle_contexts(logmel, emit, stage.before, stage.after, floor)
        windows = restore_windows(stage, wave, contexts, emit)
        # and one window at a time, overlap-added by hand as the engine does
        pad = torch.cat([torch.zeros(stage.before * SPEC.hop), wave, torch.zeros(8 * SPEC.hop)])
        frames = frames_of(pad[None], SPEC)[0]
        count = SPEC.num_frames(len(wave))
        acc = torch.zeros(SPEC.num_samples(count + emit))
        for w in range(contexts.shape[0]):
            n = stage.before + emit + stage.after
            out = stage(frames[None, w * emit : w * emit + n], contexts[w : w + 1])[0]
            for k in range(emit):
                j = w * emit + k
                if j < count:
                    acc[j * SPEC.hop : j * SPEC.hop + SPEC.n_fft] += out[k]
    assert float(whole.abs().max()) > 1e-2
    assert float((whole - torch.from_numpy(pure_source_phase(wave, logmel))).abs().max()) > 1e-3  # not the start
    torch.testing.assert_close(windows, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(acc[: len(wave)], whole, atol=1e-5, rtol=0)


def pure_source_phase(wave: torch.Tensor, logmel: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return restore_clip(GuideStage(SPEC, TINY, steps=0), wave[None], logmel[None])[0].numpy()


def test_stage_file_round_trip(tmp_path: Path) -> None:
    stage = tiny_stage(1)
    save_stage(tmp_path / "g.pt", stage, {"step": 3})
    again = load_stage(tmp_path / "g.pt", steps=2)
    assert again.steps == 2 and again.before == 4 and again.after == 2
    for a, b in zip(stage.net.parameters(), again.net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_training_loss_falls_in_a_few_steps(tmp_path: Path) -> None:
    """Same-style pairs with a noisy conditioning log-mel: the start is off by the noise, and the stage
    can see it (it gets the source's own log-magnitude), so a few steps must already help."""
    torch.manual_seed(0)
    styles = ("piano", "flute", "clarinet")
    data = make_dataset(tmp_path / "data", clips=4, seconds=1.0, styles=styles)
    model_cfg = ModelConfig(window=24, styles=styles)
    clips = load_clips(data, model_cfg, "train")
    cfg = GuideTrainConfig(guide=TINY, segment=24, batch_size=6, cond_noise=0.8, cond_offset=0.0, p_blur=0.0)
    batch = WaveWindows(clips, model_cfg, 6, (0,), None, 1.0).batch(np.random.default_rng(0), None)
    stage = GuideStage(SPEC, TINY, steps=1)
    opt = torch.optim.Adam(stage.net.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = sum(guide_losses(stage, batch, cfg, torch.Generator().manual_seed(1))) / 2  # same noise each step
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0], losses


def test_guide_train_writes_a_loadable_run_and_resumes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", clips=4, seconds=1.0)
    cfg = GuideTrainConfig(guide=TINY, segment=24, batch_size=2, steps=3, workers=0, val_every=3, val_windows=2,
                           checkpoint_every=3, warmup=1)
    train_guide(cfg, data, tmp_path / "run", progress=False)
    stage = load_stage(tmp_path / "run" / "model.pt")
    assert stage.cfg == TINY
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["segment"] == 24 and saved["guide"]["channels"] == 8
    more = GuideTrainConfig(**{**cfg.__dict__, "steps": 5})
    train_guide(more, data, tmp_path / "run", progress=False)  # resumes at step 3
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 5 and len(ckpt["provenance"]["sessions"]) == 2


def inconsistency(wave: np.ndarray, want_mag: torch.Tensor, first: int, last: int) -> float:
    """|| |STFT(wave)| - wanted || / || wanted || over frames [first, last)."""
    tr = SpectrogramTransform(SPEC)
    re, im = tr.stft(torch.from_numpy(wave)[None])
    mag = tr.magnitude(re, im)[0, :, first:last]
    return float(torch.linalg.norm(mag - want_mag[:, first:last]) / torch.linalg.norm(want_mag[:, first:last]))


def test_rtisi_la_improves_spectral_consistency_over_its_start() -> None:
    wave = tone(0.6)
    logmel = restyled_logmel(wave)
    stage0 = GuideStage(SPEC, TINY, steps=0)
    with torch.no_grad():
        re, im, _, _ = stage0.start(frames_of(wave[None], SPEC), logmel[None])
    want = torch.sqrt(re**2 + im**2)[0]  # the magnitude every system is asked for
    floor = float(np.log(SPEC.log_floor))
    ctx = oracle_contexts(logmel, 2, 0, 2, floor)
    start = rtisi_clip(RtisiLa(SPEC, iterations=0, lookahead=2), wave.numpy(), ctx, 2)
    np.testing.assert_allclose(start, pure_source_phase(wave, logmel), atol=1e-5)  # 0 iterations: the start
    frames = want.shape[1]
    figures = [inconsistency(start, want, 4, frames - 4)]
    for iterations in (2, 8):
        out = rtisi_clip(RtisiLa(SPEC, iterations=iterations, lookahead=2), wave.numpy(), ctx, 2)
        figures.append(inconsistency(out, want, 4, frames - 4))
    assert figures[2] < figures[1] < figures[0] and figures[2] < 0.95 * figures[0], figures


def test_rtisi_la_commits_frames_independently_of_later_input() -> None:
    """Causality: the committed output before a change in the input is unaffected by it."""
    wave = tone(0.4)
    logmel = restyled_logmel(wave)
    floor = float(np.log(SPEC.log_floor))
    rtisi = RtisiLa(SPEC, iterations=3, lookahead=2)
    ctx = oracle_contexts(logmel, 2, 0, 2, floor)
    a = rtisi_clip(rtisi, wave.numpy(), ctx, 2)
    changed = wave.clone()
    cut = 5000
    changed[cut:] = 0.0
    b = rtisi_clip(rtisi, changed.numpy(), ctx, 2)
    # frames that end before the cut, committed before any frame overlapping it is looked at
    safe = cut - SPEC.n_fft - (2 + 2) * SPEC.hop
    np.testing.assert_allclose(a[:safe], b[:safe], atol=1e-6)
    assert np.abs(a - b).max() > 1e-3


def test_fine_tuning_on_denoiser_predictions_starts_from_the_init_stage(tmp_path: Path) -> None:
    from diffusion.checkpoint import save_model
    from diffusion.model import Denoiser

    data = make_dataset(tmp_path / "data", clips=4, seconds=1.0)
    torch.manual_seed(0)
    denoiser = Denoiser(ModelConfig(channels=(8, 16), emb_dim=16, fourier_dim=8, window=24))
    save_model(tmp_path / "den.pt", denoiser)
    save_stage(tmp_path / "init.pt", tiny_stage(1, seed=4))
    cfg = GuideTrainConfig(guide=TINY, segment=24, batch_size=2, steps=2, workers=0, val_every=2, val_windows=2,
                           checkpoint_every=2, warmup=1, lr=1e-9, init=str(tmp_path / "init.pt"),
                           denoiser=str(tmp_path / "den.pt"), p_model_cond=1.0)
    train_guide(cfg, data, tmp_path / "run", progress=False)
    tuned, start = load_stage(tmp_path / "run" / "model.pt"), load_stage(tmp_path / "init.pt")
    for a, b in zip(tuned.net.parameters(), start.net.parameters(), strict=True):  # lr ~0: still the init
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    bad = GuideTrainConfig(**{**cfg.__dict__, "segment": 32})
    with pytest.raises(StylehostError, match="segment = its window"):
        train_guide(bad, data, tmp_path / "run2", progress=False)
