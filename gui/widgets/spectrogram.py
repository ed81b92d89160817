"""A scrolling mel-frequency spectrogram of samples read from an engine tap.

``RollingSpectrogram`` (numpy only) turns the new samples of each poll into STFT columns; the
widget scrolls them into an image. Everything runs on the GUI thread from samples the tap already
copied out, so a slow repaint only makes the picture skip ahead (the tap drops what it missed);
it never reaches the audio path.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

N_FFT = 1024
ROWS = 96  # mel-spaced frequency rows: musical resolution without repeating FFT bins at the bottom
F_LOW = 50.0
F_HIGH = 12000.0  # where instrument timbre lives; above it a model adds little
DB_RANGE = (-84.0, -6.0)  # colour map span, dB re a full-scale sine


def _colormap() -> np.ndarray:
    """256 ARGB colours from dark blue through magenta and orange to pale yellow (magma-like)."""
    stops = np.array(
        [[0.0, 8, 8, 20], [0.3, 70, 20, 110], [0.55, 180, 50, 110], [0.8, 250, 140, 60], [1.0, 252, 250, 190]]
    )
    t = np.linspace(0.0, 1.0, 256)
    rgb = [np.interp(t, stops[:, 0], stops[:, c]).astype(np.uint32) for c in (1, 2, 3)]
    return (0xFF000000 | (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]).astype(np.uint32)


COLORMAP = _colormap()


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


class RollingSpectrogram:
    """Incremental STFT (hop N_FFT/2, Hann) pooled into ROWS mel-spaced rows, levels 0..255."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.hop = N_FFT // 2
        self._window = np.hanning(N_FFT).astype(np.float32)
        self._pending = np.zeros(0, np.float32)
        freqs = np.fft.rfftfreq(N_FFT, 1.0 / sample_rate)
        f_high = min(F_HIGH, sample_rate / 2)
        edges = _mel_to_hz(np.linspace(_hz_to_mel(F_LOW), _hz_to_mel(f_high), ROWS + 1))
        # Each row takes the loudest bin in its band (at least the nearest bin, for narrow low bands).
        lo = np.searchsorted(freqs, edges[:-1])
        hi = np.maximum(np.searchsorted(freqs, edges[1:]), lo + 1)
        self._bands = list(zip(lo.tolist(), np.minimum(hi, len(freqs)).tolist(), strict=True))
        self._scale = 2.0 / self._window.sum()  # a full-scale sine reads 0 dB

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; return the finished columns as uint8 levels (ROWS, columns), low rows first."""
        data = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n_cols = max(0, (len(data) - N_FFT) // self.hop + 1)
        if n_cols == 0:
            self._pending = data
            return np.zeros((ROWS, 0), np.uint8)
        idx = np.arange(N_FFT)[None, :] + self.hop * np.arange(n_cols)[:, None]
        mag = np.abs(np.fft.rfft(data[idx] * self._window, axis=1)) * self._scale
        rows = np.stack([mag[:, lo:hi].max(axis=1) for lo, hi in self._bands], axis=0)
        db = 20.0 * np.log10(np.maximum(rows, 1e-9))
        lo_db, hi_db = DB_RANGE
        self._pending = data[n_cols * self.hop :]
        return np.clip((db - lo_db) * 255.0 / (hi_db - lo_db), 0, 255).astype(np.uint8)


class SpectrogramView(QWidget):
    """Scrolling image of RollingSpectrogram columns, newest on the right; titled in a corner."""

    def __init__(self, title: str, columns: int = 400, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self._pixels = np.full((ROWS, columns), COLORMAP[0], np.uint32)
        self._spec: RollingSpectrogram | None = None
        self.columns_added = 0
        self.setMinimumSize(300, 140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setToolTip(f"{title} spectrogram: time scrolls left, 50 Hz at the bottom to 12 kHz at the top (mel scale)")
        self.setAccessibleName(f"{title} spectrogram")

    def set_sample_rate(self, sample_rate: int) -> None:
        if self._spec is None or self._spec.sample_rate != sample_rate:
            self._spec = RollingSpectrogram(sample_rate)

    def push(self, samples: np.ndarray) -> None:
        """Scroll in the columns the new samples complete."""
        if self._spec is None or len(samples) == 0:
            return
        cols = self._spec.push(samples)
        k = min(cols.shape[1], self._pixels.shape[1])
        if k == 0:
            return
        self._pixels[:, :-k] = self._pixels[:, k:]
        self._pixels[:, -k:] = COLORMAP[cols[::-1, -k:]]  # image row 0 is the top: highest frequency
        self.columns_added += cols.shape[1]
        self.update()

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        h, w = self._pixels.shape
        # A view of _pixels, no copy (the stubs only admit bytes; PyQt takes any buffer).
        image = QImage(self._pixels.data, w, h, 4 * w, QImage.Format.Format_RGB32)  # type: ignore[call-overload]
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.drawImage(QRectF(self.rect()), image)
        p.setPen(QColor("#f0f0f0"))
        p.drawText(
            self.rect().adjusted(8, 6, -8, -6), Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft, self.title
        )
        p.setPen(QColor("#b0b0b0"))
        top, bottom = Qt.AlignmentFlag.AlignTop, Qt.AlignmentFlag.AlignBottom
        labels = ((f"{F_HIGH / 1000:g} kHz", top), (f"{F_LOW:g} Hz", bottom))
        for label, align in labels:
            p.drawText(self.rect().adjusted(8, 6, -8, -6), align | Qt.AlignmentFlag.AlignRight, label)
        p.end()
