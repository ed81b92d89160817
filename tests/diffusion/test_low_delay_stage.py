"""A learned stage on the low-delay STFT pair (issue 17) after a denoiser trained on the symmetric one.

The delay is set by the synthesis window alone: frame j's features need samples up to j*hop + n_fft with either
analysis window. So ``synthesis_len`` shapes only the resynthesis pair and the log-mel features stay Hann; a
stage retrained on the pair plays after the shipped denoiser, 8 ms earlier at n_fft 384, S 192.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.checkpoint import load_denoiser
from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig, SpectrogramTransform
from diffusion.guide import (
    GuideConfig,
    GuideNet,
    GuideStage,
    adapted_state,
    frames_of,
    load_stage,
    overlap_add,
    save_stage,
)
from diffusion.resynth import PhaseGuidedResynth
from diffusion.stream import StreamConfig
from export.onnx import export_bundle
from realtime.backends.choose import open_backend
from realtime.model_processor import ModelProcessor
from tests.diffusion.test_guide import tiny_stage
from tests.diffusion.test_guide_bundle import MIX, clip, staged_reference, tiny_stage_file
from tests.export.tiny import tiny_model
from tests.realtime.test_processor import stream

SYM, LOW = SpectrogramConfig(), SpectrogramConfig(synthesis_len=192)
NO_LOOK = GuideConfig(channels=8, blocks=2, lookahead=0)


def noise(samples: int = 4800, seed: int = 0) -> torch.Tensor:
    return torch.tensor(np.random.default_rng(seed).standard_normal((1, samples)))


def test_the_low_delay_pair_keeps_the_hann_features() -> None:
    sym, low = SpectrogramTransform(SYM, torch.float64), SpectrogramTransform(LOW, torch.float64)
    x = noise()
    torch.testing.assert_close(low.log_mel(x), sym.log_mel(x), atol=0, rtol=0)
    torch.testing.assert_close(low.log_mel_cut_tail(x, 96), sym.log_mel_cut_tail(x, 96), atol=0, rtol=0)
    assert not torch.allclose(low.stft(x)[0], sym.stft(x)[0])  # the pair itself is the asymmetric one


def test_source_phase_resynthesis_on_the_low_delay_pair_is_exact_at_unit_gain() -> None:
    """The gain is a ratio of feature log-mels: predicting the source's own features changes nothing."""
    x = noise().float()
    resynth = PhaseGuidedResynth(LOW)
    y = resynth(x, resynth.transform.log_mel(x))
    inner = slice(LOW.n_fft, y.shape[-1] - LOW.n_fft)
    torch.testing.assert_close(y[:, inner], x[:, : y.shape[-1]][:, inner], atol=1e-5, rtol=0)
    stage = GuideStage(LOW, NO_LOOK, steps=1)  # untrained: its last layer is zero, so it is the start
    frames = frames_of(x, LOW)
    restored = stage(frames, stage.feature_logmel(frames))  # frames [2, N): starts 2 hops into x
    out, m, hop = overlap_add(restored, LOW.hop), restored.shape[1], LOW.hop
    full = slice((LOW.n_fft // hop - 1) * hop, m * hop)  # samples every frame of which was restored
    torch.testing.assert_close(out[:, full], x[:, 2 * hop + full.start : 2 * hop + full.stop], atol=1e-5, rtol=0)


def test_dropping_the_look_ahead_keeps_every_other_weight() -> None:
    """With its look-ahead tap zeroed, the old net and the adapted one agree on every frame both emit."""
    torch.manual_seed(0)
    old = GuideNet(GuideConfig(channels=8, blocks=2))
    with torch.no_grad():
        for p in old.parameters():
            p.add_(0.1 * torch.randn_like(p))
        old.inp.weight[..., -1] = 0.0  # the tap of the frame after the emitted one
    new = GuideNet(NO_LOOK)
    new.load_state_dict(adapted_state(old.cfg, old.state_dict(), NO_LOOK))
    re, im, level, slog = (torch.randn(1, LOW.n_freqs, 12) for _ in range(4))
    a, b = old(re, im, 1.0, level, slog), new(re, im, 1.0, level, slog)
    assert a[0].shape[2] == 9 and b[0].shape[2] == 10  # frames [2, 11) and [2, 12)
    # float32 sums in another order (another CPU's kernels) differ by an ulp or two, not more
    torch.testing.assert_close(b[0][..., :9], a[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b[1][..., :9], a[1], atol=1e-5, rtol=1e-5)
    with pytest.raises(StylehostError, match="only context and lookahead"):
        adapted_state(old.cfg, old.state_dict(), dataclasses.replace(NO_LOOK, channels=16))


def low_stage_file(path: Path, spec: SpectrogramConfig = LOW) -> Path:
    return tiny_stage_file(path, spec=spec, cfg=NO_LOOK)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - export.bundle.Bundle
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("low_delay_stage")
    return export_bundle(tiny_model(root / "tiny.pt"), root / "low", stage_path=low_stage_file(root / "g.pt"))


def test_the_bundle_takes_the_stages_pair_and_its_shorter_delay(bundle) -> None:  # noqa: ANN001
    assert bundle.spectrogram == LOW and bundle.resynth_context == (2, 0)
    assert bundle.manifest["model_config"]["spectrogram"]["synthesis_len"] == 0  # the denoiser's own framing
    assert bundle.latency_samples == 192 + (bundle.lookahead - 1) * 96  # 480 on the symmetric pair
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"))
    assert proc.delay_samples == bundle.latency_samples


@pytest.mark.parametrize("emit,steps,strength", [(2, 1, 1.0), (4, 2, 0.7)])
def test_the_low_delay_bundle_streams_as_its_offline_reference(bundle, emit: int, steps: int,  # noqa: ANN001
                                                                strength: float) -> None:
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=emit)
    proc.set_params(style_mix=MIX, strength=strength, steps=steps)
    x = clip()
    y = stream(proc, x)
    want = staged_reference(proc, x, len(y), load_denoiser(bundle.torch_weights),
                            StreamConfig(emit=emit, steps=steps, strength=strength),
                            load_stage(bundle.path / "guide.pt"))
    assert np.sqrt(np.mean(want**2)) > 1e-3
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)


def test_a_stage_on_other_features_is_refused(tmp_path: Path) -> None:
    other = low_stage_file(tmp_path / "g.pt", dataclasses.replace(LOW, n_mels=48))
    with pytest.raises(StylehostError, match="other features"):
        export_bundle(tiny_model(tmp_path / "tiny.pt"), tmp_path / "b", stage_path=other)


def test_guide_training_on_the_low_delay_pair_starts_from_a_look_ahead_stage(tmp_path: Path) -> None:
    from diffusion.guide_train import GuideTrainConfig, train_guide
    from tests.diffusion.synthdata import make_dataset

    data = make_dataset(tmp_path / "data", clips=4, seconds=1.0)
    init = tiny_stage(1, seed=4)  # symmetric pair, one after-frame
    save_stage(tmp_path / "init.pt", init)
    cfg = GuideTrainConfig(guide=NO_LOOK, synthesis_len=192, segment=24, batch_size=2, steps=2, workers=0,
                           val_every=2, val_windows=2, checkpoint_every=2, warmup=1, lr=1e-9,
                           init=str(tmp_path / "init.pt"))
    train_guide(cfg, data, tmp_path / "run", progress=False)
    tuned = load_stage(tmp_path / "run" / "model.pt")
    assert tuned.spec == LOW and tuned.after == 0
    want = adapted_state(init.cfg, init.net.state_dict(), NO_LOOK)
    for name, value in tuned.net.state_dict().items():  # lr ~0: still the adapted init
        torch.testing.assert_close(value, want[name], atol=1e-5, rtol=0)


def test_a_causal_bundle_on_the_low_delay_stage_streams_8_ms_after_its_input(tmp_path: Path) -> None:
    """Causal network (1 frame of look-ahead) + a stage without look-ahead on the S=192 pair: 192 samples."""
    from export.streaming import export_streaming_bundle
    from realtime.stream_processor import StreamingProcessor, make_processor
    from tests.realtime.test_stream_processor import reference, tiny_causal, vibrato

    torch.set_num_threads(1)
    bundle = export_streaming_bundle(tiny_causal(tmp_path / "c.pt"), tmp_path / "b", low_stage_file(tmp_path / "g.pt"),
                                     frames=2)
    assert bundle.lookahead == 1 and bundle.spectrogram == LOW and bundle.latency_samples == 192
    proc = make_processor(bundle, open_backend(bundle, "cpu"))
    assert isinstance(proc, StreamingProcessor) and proc.delay_samples == 192
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x = vibrato(0.8)
    y = stream(proc, x)
    want = reference(proc, x, len(y))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)


