"""The 2D style-mix pad: styles sit on a circle, the puck's position blends them.

Blending is inverse-distance weighting (Shepard, power 3): on a style's anchor the mix is that style
alone, in the centre all styles weigh the same, and in between the nearest styles dominate smoothly,
so dragging never jumps. Weights under 1% are dropped so the engine sees short mixes.
"""

from __future__ import annotations

import math

from PyQt6.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PyQt6.QtWidgets import QSizePolicy, QWidget

from diffusion.styles import STYLE_NAMES

ANCHOR_RADIUS = 0.8  # anchors on this circle in pad coordinates [-1, 1]^2, y up
POWER = 3.0
MIN_WEIGHT = 0.01
KEY_STEP = 0.05  # arrow-key move in pad units


def anchors(names: tuple[str, ...] = STYLE_NAMES) -> dict[str, tuple[float, float]]:
    """Anchor of each style, clockwise from the top."""
    n = len(names)
    return {
        name: (ANCHOR_RADIUS * math.sin(2 * math.pi * i / n), ANCHOR_RADIUS * math.cos(2 * math.pi * i / n))
        for i, name in enumerate(names)
    }


def pad_weights(x: float, y: float, names: tuple[str, ...] = STYLE_NAMES) -> tuple[tuple[str, float], ...]:
    """Normalised ((style, weight), ...) for the puck at (x, y), heaviest first."""
    raw: dict[str, float] = {}
    for name, (ax, ay) in anchors(names).items():
        d = math.hypot(x - ax, y - ay)
        if d < 1e-6:
            return ((name, 1.0),)
        raw[name] = d**-POWER
    total = sum(raw.values())
    kept = {k: w / total for k, w in raw.items() if w / total >= MIN_WEIGHT}
    total = sum(kept.values())
    return tuple(sorted(((k, w / total) for k, w in kept.items()), key=lambda kw: -kw[1]))


class MixPad(QWidget):
    """Drag (or arrow-key) the puck to blend styles; emits ``mixChanged`` with the new style_mix."""

    mixChanged = pyqtSignal(tuple)

    def __init__(self, parent: QWidget | None = None, names: tuple[str, ...] = STYLE_NAMES) -> None:
        super().__init__(parent)
        self._names = tuple(names)
        self._anchors = anchors(self._names)
        self._pos = self._anchors[self._names[0]]
        self._mix = pad_weights(*self._pos, self._names)
        self.setMinimumSize(220, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAccessibleName("Style mix pad")
        self.setToolTip(
            "Style mix: drag the puck (or focus and use the arrow keys) to blend styles live.\n"
            "On a style's dot it is that style alone; in the centre all styles are mixed equally."
        )

    # ---- model ---------------------------------------------------------------------------------

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def set_styles(self, names: tuple[str, ...], emit: bool = True) -> None:
        """Put the chosen model's styles on the circle (a bundle may have styles of its own). The puck keeps
        its place when every style of its mix is still there, else it moves onto the first style."""
        if not names:
            return
        self._names = tuple(names)
        self._anchors = anchors(self._names)
        if not {name for name, _ in self._mix} <= set(self._names):
            self._pos = self._anchors[self._names[0]]
        self.set_position(*self._pos, emit=emit)

    @property
    def position(self) -> tuple[float, float]:
        return self._pos

    @property
    def mix(self) -> tuple[tuple[str, float], ...]:
        return self._mix

    def set_position(self, x: float, y: float, emit: bool = True) -> None:
        """Move the puck (clamped to the unit disc) and recompute the mix."""
        r = math.hypot(x, y)
        if r > 1.0:
            x, y = x / r, y / r
        self._pos = (x, y)
        self._mix = pad_weights(x, y, self._names)
        self.update()
        if emit:
            self.mixChanged.emit(self._mix)

    def select_style(self, name: str, emit: bool = True) -> None:
        """Jump onto a style's anchor: that style alone (a name the pad does not show is ignored: a preset
        may name a built-in style the chosen model lacks; the session refuses it when it runs)."""
        if name in self._anchors:
            self.set_position(*self._anchors[name], emit=emit)

    # ---- geometry ------------------------------------------------------------------------------

    def _square(self) -> QRectF:
        side = min(self.width(), self.height()) - 8
        return QRectF((self.width() - side) / 2, (self.height() - side) / 2, side, side)

    def to_widget(self, x: float, y: float) -> QPointF:
        sq = self._square()
        return QPointF(sq.center().x() + x * sq.width() / 2, sq.center().y() - y * sq.height() / 2)

    def from_widget(self, p: QPointF) -> tuple[float, float]:
        sq = self._square()
        return (p.x() - sq.center().x()) / (sq.width() / 2), (sq.center().y() - p.y()) / (sq.height() / 2)

    # ---- events --------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and event.button() == Qt.MouseButton.LeftButton:
            self.set_position(*self.from_widget(event.position()))

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self.set_position(*self.from_widget(event.position()))

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        moves = {
            Qt.Key.Key_Left: (-KEY_STEP, 0.0),
            Qt.Key.Key_Right: (KEY_STEP, 0.0),
            Qt.Key.Key_Up: (0.0, KEY_STEP),
            Qt.Key.Key_Down: (0.0, -KEY_STEP),
        }
        if event is not None and event.key() in moves:
            dx, dy = moves[Qt.Key(event.key())]
            self.set_position(self._pos[0] + dx, self._pos[1] + dy)
        elif event is not None and event.key() == Qt.Key.Key_Home:
            self.set_position(0.0, 0.0)
        else:
            super().keyPressEvent(event)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        sq = self._square()
        p.setPen(QPen(QColor("#3a3f4b"), 1))
        p.setBrush(QColor("#1e2129"))
        p.drawEllipse(sq)
        p.setPen(QPen(QColor("#2c313c"), 1, Qt.PenStyle.DashLine))
        centre = self.to_widget(0.0, 0.0)
        p.drawEllipse(centre, sq.width() * ANCHOR_RADIUS / 2, sq.height() * ANCHOR_RADIUS / 2)
        weights = dict(self._mix)
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        p.setFont(font)
        for name, (ax, ay) in self._anchors.items():
            pt = self.to_widget(ax, ay)
            w = weights.get(name, 0.0)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(90 + int(140 * w), 140 + int(80 * w), 230, 255))
            radius = 5 + 9 * w
            p.drawEllipse(pt, radius, radius)
            label = f"{name} {round(100 * w)}%" if w >= MIN_WEIGHT else name
            p.setPen(QColor("#e6e6e6") if w >= MIN_WEIGHT else QColor("#8a8f99"))
            box = QRectF(pt.x() - 60, pt.y() + (12 if ay < 0 else -28), 120, 16)
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, label)
        puck = self.to_widget(*self._pos)
        p.setPen(QPen(QColor("#ffb347"), 2))
        for name, w in self._mix:
            p.setOpacity(min(1.0, 0.25 + w))
            p.drawLine(puck, self.to_widget(*self._anchors[name]))
        p.setOpacity(1.0)
        p.setBrush(QColor("#ffb347"))
        p.setPen(QPen(QColor("#ffffff") if self.hasFocus() else QColor("#7a5a2a"), 2))
        p.drawEllipse(puck, 9, 9)
        p.end()
