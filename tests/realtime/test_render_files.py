"""`stylehost render` with files the world sends: a clear one-line error or a correct result, and OUT is
replaced atomically (a failed render leaves a good OUT as it was and no temp files)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffusion.errors import StylehostError
from realtime.processor import PassthroughProcessor, Processor, StftPassthroughProcessor
from realtime.render import render_file
from stylehost.cli import main


def render_cli(tmp_path: Path, name: str, capsys: pytest.CaptureFixture, out: str = "out.wav") -> tuple[int, str]:
    """Exit code and the stderr error lines (the passthrough notice line is dropped)."""
    code = main(["render", str(tmp_path / name), str(tmp_path / out), "--style", "violin", "--model", "passthrough",
                 "--no-progress"])
    err = capsys.readouterr().err
    return code, "".join(line for line in err.splitlines(keepends=True) if not line.startswith("NOTE:"))


def good_out(tmp_path: Path) -> bytes:
    """An existing, valid OUT that a failed render must not touch."""
    sf.write(tmp_path / "out.wav", np.full((480, 1), 0.25, np.float32), 24000)
    return (tmp_path / "out.wav").read_bytes()


def leftovers(tmp_path: Path) -> list[str]:
    return [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("missing.wav", None, "missing.wav: no such file"),  # libsndfile alone says "System error"
        ("empty.wav", b"", "cannot read"),
        ("text.wav", b"this is not audio at all, just text" * 10, "cannot read"),
        ("folder.wav", "dir", "folder.wav: it is a folder"),
        ("noframes.wav", "noframes", "holds no audio"),
    ],
)
def test_unreadable_inputs_are_one_line_errors_and_out_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture, name: str, content: object, message: str
) -> None:
    """Guards the input checks before anything is written: exit 2, one line, OUT byte-identical."""
    if content == "dir":
        (tmp_path / name).mkdir()
    elif content == "noframes":
        sf.write(tmp_path / name, np.zeros((0, 1), np.float32), 24000)
    elif isinstance(content, bytes):
        (tmp_path / name).write_bytes(content)
    before = good_out(tmp_path)
    code, err = render_cli(tmp_path, name, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert (tmp_path / "out.wav").read_bytes() == before and not leftovers(tmp_path)


def test_truncated_wav_renders_what_is_there(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A WAV cut mid-data (a crashed recorder): libsndfile reads the frames present; the render is correct
    for those and has the same length as what could be read."""
    x = (0.3 * np.sin(np.arange(24000) * 0.05)).astype(np.float32)[:, None]
    sf.write(tmp_path / "full.wav", x, 24000, subtype="FLOAT")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    code, err = render_cli(tmp_path, "cut.wav", capsys)
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    n = sf.info(str(tmp_path / "cut.wav")).frames
    assert code == 0 and len(y) == n and 0 < n < len(x)
    np.testing.assert_allclose(y[: n - 1000], x[: n - 1000], atol=1e-5)


