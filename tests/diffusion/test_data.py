"""`stylehost data render --small` renders real paired clips through FluidSynth."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from diffusion.data import split_of
from stylehost.cli import main
from tests.conftest import SMALL_STYLES as STYLES


def onset_times(audio: np.ndarray, sr: int) -> np.ndarray:
    """Spectral-flux onsets (s): rectified rise of log-magnitude over 5 ms hops, peak-picked."""
    hop, n = sr // 200, 512
    frames = np.stack([audio[i : i + n] * np.hanning(n) for i in range(0, len(audio) - n, hop)])
    logmag = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-4)
    flux = np.maximum(np.diff(logmag, axis=0), 0).sum(axis=1)
    thresh = np.median(flux) + 2.0 * flux.std()
    peaks = [i for i in range(1, len(flux) - 1)
             if flux[i] > thresh and flux[i] >= flux[i - 1] and flux[i] >= flux[i + 1]]
    return (np.array(peaks) + 1) * hop / sr + n / (2 * sr)


def spectral_centroid(audio: np.ndarray, sr: int) -> float:
    mag = np.abs(np.fft.rfft(audio))
    return float((mag * np.fft.rfftfreq(len(audio), 1 / sr)).sum() / mag.sum())


def test_pairs_have_equal_length_same_onsets_and_different_timbre(small_dataset: Path) -> None:
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    assert manifest["styles"] == STYLES.split(",")
    assert {c["split"] for c in manifest["clips"]} == {"train", "val", "test"}
    hit_rates, centroid_gaps = [], []
    for clip in manifest["clips"]:
        assert clip["split"] == split_of(clip["piece"])
        audio = {}
        for font, styles in clip["audio"].items():
            for style, entry in styles.items():
                a, sr = sf.read(small_dataset / entry["path"], dtype="float32")
                assert sr == 24000 and a.ndim == 1 and len(a) == clip["samples"]
                assert np.isfinite(a).all() and np.abs(a).max() > 1e-3
                audio[font, style] = a
        # Struck and plucked instruments start every note sharply: both must show the clip's onsets.
        expected = np.array(clip["onsets"])
        for style in ("piano", "guitar"):
            found = onset_times(audio["fluidr3", style], sr)
            hit_rates.append(np.mean([np.abs(found - t).min() < 0.03 for t in expected]) if len(found) else 0.0)
        centroid_gaps.append(abs(spectral_centroid(audio["fluidr3", "piano"], sr)
                                 - spectral_centroid(audio["fluidr3", "flute"], sr)))
    assert np.mean(hit_rates) > 0.8, hit_rates
    assert np.median(centroid_gaps) > 200.0, centroid_gaps  # Hz: piano and flute really differ


def test_pieces_never_span_splits(small_dataset: Path) -> None:
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    split_by_piece: dict[str, set[str]] = {}
    for clip in manifest["clips"]:
        split_by_piece.setdefault(clip["piece"], set()).add(clip["split"])
    assert all(len(s) == 1 for s in split_by_piece.values())


def test_manifest_checksums_match_files(small_dataset: Path) -> None:
    import hashlib

    manifest = json.loads((small_dataset / "manifest.json").read_text())
    clip = manifest["clips"][0]
    for styles in clip["audio"].values():
        for entry in styles.values():
            assert hashlib.sha256((small_dataset / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    assert "| train |" in (small_dataset / "summary.md").read_text()


def test_rerun_resumes_without_rendering_again(small_dataset: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in small_dataset.rglob("*.flac")}
    assert main(["data", "render", "--small", "--quiet", "--styles", STYLES, "--out", str(small_dataset)]) == 0
    after = {p: p.stat().st_mtime_ns for p in small_dataset.rglob("*.flac")}
    assert before == after


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylehost", *args], capture_output=True, text=True)


def test_bad_soundfont_is_a_clear_error(tmp_path: Path) -> None:
    missing = run_cli("data", "render", "--small", "--out", str(tmp_path / "a"), "--soundfont", "/nope.sf2")
    assert missing.returncode == 2 and "SoundFont not found: /nope.sf2" in missing.stderr
    assert "Traceback" not in missing.stderr
    bogus = tmp_path / "bogus.sf2"
    bogus.write_bytes(b"not a soundfont at all")
    bad = run_cli("data", "render", "--small", "--out", str(tmp_path / "b"), "--soundfont", str(bogus))
    assert bad.returncode == 2 and "not a SoundFont 2 file" in bad.stderr


def test_unknown_style_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("data", "render", "--small", "--out", str(tmp_path), "--styles", "piano,kazoo")
    assert result.returncode == 2
    assert "unknown style 'kazoo'" in result.stderr and "violin" in result.stderr
