"""A small style classifier: the judge for style accuracy and the embedding for Frechet distance.

Trained on the training split's target renderings (FluidR3) only, so that it recognises the
instruments the model is asked to produce. It sees half-second log-mel windows with random gain,
so loudness alone cannot give a style away. Its 64-d pooled features are the embedding.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn
from tqdm import tqdm

from diffusion.data import load_manifest
from diffusion.errors import StylehostError
from diffusion.features import SpectrogramConfig, SpectrogramTransform


@dataclass(frozen=True)
class ClassifierConfig:
    window_frames: int = 128  # 0.5 s at 4 ms hops
    channels: int = 24
    embed_dim: int = 64
    steps: int = 1200
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0


class StyleClassifier(nn.Module):
    """(B, n_mels, frames) log-mel -> (logits (B, n_styles), embedding (B, embed_dim))."""

    def __init__(self, n_mels: int, n_styles: int, cfg: ClassifierConfig) -> None:
        super().__init__()
        c = cfg.channels
        # A strided stem first: most of the cost of a CNN sits at full resolution.
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.SiLU()]
        ch_in = c
        for ch_out in (c, 2 * c, 2 * c):
            layers += [nn.Conv2d(ch_in, ch_out, 3, padding=1), nn.GroupNorm(8, ch_out), nn.SiLU(), nn.MaxPool2d(2)]
            ch_in = ch_out
        self.body = nn.Sequential(*layers)
        self.embed = nn.Linear(2 * c, cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, n_styles)

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Per-window mean removal: the classifier judges timbre, not level.
        x = (logmel - logmel.mean(dim=(1, 2), keepdim=True)) / 3.0
        h = self.body(x.unsqueeze(1)).mean(dim=(2, 3))
        emb = torch.tanh(self.embed(h))
        return self.head(emb), emb


def load_split_logmels(data_dir: Path, split: str, font: str, spec: SpectrogramConfig) -> dict[str, list[np.ndarray]]:
    """{style: [log-mel (n_mels, frames) per clip]} for one split and SoundFont."""
    manifest = load_manifest(data_dir)
    transform = SpectrogramTransform(spec)
    out: dict[str, list[np.ndarray]] = {s: [] for s in manifest["styles"]}
    for clip in manifest["clips"]:
        if clip["split"] != split:
            continue
        for style, entry in clip["audio"][font].items():
            audio, sr = sf.read(Path(data_dir) / entry["path"], dtype="float32")
            if sr != spec.sample_rate:
                raise StylehostError(f"{entry['path']}: {sr} Hz, expected {spec.sample_rate}")
            with torch.no_grad():
                out[style].append(transform.log_mel(torch.from_numpy(audio)[None])[0].numpy())
    return out


def sample_windows(logmels: dict[str, list[np.ndarray]], styles: list[str], n: int, frames: int,
                   rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for _ in range(n):
        k = int(rng.integers(len(styles)))
        clips = logmels[styles[k]]
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(0, clip.shape[1] - frames + 1))
        xs.append(clip[:, start : start + frames] + rng.uniform(-2.5, 2.5))  # +-22 dB of random gain
        ys.append(k)
    return torch.tensor(np.stack(xs)), torch.tensor(ys)


def train_classifier(data_dir: Path, out_path: Path, cfg: ClassifierConfig | None = None,
                     spec: SpectrogramConfig | None = None, progress: bool = True) -> dict:
    """Train on the train split's FluidR3 renders, report val accuracy, save weights + config."""
    cfg, spec = cfg or ClassifierConfig(), spec or SpectrogramConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    manifest = load_manifest(data_dir)
    styles = list(manifest["styles"])
    train = load_split_logmels(data_dir, "train", "fluidr3", spec)
    val = load_split_logmels(data_dir, "val", "fluidr3", spec)
    model = StyleClassifier(spec.n_mels, len(styles), cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps)
    start = time.time()
    for _ in tqdm(range(cfg.steps), desc="style classifier", disable=not progress):
        x, y = sample_windows(train, styles, cfg.batch, cfg.window_frames, rng)
        loss = nn.functional.cross_entropy(model(x)[0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    xv, yv = sample_windows(val, styles, 1024, cfg.window_frames, np.random.default_rng(1))
    with torch.no_grad():
        acc = float((model(xv)[0].argmax(1) == yv).float().mean())
    info = {"styles": styles, "config": asdict(cfg), "spectrogram": spec.to_dict(), "val_accuracy": round(acc, 4),
            "train_seconds": round(time.time() - start, 1), "data": str(data_dir)}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "info": json.dumps(info)}, out_path)
    return info


def load_classifier(path: Path) -> tuple[StyleClassifier, dict]:
    """Load weights saved by train_classifier (weights_only: a checkpoint is data, never code)."""
    if not Path(path).is_file():
        raise StylehostError(f"no style classifier at {path}: train one with `stylehost eval --train-classifier`")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    info = json.loads(blob["info"])
    cfg = ClassifierConfig(**info["config"])
    model = StyleClassifier(SpectrogramConfig.from_dict(info["spectrogram"]).n_mels, len(info["styles"]), cfg)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), info


def embed_clip(model: StyleClassifier, logmel: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows of one clip -> (style probabilities (W, S), embeddings (W, E))."""
    n = logmel.shape[1] // frames
    if n == 0:
        raise StylehostError(f"clip shorter than the classifier window ({frames} frames)")
    x = torch.tensor(np.stack([logmel[:, i * frames : (i + 1) * frames] for i in range(n)]), dtype=torch.float32)
    with torch.no_grad():
        logits, emb = model(x)
    return torch.softmax(logits, 1).numpy(), emb.numpy()
