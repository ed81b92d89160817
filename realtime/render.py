"""Offline rendering through the live engine: blocks from a file instead of PortAudio, no sleeping.

The same Engine.process_block / Engine.pump pair that runs live runs here, so a render is what the
live engine would have played, minus the latency: the engine's output is shifted back by
round(latency.algorithmic) samples and trimmed to the input length, at the input's sample rate.

OUT is checked before anything is rendered (not a folder, a known extension, a writable folder: the
temp file is created first), then written to a temporary name beside it and renamed into place
(atomic: a crash never leaves half a file under OUT's name, and a failed render leaves an existing
OUT as it was). The temp file is removed on any exception, on Ctrl-C, and on SIGTERM or SIGHUP
(raised as ``Terminated`` inside ``terminations_raise()``, which the CLI wraps around a render); one
left by a killed render (SIGKILL, power loss) is removed by the next render of the same OUT, once no
process with its PID is alive.
Replacing OUT keeps its permission bits; OUT is a new file, so a hard link to the old one keeps the
old audio (the price of the atomic write).

The input is read block by block, so an hours-long file needs no more memory than a short one, and
read straight on, never seeking (``_read_block``: libsndfile's MP3 decoder returns silence after the
seek soundfile makes on every read). Model faults do not stop a render (the engine plays those
strides dry, as live); they are counted in the result and the CLI warns.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from diffusion.errors import StylehostError
from realtime.engine import Engine, EngineConfig
from realtime.params import EngineParams
from realtime.processor import Processor

PROGRESS_MIN_SECONDS = 20.0  # shorter files render faster than a progress bar is worth
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # timeout(1), service managers, a closed terminal
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_BYTES = 1 << 20  # a failed write with less than this free is a full disk (libsndfile drops errno)
EXTENSION_ALIASES = {"AIF": "AIFF", "OGA": "OGG"}
COMMON_FORMATS = ("WAV", "FLAC", "OGG", "MP3", "AIFF")  # listed first when an extension is unknown


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a render. A BaseException like KeyboardInterrupt, so nothing on
    the way catches it (the engine catches Exception from models) and the render's cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass(frozen=True)
class RenderResult:
    frames: int
    sample_rate: int
    channels: int
    latency_samples: int  # removed from the output
    dropouts: int
    faults: int = 0  # processor calls that raised or returned non-finite samples (rendered dry)
    bad_input: int = 0  # non-finite input samples replaced by silence
    last_error: str = ""


def render_file(
    in_path: str | Path,
    out_path: str | Path,
    make_processor: Callable[[], Processor],
    params: EngineParams | None = None,
    blocksize: int = 1024,
    stereo_mode: str = "mid",
    progress: bool = True,
) -> RenderResult:
    """Stream IN through a fresh engine block by block and write OUT aligned to IN."""
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():  # libsndfile would only say "System error"  # audit: render-input-is-file
        raise StylehostError(f"cannot read {in_path}: {_not_a_file(in_path)}")
    if out_path.is_dir():  # else os.replace would find it, after the whole render  # audit: render-out-is-folder
        raise StylehostError(f"cannot write {out_path}: it is a folder")
    # audit: render-out-not-regular
    if out_path.exists() and not out_path.is_file():  # a FIFO or a device: never replaced by a file
        raise StylehostError(f"cannot write {out_path}: it exists and is not a regular file")
    fmt = _container(out_path)
    if not out_path.parent.is_dir():  # audit: render-out-folder
        raise StylehostError(f"cannot write {out_path}: the folder {out_path.parent} does not exist")
    try:
        info = sf.info(str(in_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:  # audit: render-libsndfile-errors-wrapped
        raise StylehostError(f"cannot read {in_path}: {exc}") from exc
    frames, rate, channels = info.frames, info.samplerate, info.channels
    if frames <= 0:  # audit: render-zero-frames
        raise StylehostError(f"cannot render {in_path}: it holds no audio (0 frames)")
    config = EngineConfig(
        sample_rate=rate,
        blocksize=blocksize,
        in_channels=channels,
        out_channels=channels,
        stereo_mode=stereo_mode,  # audit: render-stereo-mode
        margin_ms=0.0,  # offline the worker runs right after each block: no compute margin needed
    )
    engine = Engine(make_processor, config, params)
    shift = int(round(engine.latency.algorithmic))
    out_format = _output_format(fmt, info)
    remove_stale_temps(out_path)  # audit: render-stale-temps
    tmp = temp_path(out_path)
    try:
        # audit: render-temp-created-first
        _create(tmp, out_path)  # a folder we cannot write to is named now, not after the render
        with (
            sf.SoundFile(str(in_path)) as src,
            # audit: render-temp-write
            sf.SoundFile(str(tmp), "w", samplerate=rate, channels=channels, **out_format) as dst,
        ):
            # audit: render-stream
            _stream(engine, src, dst, frames, shift, progress and frames > PROGRESS_MIN_SECONDS * rate)
        _keep_mode(out_path, tmp)  # audit: render-keeps-mode
        os.replace(tmp, out_path)  # audit: render-replace
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StylehostError(f"render {in_path} -> {out_path} failed: {_why(exc, out_path)}") from exc
    finally:
        if tmp.exists():  # audit: render-temp-cleanup
            tmp.unlink()
    return RenderResult(frames, rate, channels, shift, engine.dropouts, engine.processor_errors + engine.bad_output,
                        engine.bad_input, engine.last_error)


def _stream(engine: Engine, src: sf.SoundFile, dst: sf.SoundFile, frames: int, shift: int, bar: bool) -> None:
    """Feed every input block (then silence for the latency tail) and keep output [shift, shift+frames)."""
    B, channels = engine.config.blocksize, src.channels
    block = np.zeros((B, channels), np.float32)
    out = np.zeros((B, channels), np.float32)
    fed = kept = skipped = 0
    progress = _progress(frames, bar)
    while kept < frames:
        n = _read_block(src, block) if fed < frames else 0  # audit: render-seek-free-reads
        block[n:] = 0.0  # past the end: silence flushes the latency tail
        fed += B
        engine.process_block(block, out)
        engine.pump()
        start = min(B, max(0, shift - skipped))
        skipped += start
        take = min(B - start, frames - kept)
        if take > 0:
            dst.write(out[start : start + take])
            kept += take
            if progress is not None:
                progress.update(take)
    if progress is not None:
        progress.close()


def _read_block(src: sf.SoundFile, block: np.ndarray) -> int:
    """Read up to len(block) frames into ``block`` (C-contiguous float32) from where the file is.

    Not SoundFile.read: after every read soundfile seeks (SEEK_SET) to the position it just reached,
    and libsndfile 1.2's MP3 decoder returns zeros after such seeks (a steady tone read in 1024-frame
    blocks is silent from frame 5120 on; one whole-file read, one seek, is right). Reading straight on
    with sf_readf_float, as a C program would, is right for every format. soundfile's own binding.
    """
    n = sf._snd.sf_readf_float(src._file, sf._ffi.from_buffer("float[]", block), len(block))
    code = sf._snd.sf_error(src._file)
    if code:
        raise sf.LibsndfileError(code, f"Error reading {src.name!r}: ")
    return int(n)


def _progress(total: int, enabled: bool):  # -> tqdm | None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", unit_scale=True, desc="render", leave=False)


def _not_a_file(path: Path) -> str:
    if path.is_dir():
        return "it is a folder"
    if path.exists():  # audit: render-fifo-input
        return "it is not a regular file (a FIFO, device or socket); save it to a file first"
    return "no such file"


def _container(out_path: Path) -> str:
    """libsndfile's format name for OUT's extension (aif and oga too), or a line naming the known ones."""
    ext = out_path.suffix.lstrip(".").upper()
    fmt = EXTENSION_ALIASES.get(ext, ext)
    writable = [f for f in sf.available_formats() if sf.default_subtype(f) is not None]  # RAW has no header
    if fmt not in writable:
        said = f"unknown extension {out_path.suffix!r}" if out_path.suffix else "no extension"
        rank = {f: i for i, f in enumerate(COMMON_FORMATS)}
        known = ", ".join(f.lower() for f in sorted(writable, key=lambda f: (rank.get(f, len(rank)), f)))
        # audit: render-known-extensions
        raise StylehostError(f"cannot write {out_path}: {said}; known extensions: {known}")
    return fmt


def _output_format(fmt: str, info: sf._SoundFileInfo) -> dict[str, str]:
    """Keep IN's subtype when OUT has the same container, else soundfile's default for OUT's extension."""
    if fmt == info.format and sf.check_format(fmt, info.subtype):  # audit: render-keeps-subtype
        return {"format": fmt, "subtype": info.subtype}
    return {"format": fmt, "subtype": sf.default_subtype(fmt)}


