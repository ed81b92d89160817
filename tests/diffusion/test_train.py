"""Training on the tiny synthetic dataset: loss falls, checkpoints round-trip and resume, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.checkpoint import load_checkpoint, load_denoiser, save_model
from diffusion.config import load_config
from diffusion.errors import StylehostError
from diffusion.features import SpectrogramTransform
from diffusion.model import Denoiser, ModelConfig
from diffusion.pairs import PairWindows, fixed_windows, load_clips
from diffusion.train import TrainConfig, train, validate
from stylehost.cli import main
from tests.diffusion.synthdata import make_dataset

TINY = ["model.channels=[8,16]", "model.emb_dim=16", "model.fourier_dim=8", "batch_size=8", "workers=0",
        "threads=1", "val_windows=16", "val_steps=1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("synth"), clips=5, seconds=0.6)


def tiny(*extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [*TINY, *extra])


def test_pair_windows_are_aligned_crops(data: Path) -> None:
    cfg = ModelConfig()
    clips = load_clips(data, cfg, "train")
    assert len(clips) == 3 and clips[0].audio["fluidr3"]["piano"].dtype == np.int16
    windows = PairWindows(clips, cfg, 4, (0,), augment=None, p_same_style=1.0)
    rng = np.random.default_rng(0)
    examples = [windows.example(rng) for _ in range(20)]
    assert all(len(s) == len(t) == cfg.spectrogram.num_samples(32) for s, t, _ in examples)
    # Same style, no augmentation: a fluidr3 source is the very crop of the target.
    assert sum(np.array_equal(s, t) for s, t, _ in examples) >= 3
    batch = windows.batch(rng, SpectrogramTransform(cfg.spectrogram))
    assert batch["source"].shape == batch["target"].shape == (4, 64, 32) and batch["style"].shape == (4,)


def test_a_few_steps_make_the_loss_fall(data: Path, tmp_path: Path) -> None:
    cfg = tiny("steps=60", "lr=3e-3", "warmup=5", "val_every=1000", "checkpoint_every=1000")
    val = fixed_windows(load_clips(data, cfg.model, "val"), cfg.model, 16)
    torch.manual_seed(cfg.seed)
    before = validate(Denoiser(cfg.model), val, cfg)["val_loss"]
    ema = train(cfg, data, tmp_path / "run", progress=False)
    after = validate(ema, val, cfg)["val_loss"]
    assert after < 0.8 * before, (before, after)
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"checkpoint.pt", "model.pt", "config.json", "loss.png"}


def test_checkpoint_round_trip_and_resume(data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny("steps=4"), data, run, progress=False)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 4
    ema = train(tiny("steps=6"), data, run, progress=False)  # resumes from step 4
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 6 and ckpt["config"]["steps"] == 6
    assert json.loads((run / "config.json").read_text())["model"]["channels"] == [8, 16]
    save_model(tmp_path / "m.pt", ema, {"note": "round trip"})
    loaded = load_denoiser(tmp_path / "m.pt")
    x = torch.randn(1, 1, 64, 32)
    args = (x, torch.tensor([1.0]), x, ema.style_vector({"piano": 1.0}))
    torch.testing.assert_close(loaded(*args), ema(*args), rtol=0, atol=0)
    torch.testing.assert_close(load_denoiser(run / "model.pt")(*args), ema(*args), rtol=0, atol=0)
    with pytest.raises(StylehostError, match=r"another model config: model.channels|channels"):
        train(tiny("steps=8", "model.channels=[8,8]"), data, run, progress=False)


def test_clear_errors(data: Path, tmp_path: Path) -> None:
    with pytest.raises(StylehostError, match="no dataset at"):
        train(tiny(), tmp_path / "nowhere", tmp_path / "run", progress=False)
    with pytest.raises(StylehostError, match="unknown style 'banjo'"):
        tiny('model.styles=["piano","banjo"]')
    with pytest.raises(StylehostError, match="unknown config key 'stepz'.*valid keys"):
        tiny("stepz=3")
    with pytest.raises(StylehostError, match="unknown config key.*model.widths"):
        load_config(TrainConfig, None, ["model.widths=[1]"])
    two = make_dataset(tmp_path / "two", clips=3, seconds=0.3, styles=("piano", "organ"))
    with pytest.raises(StylehostError, match="lacks styles"):
        load_clips(two, ModelConfig(), "train")
    with pytest.raises(StylehostError, match="not a stylehost checkpoint|cannot load"):
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        load_denoiser(tmp_path / "junk.pt")


def test_cli_train_end_to_end(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"steps": 2, "model": {"channels": [8, 16], "emb_dim": 16, "fourier_dim": 8}}))
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--config", str(config), "--no-progress"]
    sets = [a for s in TINY[3:] for a in ("--set", s)]
    assert main([*args, *sets]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 2
    assert main([*args, "--set", "nope=1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err


def test_a_causal_model_trains_and_its_loss_falls(data: Path, tmp_path: Path) -> None:
    """`--set 'model.causal={...}'` trains the causal streaming network (issue 17) with the same loop."""
    from diffusion.causal import CausalDenoiser
    from diffusion.checkpoint import build_denoiser

    cfg = tiny('model.causal={"dilations": [1, 2]}', "steps=60", "lr=3e-3", "warmup=5", "val_every=1000",
               "checkpoint_every=1000")
    val = fixed_windows(load_clips(data, cfg.model, "val"), cfg.model, 16)
    torch.manual_seed(cfg.seed)
    before = validate(build_denoiser(cfg.model), val, cfg)["val_loss"]
    ema = train(cfg, data, tmp_path / "run", progress=False)
    assert isinstance(ema, CausalDenoiser) and isinstance(load_denoiser(tmp_path / "run" / "model.pt"), CausalDenoiser)
    after = validate(ema, val, cfg)["val_loss"]
    assert after < 0.8 * before, (before, after)
