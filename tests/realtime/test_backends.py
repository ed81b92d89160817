"""Backends: `auto` says what it picked and why; GPU backends fail here with one line saying what is
missing and how to install it (never a stack trace); the torch backend needs the bundle's weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.errors import StylehostError
from export import bundle as B
from export.gpu import gpu_present
from realtime.backends import ort as ort_backend
from realtime.backends.choose import choose_backend, open_backend
from stylehost.cli import main
from tests.export.tiny import tiny_bundle

NO_GPU = gpu_present() is not None
needs_no_gpu = pytest.mark.skipif(not NO_GPU, reason="checks the clean failures of a machine without a GPU")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> B.Bundle:
    torch.set_num_threads(1)
    return tiny_bundle(tmp_path_factory.mktemp("bundles"))


def test_auto_picks_the_fastest_available_and_says_why(bundle: B.Bundle) -> None:
    said: list[str] = []
    backend = choose_backend(bundle, "auto", say=said.append)
    assert len(said) == 1 and backend.name in said[0]
    if NO_GPU:
        assert backend.name == "cpu"
        assert "skipped tensorrt: native TensorRT" in said[0] and "cuda:" in said[0]


def test_cpu_backend_runs_every_graph_with_explicit_threads(bundle: B.Bundle) -> None:
    backend = open_backend(bundle, "cpu", threads=1)
    assert "1 thread" in backend.description
    out = backend.run("frontend", np.zeros((2, 3360), np.float32))
    assert out.shape == (2, 64, 32) and np.allclose(out, np.log(1e-5))


@needs_no_gpu
@pytest.mark.parametrize("name,missing", [
    ("cuda", "has no CUDAExecutionProvider"),
    ("ort-tensorrt", "has no TensorrtExecutionProvider"),
    ("tensorrt", "'tensorrt' is not installed"),
])
def test_gpu_backends_fail_with_one_clear_line(bundle: B.Bundle, name: str, missing: str) -> None:
    with pytest.raises(StylehostError, match=missing) as info:
        open_backend(bundle, name)
    message = str(info.value)
    assert "\n" not in message and "pip install" in message and "stylehost[" in message


@needs_no_gpu
def test_onnxruntime_silent_cpu_fallback_is_reported(bundle: B.Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime-gpu without the CUDA libraries lists CUDA but runs on CPU: say so, do not pretend."""
    import onnxruntime

    real = onnxruntime.get_available_providers
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])
    monkeypatch.setattr(ort_backend, "gpu_present", lambda: None)  # where OrtBackend looks it up (from export.gpu)
    with pytest.raises(StylehostError, match="could not start CUDAExecutionProvider.*use --backend cpu"):
        open_backend(bundle, "cuda")


@needs_no_gpu
@pytest.mark.parametrize("argv", [
    ["render", "IN", "OUT", "--style", "violin", "--backend", "cuda"],
    ["render", "IN", "OUT", "--style", "violin", "--backend", "tensorrt"],
    ["export", "tensorrt"],
])
def test_cli_gpu_requests_are_one_line_errors(bundle: B.Bundle, tmp_path: Path, argv: list[str],
                                              capsys: pytest.CaptureFixture) -> None:
    argv = [str(tmp_path / a) if a in ("IN", "OUT") else a for a in argv] + ["--model", str(bundle.path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "pip install" in err


@needs_no_gpu
def test_gpu_check_script_exits_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--json", str(tmp_path / "g.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no NVIDIA GPU" in proc.stderr
    assert not (tmp_path / "g.json").exists()


def test_torch_backend_needs_the_bundle_weights(tmp_path: Path) -> None:
    lean = tiny_bundle(tmp_path, torch_weights=False)
    with pytest.raises(StylehostError, match="has no model.pt"):
        open_backend(lean, "torch")


def test_unknown_backend_name(bundle: B.Bundle) -> None:
    with pytest.raises(StylehostError, match="unknown backend 'tpu'"):
        open_backend(bundle, "tpu")


@pytest.mark.parametrize("name", ["cpu", "torch"])
def test_a_bound_call_reads_its_inputs_in_place_and_writes_its_outputs(bundle: B.Bundle, name: str) -> None:
    """Backend.bind: the ORT IOBinding (cpu) and the copying default (torch) both equal ``run``, see each
    input changed in place between calls, and write into the arrays they were given."""
    backend = open_backend(bundle, name, threads=1)
    rng = np.random.default_rng(0)
    audio = np.zeros((1, 3360), np.float32)
    logmel = np.full((1, 64, 32), np.nan, np.float32)
    call = backend.bind("frontend", (audio,), (logmel,))
    for _ in range(3):
        audio[:] = 0.1 * rng.standard_normal(audio.shape)  # in place: the bound memory
        call()
        np.testing.assert_allclose(logmel, backend.run("frontend", audio.copy()), atol=1e-6, rtol=0)
    x = rng.standard_normal((1, 1, 64, 32)).astype(np.float32)
    feeds = (x, np.ones(1, np.float32), x.copy(), np.zeros((1, bundle.style_table.shape[1]), np.float32))
    x0 = np.zeros_like(x)
    backend.bind("denoiser", feeds, (x0,))()
    np.testing.assert_allclose(x0, backend.run("denoiser", *feeds), atol=1e-5, rtol=0)


def test_a_bound_call_refuses_arrays_onnx_runtime_cannot_use_in_place(bundle: B.Bundle) -> None:
    backend = open_backend(bundle, "cpu", threads=1)
    audio, logmel = np.zeros((1, 3360), np.float32), np.zeros((1, 64, 32), np.float32)
    with pytest.raises(StylehostError, match="C-contiguous float32"):
        backend.bind("frontend", (audio.astype(np.float64),), (logmel,))
    with pytest.raises(StylehostError, match="C-contiguous float32"):
        backend.bind("frontend", (np.zeros((1, 6720), np.float32)[:, ::2],), (logmel,))
    with pytest.raises(StylehostError, match="takes 1 inputs"):
        backend.bind("frontend", (audio, audio), (logmel,))