def temp_path(out_path: Path, pid: int | None = None) -> Path:
    """The hidden temp file beside OUT that a render with this PID writes: .NAME.tmp-PID.EXT"""
    return out_path.with_name(f".{out_path.stem}.tmp-{os.getpid() if pid is None else pid}{out_path.suffix}")


def remove_stale_temps(out_path: Path) -> list[Path]:
    """Remove OUT's temp files whose render is dead (killed with SIGKILL, power loss); return them.

    A temp whose PID is alive is kept: it may be another render of the same OUT, still running.
    """
    pattern = re.compile(re.escape(f".{out_path.stem}.tmp-") + r"(\d+)" + re.escape(out_path.suffix) + r"\Z")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(out_path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        # audit: render-stale-temps-live-kept
        if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
            try:
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    """Whether a process with this PID exists (unsure counts as alive: its temp is kept)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return True
    return True


def _create(tmp: Path, out_path: Path) -> None:
    """Create the temp file before rendering, so a folder that cannot take it fails at once, by name."""
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
    except OSError as exc:
        folder = out_path.parent
        if exc.errno in (errno.EACCES, errno.EPERM):
            why = f"the folder {folder} is not writable (permission denied)"
        elif exc.errno == errno.EROFS:
            why = f"the folder {folder} is on a read-only file system"
        elif exc.errno in DISK_FULL_ERRNOS:
            why = f"disk full: no space left in {folder}"
        else:
            why = f"cannot create a file in {folder}: {exc.strerror or exc}"
        raise StylehostError(f"cannot write {out_path}: {why}") from exc


def _keep_mode(out_path: Path, tmp: Path) -> None:
    """An existing OUT's permission bits carry over to its replacement (the temp has the umask's)."""
    try:
        mode = stat.S_IMODE(os.stat(out_path).st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _why(exc: BaseException, out_path: Path) -> str:
    """The failure in words: libsndfile reports a full disk as "System error.", so look at the disk."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:  # audit: render-disk-full-errno
        full = True
    elif isinstance(exc, sf.LibsndfileError):
        full = _free_bytes(out_path.parent) < DISK_FULL_BYTES  # audit: render-disk-full-libsndfile
    else:
        full = False
    if full:
        return (f"disk full: no space left in {out_path.parent} ({_free_bytes(out_path.parent)} bytes free); "
                f"{out_path.name} was not changed and the partial file was removed")
    return str(exc)


def _free_bytes(folder: Path) -> int:
    try:
        st = os.statvfs(folder)
    except OSError:
        return DISK_FULL_BYTES  # unknown: not called full
    return st.f_bavail * st.f_frsize


@contextmanager
def terminations_raise() -> Iterator[None]:
    """For the block, SIGTERM and SIGHUP raise Terminated (as Ctrl-C raises KeyboardInterrupt), so a
    render's cleanup runs and its temp file is removed; the previous handlers come back after. The CLI
    wraps render_file in it (the process's signal policy is the entry point's to set). Only in the main
    thread (Python runs handlers there), and only where the default action (die at once) was set: a
    signal the process ignores (SIGHUP under nohup) or handles itself stays so."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: dict[signal.Signals, signal._HANDLER] = {}

    def handler(signum: int, frame: object) -> None:
        for sig in installed:  # a second signal must not cut the cleanup short
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum)

    for sig in TERMINATING_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            installed[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in installed.items():
            signal.signal(sig, old)
