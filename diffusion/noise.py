"""Frame-anchored Gaussian noise: numpy only, so the runtime can draw it without torch.

The live engine slides a window of T frames along the stream and denoises it again and again. If each
call drew fresh noise, frames shared by two overlapping windows would be denoised from different
starting points and the output would flicker at every stride. Instead, the noise of one frame is a
pure function of ``(seed, absolute frame index, sampler step)``: a counter-based generator (in the
manner of Philox, Salmon et al. 2011) hashes that counter, together with the mel bin, into two
uniforms and a Box-Muller transform turns them into a standard normal. Two windows that overlap
therefore draw bit-identical noise for the frames they share, whatever their start.

Worked example: window A starts at frame 100 and window B at frame 104 (stride 4, T = 32); column
``j`` of B equals column ``j + 4`` of A for ``j in 0..27``.
"""

from __future__ import annotations

import numpy as np

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_K_FRAME = np.uint64(0xD1B54A32D192ED03)
_K_STEP = np.uint64(0x8CB92BA72F3D8DD7)
_K_BIN = np.uint64(0xA0761D6478BD642F)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a bijective 64-bit mix with full avalanche."""
    x = (x + _GOLDEN) & _MASK
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
    return x ^ (x >> np.uint64(31))


def _to_u64(value: int) -> np.ndarray:
    """Any Python int (negative too) as a uint64 array scalar, two's complement, no overflow warning."""
    return np.array([value & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)


def frame_noise(seed: int, start_frame: int, num_frames: int, n_mels: int, step: int = 0) -> np.ndarray:
    """Standard normal noise of shape (n_mels, num_frames), float32; column j depends only on
    ``(seed, start_frame + j, step)``.

    ``step`` separates the draws of samplers that inject fresh noise at every step (step 0 is the
    initial noise of every sampler).
    """
    with np.errstate(over="ignore"):
        frames = (np.arange(num_frames, dtype=np.int64) + np.int64(start_frame)).astype(np.uint64)
        bins = np.arange(n_mels, dtype=np.uint64)
        key = _splitmix64(_to_u64(seed))[0] ^ _splitmix64(_to_u64(step) * _K_STEP)[0]
        counter = (frames[None, :] * _K_FRAME) ^ (bins[:, None] * _K_BIN) ^ key
        a = _splitmix64(counter)
        b = _splitmix64(a ^ _K_STEP)
    # 53-bit uniforms in (0, 1]; u1 > 0 keeps the log finite.
    scale = 1.0 / float(1 << 53)
    u1 = ((a >> np.uint64(11)).astype(np.float64) + 1.0) * scale
    u2 = (b >> np.uint64(11)).astype(np.float64) * scale
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def batch_frame_noise(
    seed: int, start_frames: list[int] | np.ndarray, num_frames: int, n_mels: int, step: int = 0
) -> np.ndarray:
    """(B, 1, n_mels, num_frames) noise for a batch of windows, one start frame each."""
    return np.stack([frame_noise(seed, int(s), num_frames, n_mels, step)[None] for s in start_frames])


class FrameNoiseBlocks:
    """``frame_noise`` of one (seed, step) served from blocks of ``block`` frames drawn ahead.

    Why: a draw costs about 160 us whatever its size up to a few frames (numpy's per-operation overhead on
    tiny arrays) and 280 us for 32 frames, so a live processor that needs 1-2 new frames per call pays the fixed
    cost once per block instead of once per call. The values are ``frame_noise``'s, bit for bit: a column
    depends only on its frame. ``take`` reads frames forward in time as a stream does; any other start
    redraws the block from there.
    """

    def __init__(self, seed: int, n_mels: int, step: int = 0, block: int = 32) -> None:
        self.seed, self.n_mels, self.step, self.block = seed, n_mels, step, block
        self._buf = np.zeros((n_mels, block), np.float32)
        self._start: int | None = None

    def take(self, start: int, out: np.ndarray) -> None:
        """Noise of frames [start, start + n) into ``out`` (n_mels, n), n <= block."""
        n = out.shape[-1]
        if n > self.block:
            raise ValueError(f"FrameNoiseBlocks serves at most {self.block} frames at a time, asked for {n}")
        if self._start is None or not self._start <= start <= self._start + self.block - n:
            self._buf[:] = frame_noise(self.seed, start, self.block, self.n_mels, self.step)
            self._start = start
        off = start - self._start
        out[...] = self._buf[:, off : off + n]
