"""Is there an NVIDIA GPU here? One cheap answer for both sides of the bundle.

Its own module because two layers ask: export/tensorrt.py before it builds engines, and the ONNX Runtime
backends (realtime/backends/ort.py) before they start a GPU provider. Keeping it here, under ``export``,
lets ``realtime`` import it while ``export`` still imports nothing from ``realtime`` (data flows one way).
Standard library only: no CUDA call, no driver library loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def gpu_present() -> str | None:
    """None if an NVIDIA GPU looks present, else why not (cheap: no CUDA call)."""
    if Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi"):
        return None
    return "no NVIDIA GPU on this machine (no /dev/nvidiactl, no nvidia-smi)"
