"""Offline rendering through the live engine: blocks from a file instead of PortAudio, no sleeping.

The same Engine.process_block / Engine.pump pair that runs live runs here, so a render is what the
live engine would have played, minus the latency: the engine's output is shifted back by
round(latency.algorithmic) samples and trimmed to the input length, at the input's sample rate.
The output file is written to a temporary name beside OUT and renamed into place (atomic: a crash
never leaves half a file under OUT's name, and a failed render leaves an existing OUT as it was).
The input is read block by block, so an hours-long file needs no more memory than a short one.
Model faults do not stop a render (the engine plays those strides dry, as live); they are counted
in the result and the CLI warns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from diffusion.errors import StylehostError
from realtime.engine import Engine, EngineConfig
from realtime.params import EngineParams
from realtime.processor import Processor

PROGRESS_MIN_SECONDS = 20.0  # shorter files render faster than a progress bar is worth


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
    if not in_path.is_file():  # libsndfile would only say "System error"
        raise StylehostError(f"cannot read {in_path}: {'it is a folder' if in_path.is_dir() else 'no such file'}")
    if not out_path.parent.is_dir():
        raise StylehostError(f"cannot write {out_path}: the folder {out_path.parent} does not exist")
    try:
        info = sf.info(str(in_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StylehostError(f"cannot read {in_path}: {exc}") from exc
    frames, rate, channels = info.frames, info.samplerate, info.channels
    if frames <= 0:
        raise StylehostError(f"cannot render {in_path}: it holds no audio (0 frames)")
    config = EngineConfig(
        sample_rate=rate,
        blocksize=blocksize,
        in_channels=channels,
        out_channels=channels,
        stereo_mode=stereo_mode,
        margin_ms=0.0,  # offline the worker runs right after each block: no compute margin needed
    )
    engine = Engine(make_processor, config, params)
    shift = int(round(engine.latency.algorithmic))
    out_format = _output_format(out_path, info)
    tmp = out_path.with_name(f".{out_path.stem}.tmp-{os.getpid()}{out_path.suffix}")
    try:
        with (
            sf.SoundFile(str(in_path)) as src,
            sf.SoundFile(str(tmp), "w", samplerate=rate, channels=channels, **out_format) as dst,
        ):
            _stream(engine, src, dst, frames, shift, progress and frames > PROGRESS_MIN_SECONDS * rate)
        os.replace(tmp, out_path)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise StylehostError(f"render {in_path} -> {out_path} failed: {exc}") from exc
    finally:
        if tmp.exists():
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
        n = src.read(B, dtype="float32", always_2d=True, out=block) if fed < frames else np.zeros((0, channels))
        block[len(n) :] = 0.0  # past the end: silence flushes the latency tail
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


def _progress(total: int, enabled: bool):  # -> tqdm | None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", unit_scale=True, desc="render", leave=False)


def _output_format(out_path: Path, info: sf._SoundFileInfo) -> dict[str, str]:
    """Keep IN's subtype when OUT has the same container, else soundfile's default for OUT's extension."""
    ext = out_path.suffix.lstrip(".").upper()
    formats = sf.available_formats()
    fmt = {"AIF": "AIFF", "OGA": "OGG"}.get(ext, ext)
    if fmt not in formats:
        raise StylehostError(f"cannot write {out_path.name!r}: unknown extension; use one of wav, flac, ogg, aiff")
    if fmt == info.format and sf.check_format(fmt, info.subtype):
        return {"format": fmt, "subtype": info.subtype}
    return {"format": fmt, "subtype": sf.default_subtype(fmt)}
