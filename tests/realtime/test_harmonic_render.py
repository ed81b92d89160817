"""The shipped default plays a harmonic excitation: a whistle-like sine comes out with a harmonic series, where
the source-phase stage (models/source-phase, the default before) gives back the source's one partial
re-weighted (issue 15). Through the real engine, as `stylehost render` runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stylehost.cli import main

SR = 48000


def whistle(path: Path) -> None:
    t = np.arange(3 * SR) / SR
    f = np.where(t < 1.5, 440.0, 523.25) * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    x = 0.25 * np.sin(2 * np.pi * np.cumsum(f) / SR) * np.clip(np.minimum(t / 0.05, (3 - t) / 0.05), 0, 1)
    sf.write(path, x.astype(np.float32), SR)


def partials_db(path: Path, f0: float = 440.0, at_s: float = 0.6) -> np.ndarray:
    y, sr = sf.read(path)
    seg = y[int(at_s * sr) : int(at_s * sr) + 8192] * np.hanning(8192)
    spec = np.abs(np.fft.rfft(seg))
    freqs = np.fft.rfftfreq(8192, 1 / sr)
    return np.array([20 * np.log10(spec[np.abs(freqs - k * f0) < 20].max() / spec.max() + 1e-12)
                     for k in range(1, 7)])


@pytest.mark.slow
def test_a_whistle_gets_the_partials_it_lacks_with_harmonic(tmp_path: Path) -> None:
    """``--harmonic`` turns the excitation on for a bundle whose manifest does not ask for it."""
    whistle(tmp_path / "in.wav")
    source_phase = str(Path(__file__).resolve().parents[2] / "models" / "source-phase")
    for name, extra in (("plain", []), ("harmonic", ["--harmonic"])):
        assert main(["render", str(tmp_path / "in.wav"), str(tmp_path / f"{name}.wav"), "--style", "violin",
                     "--no-progress", "--model", source_phase, *extra]) == 0
    plain, harmonic = partials_db(tmp_path / "plain.wav"), partials_db(tmp_path / "harmonic.wav")
    assert np.all(harmonic[1:4] > -40.0), harmonic  # partials 2-4 are there
    assert np.mean(harmonic[1:6] - plain[1:6]) > 10.0, (plain, harmonic)  # and far above the filtered source's


@pytest.mark.slow
def test_the_default_bundle_plays_its_excitation_without_being_asked(tmp_path: Path) -> None:
    """models/default's manifest names the excitation its stage was trained on: a plain render turns it on by
    itself, and the whistle comes out with a violin-like series (stronger upper partials than the
    source-phase bundle's, which shares its denoiser)."""
    from export.bundle import load_bundle

    root = Path(__file__).resolve().parents[2] / "models"
    default, source_phase = load_bundle(root / "default"), load_bundle(root / "source-phase")
    assert default.excitation is not None and source_phase.excitation is None
    assert (default.manifest["files"]["denoiser.onnx"]["sha256"]
            == source_phase.manifest["files"]["denoiser.onnx"]["sha256"])
    assert default.manifest["reconstruction"]["excitation"] is not None  # its stage report scored the excitation
    whistle(tmp_path / "in.wav")
    assert main(["render", str(tmp_path / "in.wav"), str(tmp_path / "default.wav"), "--style", "violin",
                 "--no-progress"]) == 0  # no --model: the shipped default
    assert main(["render", str(tmp_path / "in.wav"), str(tmp_path / "source-phase.wav"), "--style", "violin",
                 "--no-progress", "--model", str(root / "source-phase")]) == 0
    plain, made = partials_db(tmp_path / "source-phase.wav"), partials_db(tmp_path / "default.wav")
    assert np.all(made[1:4] > -40.0), made
    assert np.mean(made[1:6] - plain[1:6]) > 10.0, (plain, made)