@pytest.mark.parametrize(
    "rate,channels,subtype,stereo,atol",
    [
        (24000, 1, "PCM_U8", "mid", 2e-2),  # 8-bit: correct to 8-bit precision, written back as 8-bit
        (96000, 1, "PCM_16", "mid", 2e-2),  # resampled 96k -> 24k -> 96k
        (24000, 6, "PCM_24", "per-channel", 1e-5),  # 5.1: every channel its own processor
    ],
)
def test_unusual_formats_render_correctly(tmp_path: Path, rate: int, channels: int, subtype: str, stereo: str,
                                          atol: float) -> None:
    """8-bit, 96 kHz and 6-channel files: same length, rate, channel count and subtype, content aligned."""
    t = np.arange(int(0.6 * rate)) / rate
    x = np.stack([0.4 * np.sin(2 * np.pi * (110 + 50 * c) * t) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, rate, subtype=subtype)
    x, _ = sf.read(tmp_path / "in.wav", dtype="float32", always_2d=True)  # quantised as stored
    render_file(tmp_path / "in.wav", tmp_path / "out.wav", PassthroughProcessor, stereo_mode=stereo, progress=False)
    y, out_rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert out_rate == rate and y.shape == x.shape and sf.info(str(tmp_path / "out.wav")).subtype == subtype
    body = slice(rate // 10, len(x) - rate // 10)
    np.testing.assert_allclose(y[body], x[body], atol=atol)


def test_six_channels_mid_mode_gives_the_mid_on_every_channel(tmp_path: Path) -> None:
    """The documented meaning of --stereo mid for more than two channels: one processor on the mean."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((12000, 6))).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    render_file(tmp_path / "in.wav", tmp_path / "out.wav", StftPassthroughProcessor, progress=False)
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, np.repeat(x.mean(axis=1, keepdims=True), 6, axis=1), atol=1e-5)


class Interrupted(StftPassthroughProcessor):
    """Ctrl-C (a BaseException, not caught by the engine) halfway through a render."""

    calls = 0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        self.calls += 1
        if self.calls == 40:
            raise KeyboardInterrupt
        super().process(window, out)


def test_interrupted_render_keeps_the_old_out_and_leaves_no_temp(tmp_path: Path) -> None:
    """Guards the temp-file-then-rename write: an interrupted render never truncates or replaces OUT."""
    sf.write(tmp_path / "in.wav", np.zeros((48000, 1), np.float32), 24000)
    before = good_out(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        render_file(tmp_path / "in.wav", tmp_path / "out.wav", Interrupted, progress=False)
    assert (tmp_path / "out.wav").read_bytes() == before and not leftovers(tmp_path)


def test_render_in_place_and_into_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """IN == OUT works (the temp file is read from IN, then renamed over it); an OUT in a missing folder is
    one line."""
    x = (0.3 * np.sin(np.arange(12000) * 0.05)).astype(np.float32)[:, None]
    sf.write(tmp_path / "song.wav", x, 24000, subtype="FLOAT")
    code, _ = render_cli(tmp_path, "song.wav", capsys, out="song.wav")
    y, _ = sf.read(tmp_path / "song.wav", dtype="float32", always_2d=True)
    assert code == 0 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1e-5)
    code, err = render_cli(tmp_path, "song.wav", capsys, out="nowhere/out.wav")
    assert code == 2 and "does not exist" in err and err.count("\n") == 1


def test_nan_in_a_float_file_renders_finite_and_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A float WAV with NaN/inf samples (a broken plugin's bounce): OUT is finite, the count is in the result."""
    x = (0.3 * np.sin(np.arange(24000) * 0.05)).astype(np.float32)[:, None]
    x[5000:5100] = np.nan
    x[6000] = np.inf
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    result = render_file(tmp_path / "in.wav", tmp_path / "out.wav", StftPassthroughProcessor, progress=False)
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert np.isfinite(y).all() and result.bad_input == 101


class Failing(StftPassthroughProcessor):
    """A backend that raises on every 10th call."""

    calls = 0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        self.calls += 1
        if self.calls % 10 == 0:
            raise RuntimeError("onnxruntime failed running denoiser")
        super().process(window, out)


def test_render_survives_model_faults_and_says_so(tmp_path: Path) -> None:
    """Model faults do not abort a render: those strides are dry (same latency), and the count is reported."""
    x = (0.3 * np.sin(np.arange(24000) * 0.05)).astype(np.float32)[:, None]
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    result = render_file(tmp_path / "in.wav", tmp_path / "out.wav", Failing, progress=False)
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert result.faults > 5 and "onnxruntime failed" in result.last_error
    np.testing.assert_allclose(y, x, atol=0.02)  # passthrough: dry == wet, only the fades differ a little


def test_long_files_are_streamed_not_loaded(tmp_path: Path) -> None:
    """Guards streaming reads: peak Python memory while rendering 2 minutes of 48 kHz stereo (46 MB as
    float32) stays far below the file's size, so hours need no more than minutes."""
    rate, seconds = 48000, 120
    with sf.SoundFile(tmp_path / "long.flac", "w", samplerate=rate, channels=2, subtype="PCM_16") as f:
        chunk = (0.2 * np.sin(np.arange(rate) * 0.03)).astype(np.float32)
        for _ in range(seconds):
            f.write(np.stack([chunk, chunk], axis=1))

    def make() -> Processor:
        return PassthroughProcessor(sample_rate=rate, window=4096, stride=4096, delay=0)

    tracemalloc.start()
    result = render_file(tmp_path / "long.flac", tmp_path / "out.flac", make, blocksize=4096, progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.frames == rate * seconds
    assert peak < 8e6, peak  # the whole file as float32 would be 46 MB


# ---- OUT's path, checked before rendering (issue 19) -----------------------------------------------------


class Counting(StftPassthroughProcessor):
    """Counts processor calls: 0 means nothing was rendered before the error."""

    calls = 0

    def process(self, window: np.ndarray, out: np.ndarray) -> None:
        Counting.calls += 1
        super().process(window, out)


def tone(tmp_path: Path, seconds: float = 0.5, name: str = "in.wav") -> Path:
    x = (0.3 * np.sin(np.arange(int(seconds * 24000)) * 0.05)).astype(np.float32)[:, None]
    sf.write(tmp_path / name, x, 24000, subtype="FLOAT")
    return tmp_path / name


@pytest.mark.parametrize(
    "out,make,message",
    [
        ("x.wav", "dir", r"x\.wav: it is a folder"),  # was found by os.replace only after the whole render
        ("x", "dir", r"x: it is a folder"),  # was "unknown extension"
        ("out.xyz", None, r"unknown extension '\.xyz'; known extensions: wav, flac, ogg, mp3, aiff, "),
        ("noext", None, r"noext: no extension; known extensions: wav, flac"),
        ("pipe.wav", "fifo", r"pipe\.wav: it exists and is not a regular file"),
    ],
)
def test_out_problems_are_named_before_anything_is_rendered(tmp_path: Path, out: str, make: str | None,
                                                            message: str) -> None:
    """Guards OUT's checks: a folder, an unknown or missing extension, a FIFO: one line naming it, and no
    processor call (nothing rendered first), no temp file."""
    src = tone(tmp_path)
    if make == "dir":
        (tmp_path / out).mkdir()
    elif make == "fifo":
        os.mkfifo(tmp_path / out)
    Counting.calls = 0
    with pytest.raises(StylehostError, match=message) as info:
        render_file(src, tmp_path / out, Counting, progress=False)
    assert Counting.calls == 0 and "\n" not in str(info.value) and not leftovers(tmp_path)


def test_a_fifo_input_is_not_a_regular_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Guards the input's file-type message: a FIFO (or device) was called "no such file"."""
    os.mkfifo(tmp_path / "pipe.wav")
    before = good_out(tmp_path)
    code, err = render_cli(tmp_path, "pipe.wav", capsys)
    assert code == 2 and "pipe.wav: it is not a regular file" in err and err.count("\n") == 1, err
    assert (tmp_path / "out.wav").read_bytes() == before


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A real tmpfs mounted at ``path`` (root only); skips the test with the reason when mount is refused."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_an_unwritable_out_folder_is_named_before_rendering(tmp_path: Path) -> None:
    """Guards the temp file created before the render: a read-only folder was "System error."; now the
    folder is named. As root (permission bits do not stop root) a read-only tmpfs, else chmod 555."""
    src = tone(tmp_path)
    Counting.calls = 0
    if os.geteuid() == 0:
        with tmpfs(tmp_path / "ro", "ro,size=64k") as folder:
            with pytest.raises(StylehostError, match=r"ro/out\.wav: the folder .*ro is on a read-only file system"):
                render_file(src, folder / "out.wav", Counting, progress=False)
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            with pytest.raises(StylehostError, match=r"the folder .*ro is not writable \(permission denied\)"):
                render_file(src, folder / "out.wav", Counting, progress=False)
        finally:
            folder.chmod(0o755)
    assert Counting.calls == 0


def test_a_full_disk_is_named_and_out_is_kept_without_a_temp(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Guards the disk-full diagnosis on a real 64 KB tmpfs: libsndfile says only "System error."; the
    line says "disk full", OUT keeps its old bytes and the partial temp file is gone."""
    tone(tmp_path, seconds=2.0)  # 188 KB as float32: does not fit
    with tmpfs(tmp_path / "small", "size=64k") as folder:
        sf.write(folder / "out.wav", np.full((480, 1), 0.25, np.float32), 24000)
        before = (folder / "out.wav").read_bytes()
        code, err = render_cli(tmp_path, "in.wav", capsys, out="small/out.wav")
        assert code == 2 and "disk full: no space left in" in err and err.count("\n") == 1, err
        assert (folder / "out.wav").read_bytes() == before and not leftovers(folder)


def test_enospc_from_a_write_is_called_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """The same without a tmpfs: a write failing with ENOSPC (or EDQUOT) is "disk full", OUT untouched,
    no temp left."""
    tone(tmp_path)
    before = good_out(tmp_path)

    def full(self: sf.SoundFile, data: np.ndarray) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sf.SoundFile, "write", full)
    code, err = render_cli(tmp_path, "in.wav", capsys)
    assert code == 2 and "disk full" in err and err.count("\n") == 1, err
    assert (tmp_path / "out.wav").read_bytes() == before and not leftovers(tmp_path)


# ---- compressed input read straight on (issue 19) ---------------------------------------------------------


@pytest.mark.parametrize("fmt,subtype,ext", [("MP3", "MPEG_LAYER_III", "mp3"), ("OGG", "VORBIS", "ogg"),
                                             ("OGG", "OPUS", "opus")])
def test_compressed_input_renders_at_its_level_over_the_whole_file(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                    fmt: str, subtype: str, ext: str) -> None:
    """Guards the seek-free block reads: a steady-tone MP3 read in 1024-frame blocks through soundfile
    (which seeks after every read) went silent after 5120 frames and rendered near-silence with rc 0.
    Every quarter second of OUT must hold the input's level (whole-file decode), within 0.5 dB."""
    if not sf.check_format(fmt, subtype):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    rate = 48000
    t = np.arange(4 * rate) / rate
    sf.write(tmp_path / f"in.{ext}", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=fmt,
             subtype=subtype)
    x, _ = sf.read(tmp_path / f"in.{ext}", dtype="float32")  # one read: decoded right
    code, err = render_cli(tmp_path, f"in.{ext}", capsys)
    y, out_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert code == 0 and out_rate == rate and len(y) == len(x), err
    q = rate // 4
    seg = slice(q, len(x) // q * q - q)  # away from the codec's and the engine's first and last moments
    rms_in = np.sqrt((x[seg].reshape(-1, q) ** 2).mean(axis=1))
    rms_out = np.sqrt((y[seg].reshape(-1, q) ** 2).mean(axis=1))
    np.testing.assert_allclose(20 * np.log10(rms_out / rms_in), 0.0, atol=0.5)


# ---- what the command line reports, and what OUT keeps (issue 19) -----------------------------------------


def test_replaced_non_finite_samples_are_reported_on_the_command_line(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """Guards the CLI's report of the engine's count: 101 NaN/inf input samples are said on stderr."""
    x = (0.3 * np.sin(np.arange(24000) * 0.05)).astype(np.float32)[:, None]
    x[5000:5100] = np.nan
    x[6000] = np.inf
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    code, err = render_cli(tmp_path, "in.wav", capsys)
    assert code == 0 and "stylehost: replaced 101 non-finite input samples (NaN/inf) with 0" in err, err


def test_replacing_out_keeps_its_permission_bits(tmp_path: Path) -> None:
    """Guards the mode copy before the rename: an OUT made 0o604 stays 0o604 (the temp has the umask's
    0o644). A hard link to the old OUT keeps the old audio: the atomic rename makes a new file."""
    src = tone(tmp_path)
    good_out(tmp_path)
    (tmp_path / "out.wav").chmod(0o604)
    old_umask = os.umask(0o022)
    try:
        render_file(src, tmp_path / "out.wav", StftPassthroughProcessor, progress=False)
        render_file(src, tmp_path / "new.wav", StftPassthroughProcessor, progress=False)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "out.wav").stat().st_mode) == 0o604
    assert stat.S_IMODE((tmp_path / "new.wav").stat().st_mode) == 0o644  # a new OUT: the umask's, as any file