def streams_as_played(bundle, model: Path, played) -> ModelProcessor:  # noqa: ANN001
    """The bundle's live processor equals the offline reference of ``played`` (the model file played with an
    option) and not that of the model as trained, so the option is in use. Returns the processor."""
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"))
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x = clip()
    y = stream(proc, x)
    cfg, stage = StreamConfig(emit=proc.S, steps=1, strength=1.0), load_stage(bundle.path / "guide.pt")
    want = staged_reference(proc, x, len(y), played, cfg, stage)
    np.testing.assert_allclose(y, want, atol=1e-5, rtol=0)
    other = staged_reference(proc, x, len(y), load_denoiser(model), cfg, stage)
    assert np.abs(other - want).max() > 1e-3
    return proc


def test_a_window_model_played_with_less_look_ahead_streams_one_hop_earlier(tmp_path: Path) -> None:
    """export --lookahead 1 on a model trained with 2: the manifest, the delay and the offline reference agree."""
    torch.set_num_threads(1)
    model = tiny_model(tmp_path / "tiny.pt")
    bundle = export_bundle(model, tmp_path / "l1", stage_path=low_stage_file(tmp_path / "g.pt"), lookahead=1)
    assert bundle.lookahead == 1 and bundle.latency_samples == 192
    assert streams_as_played(bundle, model, load_denoiser(model).play_with_lookahead(1)).delay_samples == 192
    with pytest.raises(StylehostError, match="fewer frames than the model"):
        load_denoiser(model).play_with_lookahead(3)
    from tests.realtime.test_stream_processor import tiny_causal

    with pytest.raises(StylehostError, match="fixed by its training"):
        load_denoiser(tiny_causal(tmp_path / "c.pt", lookahead=1)).play_with_lookahead(0)


