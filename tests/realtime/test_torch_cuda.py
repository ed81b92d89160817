"""The torch-cuda backend: one clear line where it cannot run (no GPU, a CPU build of torch), torch never
imported to find that out, and its static-buffer path (run on the CPU, as the GPU check's dry run does)
equal to ONNX Runtime within the parity tolerances, reusing its buffers and bounded in what it keeps."""

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
from export.tensorrt import FP16_TOLERANCE, parity_inputs
from realtime.backends import torch_cuda
from realtime.backends.choose import open_backend
from realtime.backends.parity import compare
from realtime.backends.torch_cuda import MAX_SHAPES, TorchCudaBackend
from realtime.model_processor import ModelProcessor
from tests.export.tiny import tiny_bundle

REPO = Path(__file__).resolve().parents[2]
needs_no_gpu = pytest.mark.skipif(gpu_present() is None, reason="checks the clean failures of a machine without a GPU")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> B.Bundle:
    torch.set_num_threads(1)
    return tiny_bundle(tmp_path_factory.mktemp("bundles"))


@needs_no_gpu
def test_no_gpu_is_one_line_and_loads_no_torch(bundle: B.Bundle) -> None:
    code = ("import sys\nfrom export.bundle import load_bundle\nfrom realtime.backends.choose import open_backend\n"
            "from diffusion.errors import StylehostError\n"
            f"b = load_bundle({str(bundle.path)!r})\n"
            "try:\n    open_backend(b, 'torch-cuda')\nexcept StylehostError as e:\n    print(e)\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    message, loaded = out.stdout.strip().splitlines()
    assert message.startswith("backend torch-cuda: no NVIDIA GPU") and message.endswith("use --backend cpu")
    assert loaded == "False"  # auto on a CPU machine tries torch-cuda without paying torch's import


def test_a_cpu_build_of_torch_on_a_gpu_machine_says_what_to_install(bundle: B.Bundle,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The one thing mocked is the GPU's presence; this torch really is a CPU build."""
    if torch.cuda.is_available():
        pytest.skip("this torch can use a GPU")
    monkeypatch.setattr(torch_cuda, "gpu_present", lambda: None)
    with pytest.raises(StylehostError, match=r"cannot use the GPU .*download.pytorch.org.*--backend cpu") as info:
        open_backend(bundle, "torch-cuda")
    assert "\n" not in str(info.value) and torch.__version__ in str(info.value)


def test_precision_is_checked_before_anything_loads(bundle: B.Bundle) -> None:
    with pytest.raises(StylehostError, match="int8 runs on the CPU backend only"):
        open_backend(bundle, "torch-cuda", precision="int8")
    with pytest.raises(StylehostError, match="fp16 runs on --backend torch-cuda only"):
        open_backend(bundle, "cpu", precision="fp16")
    with pytest.raises(StylehostError, match="no model.pt"):
        TorchCudaBackend(tiny_bundle(bundle.path.parent / "lean", torch_weights=False), device="cpu")


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_static_buffer_path_matches_onnx_runtime(bundle: B.Bundle, precision: str) -> None:
    backend = TorchCudaBackend(bundle, precision=precision, device="cpu")
    report = compare(open_backend(bundle, "cpu", precision="fp32"), backend, bundle)  # raises beyond tolerance
    if precision == "fp32":
        assert backend.precision == "fp32" and report["denoiser"]["max_abs"] < 1e-4
    else:  # auto measured fp16 against fp32 and kept it only within the tolerance TensorRT's fp16 meets
        assert backend.parity_fp16 is not None
        kept = all(backend.parity_fp16[k] <= FP16_TOLERANCE[k] for k in FP16_TOLERANCE)
        assert backend.precision == ("fp16" if kept else "fp32") and f"fp16 {'kept' if kept else 'refused'}" in \
            backend.description


def test_fp16_is_refused_where_it_does_not_match(bundle: B.Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_cuda, "FP16_TOLERANCE", {"max_abs": 0.0, "mean_abs": 0.0})
    backend = TorchCudaBackend(bundle, precision="auto", device="cpu")
    assert backend.precision == "fp32" and "fp16 refused" in backend.description
    assert TorchCudaBackend(bundle, precision="fp16", device="cpu").precision == "fp16"  # asked for: kept


def test_buffers_are_reused_per_shape_and_bounded(bundle: B.Bundle) -> None:
    backend = TorchCudaBackend(bundle, precision="fp32", device="cpu")
    reference = open_backend(bundle, "cpu", precision="fp32")
    feeds = parity_inputs(bundle)["denoiser"]
    first = backend.run("denoiser", *feeds)
    again = backend.run("denoiser", *(2.0 * f if i == 0 else f for i, f in enumerate(feeds)))
    assert again is first and len(backend._captured) == 1  # the same host buffer, refilled: no per-call array
    np.testing.assert_allclose(again, reference.run("denoiser", 2.0 * feeds[0], *feeds[1:]), atol=1e-4)
    for batch in range(1, MAX_SHAPES + 3):  # eval sweeping batch sizes: the oldest captures are freed
        many = tuple(np.repeat(f, batch, axis=0) for f in feeds)
        np.testing.assert_allclose(backend.run("denoiser", *many), reference.run("denoiser", *many), atol=1e-4)
    assert len(backend._captured) <= MAX_SHAPES


def test_processor_streams_the_same_through_it(bundle: B.Bundle) -> None:
    stride = ModelProcessor(bundle, open_backend(bundle, "cpu")).stride
    audio = (0.1 * np.random.default_rng(1).standard_normal(stride * 12)).astype(np.float32)
    outs = []
    for backend in (open_backend(bundle, "cpu", precision="fp32"), TorchCudaBackend(bundle, "fp32", device="cpu")):
        proc = ModelProcessor(bundle, backend)
        proc.set_params(strength=0.7, steps=2)
        window = np.zeros(bundle.spectrogram.num_samples(bundle.window), np.float32)
        chunks = []
        for k in range(12):
            window = np.concatenate([window[stride:], audio[k * stride:(k + 1) * stride]])
            out = np.zeros(stride, np.float32)
            proc.process(window, out)
            chunks.append(out)
        outs.append(np.concatenate(chunks))
    assert np.abs(outs[0]).max() > 0
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-3)
