"""Level meters with meter ballistics, fed from the peaks in EngineStatus (one value per poll).

The engine reports the peak since the previous poll; the meter shows it on a dB scale, falls back at
a fixed rate (so a poll with a quiet block does not make the bar flicker) and holds the maximum for
a moment, the way a hardware peak meter does.
"""

from __future__ import annotations

import math
import time

from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

FLOOR_DB = -60.0
FALL_DB_PER_S = 24.0
HOLD_S = 1.2


def to_db(peak: float) -> float:
    return 20.0 * math.log10(max(peak, 1e-6))


class LevelMeter(QWidget):
    """Horizontal peak meter from FLOOR_DB to 0 dBFS; red when the signal reaches full scale."""

    def __init__(self, label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = label
        self.level_db = FLOOR_DB
        self.hold_db = FLOOR_DB
        self._hold_t = 0.0
        self._last_t = time.monotonic()
        self.setMinimumSize(160, 22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(f"{label} level, peak dBFS (-60 to 0); the thin line holds the recent maximum")
        self.setAccessibleName(f"{label} level meter")

    def set_peak(self, peak: float) -> None:
        """Show a new peak (linear, since the last poll) with fall-back and hold."""
        now = time.monotonic()
        dt, self._last_t = now - self._last_t, now
        fallen = self.level_db - FALL_DB_PER_S * dt
        self.level_db = max(FLOOR_DB, to_db(peak), fallen)
        if self.level_db >= self.hold_db or now - self._hold_t > HOLD_S:
            self.hold_db, self._hold_t = self.level_db, now
        self.setAccessibleDescription(f"{self.level_db:.0f} dB")
        self.update()

    def _x(self, db: float, width: float) -> float:
        return width * (min(max(db, FLOOR_DB), 0.0) - FLOOR_DB) / -FLOOR_DB

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        rect = QRectF(self.rect()).adjusted(0, 0, -1, -1)
        p.fillRect(rect, QColor("#15171c"))
        grad = QLinearGradient(rect.left(), 0, rect.right(), 0)
        grad.setColorAt(0.0, QColor("#2f9e57"))
        grad.setColorAt(0.75, QColor("#c9c13a"))  # -15 dB
        grad.setColorAt(0.95, QColor("#e05545"))  # -3 dB
        bar = QRectF(rect.left(), rect.top() + 3, self._x(self.level_db, rect.width()), rect.height() - 6)
        p.fillRect(bar, grad)
        p.setPen(QColor("#ffffff"))
        hx = rect.left() + self._x(self.hold_db, rect.width())
        if self.hold_db > FLOOR_DB:
            p.drawLine(int(hx), int(rect.top() + 2), int(hx), int(rect.bottom() - 2))
        p.setPen(QColor("#3a3f4b"))
        for db in (-48, -36, -24, -12, -6):
            x = int(rect.left() + self._x(db, rect.width()))
            p.drawLine(x, int(rect.bottom() - 4), x, int(rect.bottom()))
        p.setPen(QColor("#d0d0d0"))
        text = f"{self.label}  {self.level_db:5.1f} dB" if self.level_db > FLOOR_DB else f"{self.label}  -inf"
        p.drawText(rect.adjusted(6, 0, -6, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        p.end()