def test_a_window_model_played_on_a_shorter_window_streams_as_its_offline_reference(tmp_path: Path) -> None:
    """export --window 16 on a model trained on 32 frames: half the work per call, the same delay, and the live
    path equals the offline reference played on the same window."""
    torch.set_num_threads(1)
    model = tiny_model(tmp_path / "tiny.pt")
    bundle = export_bundle(model, tmp_path / "w16", stage_path=low_stage_file(tmp_path / "g.pt"), window=16)
    assert bundle.window == 16 and bundle.latency_samples == 192 + (bundle.lookahead - 1) * 96
    streams_as_played(bundle, model, load_denoiser(model).play_with_window(16))
    for bad in (64, 15, 2):  # longer than trained, not a multiple of the UNet factor, under look-ahead + emit
        with pytest.raises(StylehostError, match="window must be a multiple"):
            load_denoiser(model).play_with_window(bad)
    from tests.realtime.test_stream_processor import tiny_causal

    with pytest.raises(StylehostError, match="carries its state"):
        load_denoiser(tiny_causal(tmp_path / "c.pt", lookahead=1)).play_with_window(16)


def excited_stage_file(path: Path, harmonic: dict | None = None) -> Path:
    """A tiny no-after-frame stage on the low-delay pair, saved as trained on the harmonic excitation."""
    low_stage_file(path)
    save_stage(path, load_stage(path), {"step": 0, "config": {"excitation": True, "harmonic": harmonic or {}}})
    return path


def test_a_lag_free_excitation_plays_a_stage_with_no_look_ahead(tmp_path: Path) -> None:
    """Issue 17: the excitation synthesised as each hop arrives (lag_hops 0) lets the window model play at
    look-ahead 0 with a stage that reads no later frame: 96 samples of delay on the S 192 pair, and the live
    processor equal to the offline reference with the same lag-free excitation. With the trained lag (1) the
    same export is refused before anything is written."""
    from diffusion.excitation import ExcitationConfig
    from tests.diffusion.test_excitation import offline_reference, vibrato_sine

    torch.set_num_threads(1)
    model, stage = tiny_model(tmp_path / "tiny.pt"), excited_stage_file(tmp_path / "g.pt")
    with pytest.raises(StylehostError, match="1 hop"):
        export_bundle(model, tmp_path / "lag1", stage_path=stage, lookahead=0)
    assert not (tmp_path / "lag1").exists()
    bundle = export_bundle(model, tmp_path / "lag0", stage_path=stage, lookahead=0, excitation_lag=0)
    assert bundle.excitation is not None and bundle.excitation["lag_hops"] == 0
    assert bundle.lookahead == 0 and bundle.latency_samples == 96
    proc = ModelProcessor(bundle, open_backend(bundle, "cpu"), emit=2)
    assert proc.delay_samples == 96
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x, _ = vibrato_sine(0.8, 330.0)
    y = stream(proc, x)
    played = load_denoiser(model).play_with_lookahead(0)
    want = offline_reference(proc, x, len(y), played, excitation=ExcitationConfig(lag_hops=0))
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)
    other = offline_reference(proc, x, len(y), played, excitation=ExcitationConfig(lag_hops=1))
    assert np.abs(other - want).max() > 1e-3  # the lag-free excitation is the one in use


def test_eval_refuses_what_the_live_excitation_cannot_play() -> None:
    """Live, the excitation lags lag_hops (1 as trained), so a stage reading no frame after the emitted ones still
    needs that many look-ahead frames (ModelProcessor refuses fewer); eval, whose excitation is whole, must refuse
    it too."""
    from diffusion.excitation import check_stage_reach

    none_after = GuideStage(SYM, NO_LOOK)
    check_stage_reach(none_after.after, 1)
    with pytest.raises(StylehostError, match=r"runs 1 hop\(s\) behind"):
        check_stage_reach(none_after.after, 0)
    one_after = tiny_stage()
    assert none_after.after == 0 and one_after.after == 1
    check_stage_reach(one_after.after, 2)
    with pytest.raises(StylehostError, match="look-ahead >= 2, not 1"):
        check_stage_reach(one_after.after, 1)
    check_stage_reach(none_after.after, 0, lag_hops=0)  # a lag-free excitation (issue 17) plays at look-ahead 0
    check_stage_reach(one_after.after, 1, lag_hops=0)
    with pytest.raises(StylehostError, match="look-ahead >= 1, not 0"):
        check_stage_reach(one_after.after, 0, lag_hops=0)
