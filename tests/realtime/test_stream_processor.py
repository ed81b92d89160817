"""Streaming (causal) bundles: export with the state in and out of the graph, the processor that plays them
S frames per call, and its equality with the one-pass offline reference (issue 17)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion.causal import CausalDenoiser
from diffusion.causal_stream import causal_stream_audio
from diffusion.checkpoint import load_denoiser, save_model
from diffusion.errors import StylehostError
from diffusion.excitation import ExcitationConfig
from diffusion.guide import load_stage
from diffusion.model import CausalConfig, ModelConfig
from export import bundle as B
from export.streaming import export_streaming_bundle
from realtime.backends.choose import open_backend
from realtime.stream_processor import StreamingProcessor, make_processor
from tests.diffusion.test_guide_bundle import MIX, TINY_GUIDE, tiny_stage_file
from tests.export.tiny import TINY
from tests.realtime.test_processor import stream


def tiny_causal(path: Path, lookahead: int = 1, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    d = CausalDenoiser(ModelConfig(**TINY, window=16, lookahead=lookahead, emit=1,
                                   causal=CausalConfig(dilations=(1, 2))))
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(path, d, {"kind": "student", "sampler": "consistency"})
    return path


@pytest.fixture(scope="module")
def causal_bundle(tmp_path_factory: pytest.TempPathFactory) -> B.Bundle:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("streaming")
    return export_streaming_bundle(tiny_causal(root / "c.pt"), root / "b", tiny_stage_file(root / "g.pt"), frames=2)


def vibrato(seconds: float, hz: float = 330.0) -> np.ndarray:
    t = np.arange(int(24000 * seconds)) / 24000
    phase = 2 * np.pi * np.cumsum(hz * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))) / 24000
    return (0.3 * np.sin(phase) + 0.02 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


def reference(proc: StreamingProcessor, x: np.ndarray, length: int, **kwargs: object) -> np.ndarray:
    """The one-pass offline reference of ``x``, aligned as ``proc`` emits it and cut to ``length`` samples."""
    d = load_denoiser(proc.bundle.torch_weights)
    assert isinstance(d, CausalDenoiser)
    stage = load_stage(proc.bundle.path / "guide.pt", steps=1)
    lead = proc.frame_origin * proc.hop
    clip = np.concatenate([np.zeros(lead, np.float32), x])
    first = 1 - proc._k + proc.frame_origin  # the first source frame the stream feeds
    ref = causal_stream_audio(d, stage, clip, d.style_vector(MIX), emit=proc.S, first_frame=first,
                              steps=proc.steps, strength=proc.strength, **kwargs)
    return np.concatenate([np.zeros(proc.delay_samples - lead, np.float32), ref])[:length]


def test_the_bundle_declares_its_state_and_framing(causal_bundle: B.Bundle) -> None:
    st = causal_bundle.streaming
    assert st is not None and st["kind"] == "causal" and st["causal_lookahead"] == 1
    before, after = causal_bundle.resynth_context
    assert causal_bundle.lookahead == 1 + after and causal_bundle.emit == 2
    assert causal_bundle.window == causal_bundle.lookahead + 2 + before
    names = [io["name"] for io in causal_bundle.graph_io("denoiser")["inputs"]]
    cond = [e["name"] for e in st["condition"]]
    assert cond[:3] == ["c_skip", "c_out", "c_in"] and cond[3:5] == ["gain_0", "shift_0"]
    assert names == ["x", "source", *cond, *(e["name"] for e in st["state"])]  # no sigma, no style: the condition's
    assert [io["name"] for io in causal_bundle.graph_io("condition")["inputs"]] == ["sigma", "style_vec"]
    assert [io["name"] for io in causal_bundle.graph_io("condition")["outputs"]] == cond
    parity = causal_bundle.manifest["parity"]
    assert parity["denoiser"]["streamed_real"] <= 1e-4  # ORT streamed call by call == torch in one pass


@pytest.mark.parametrize("steps,strength", [(1, 1.0), (2, 0.7)])
def test_the_processor_equals_the_one_pass_reference(causal_bundle: B.Bundle, steps: int, strength: float) -> None:
    proc = make_processor(causal_bundle, open_backend(causal_bundle, "cpu"))
    assert isinstance(proc, StreamingProcessor)
    proc.set_params(style_mix=MIX, strength=strength, steps=steps)
    x = vibrato(0.8)
    y = stream(proc, x)
    want = reference(proc, x, len(y))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)
    # and a reset stream plays the same again (the state is the processor's, not left over)
    proc.reset()
    np.testing.assert_allclose(stream(proc, x), y, atol=1e-6, rtol=0)


def test_the_form_without_a_condition_graph_plays_the_same(causal_bundle: B.Bundle, tmp_path: Path) -> None:
    """``condition_graph=False`` (sigma and style as denoiser inputs, the form of earlier bundles) still plays,
    equal to the conditioned bundle through a style change; the conditioned one runs its condition graph only
    when the style or the schedule changes, not per call."""
    inline = export_streaming_bundle(causal_bundle.torch_weights, tmp_path / "inline", causal_bundle.path / "guide.pt",
                                     frames=2, condition_graph=False)
    assert not inline.has_graph("condition") and "condition" not in inline.streaming
    assert [io["name"] for io in inline.graph_io("denoiser")["inputs"]][:4] == ["x", "sigma", "source", "style_vec"]
    backend = open_backend(causal_bundle, "cpu")
    runs: list[str] = []
    bind = backend.bind

    def spy(graph: str, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Callable[[], None]:
        call = bind(graph, inputs, outputs)

        def counted() -> None:
            runs.append(graph)
            call()
        return counted

    backend.bind = spy  # type: ignore[method-assign]
    x = vibrato(0.8)
    outs = []
    for proc in (StreamingProcessor(causal_bundle, backend), StreamingProcessor(inline, open_backend(inline, "cpu"))):
        proc.set_params(style_mix=MIX, strength=0.7, steps=2)
        half = stream(proc, x[: len(x) // 2])
        proc.set_params(style_mix={"flute": 1.0})  # a crossfade: the FiLM moves call by call
        outs.append(np.concatenate([half, stream(proc, x[len(x) // 2 :])]))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5, rtol=0)
    calls = runs.count("denoiser") // 2  # two steps per call
    assert 0 < runs.count("condition") // 2 < calls // 2  # the first call and the crossfade's, not every call


def test_with_the_excitation_the_processor_equals_the_reference(causal_bundle: B.Bundle, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "exc"
    shutil.copytree(causal_bundle.path, folder)
    m = json.loads((folder / B.MANIFEST).read_text())
    m["excitation"] = ExcitationConfig().to_dict()
    (folder / B.MANIFEST).write_text(json.dumps(m))
    bundle = B.load_bundle(folder)
    proc = StreamingProcessor(bundle, open_backend(bundle, "cpu"))
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x = vibrato(0.8)
    y = stream(proc, x)
    want = reference(proc, x, len(y), excitation=ExcitationConfig())
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)


def test_a_stream_call_costs_the_same_late_as_early(causal_bundle: B.Bundle) -> None:
    """Each frame once: the denoiser sees S frames per call whatever the stream's age (no window re-run)."""
    backend = open_backend(causal_bundle, "cpu")
    seen: list[tuple[int, ...]] = []
    bind = backend.bind

    def spy(graph: str, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Callable[[], None]:
        call = bind(graph, inputs, outputs)

        def counted() -> None:
            if graph == "denoiser":
                seen.append(inputs[0].shape)
            call()
        return counted

    backend.bind = spy  # type: ignore[method-assign]
    proc = StreamingProcessor(causal_bundle, backend)
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    stream(proc, vibrato(0.3))
    assert seen and set(seen) == {(1, 1, causal_bundle.spectrogram.n_mels, 2)}


def test_window_bundles_and_wrong_backends_are_refused(causal_bundle: B.Bundle, tmp_path: Path) -> None:
    from tests.export.tiny import tiny_bundle

    window = tiny_bundle(tmp_path / "w")
    with pytest.raises(StylehostError, match="window bundle"):
        StreamingProcessor(window, open_backend(window, "cpu"))
    with pytest.raises(StylehostError, match="streaming bundle"):
        open_backend(causal_bundle, "torch")


def test_a_manifest_with_inconsistent_framing_is_refused(causal_bundle: B.Bundle, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "bad"
    shutil.copytree(causal_bundle.path, folder)
    m = json.loads((folder / B.MANIFEST).read_text())
    m["streaming"]["causal_lookahead"] = 0  # lookahead would no longer be the network's + the stage's
    (folder / B.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StylehostError, match="causal_lookahead"):
        B.load_bundle(folder)


@pytest.mark.parametrize("change,match", [
    (lambda m: m["graphs"].pop("condition"), "graphs.condition must have"),
    (lambda m: m["streaming"]["condition"].pop(0), "streaming.condition must be"),
    (lambda m: m["streaming"]["condition"][3]["shape"].__setitem__(0, 5), "gain_0"),  # graph != manifest
])
def test_a_condition_graph_the_manifest_does_not_match_is_refused(causal_bundle: B.Bundle, tmp_path: Path,
                                                                  change: Callable[[dict], object],
                                                                  match: str) -> None:
    import shutil

    folder = tmp_path / "bad"
    shutil.copytree(causal_bundle.path, folder)
    m = json.loads((folder / B.MANIFEST).read_text())
    change(m)
    (folder / B.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StylehostError, match=match):
        B.load_bundle(folder)


def test_render_through_the_engine_equals_the_processor_stream(causal_bundle: B.Bundle, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    """`stylehost render` plays a streaming bundle through the same engine and processor as `live`: at the model
    rate its file is the processor's stream with the latency removed (the level match off, as for window bundles)."""
    import soundfile as sf

    from realtime.commands import ModelFactory
    from realtime.params import EngineParams
    from realtime.render import render_file
    from stylehost.cli import main

    x = vibrato(0.5)
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    factory = ModelFactory(causal_bundle, open_backend(causal_bundle, "cpu"))
    params = EngineParams(style_mix=tuple(MIX.items()), strength=1.0, steps=1, match_level=False)
    render_file(tmp_path / "in.wav", tmp_path / "out.wav", factory, params=params, progress=False)
    y = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    proc = factory()
    assert isinstance(proc, StreamingProcessor)
    proc.set_params(**params.model_params())
    want = stream(proc, np.concatenate([x, np.zeros(2 * proc.window, np.float32)]))[proc.delay_samples:][: len(x)]
    np.testing.assert_allclose(y, want, atol=1e-5)
    # and the CLI picks the streaming processor for it and says its latency
    assert main(["render", str(tmp_path / "in.wav"), str(tmp_path / "cli.wav"), "--style", "violin",
                 "--model", str(causal_bundle.path), "--no-progress"]) == 0
    assert f"latency {causal_bundle.latency_samples} samples" in capsys.readouterr().err


def test_models_lists_a_streaming_bundle_with_its_latency(causal_bundle: B.Bundle,
                                                          capsys: pytest.CaptureFixture) -> None:
    from stylehost.cli import main

    assert main(["models", "--model", str(causal_bundle.path)]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if str(causal_bundle.path) in ln][0]
    assert f"latency {causal_bundle.latency_samples} samples ({causal_bundle.latency_ms:.1f} ms, streaming, 2 frames " \
           "per call)" in line


def test_the_equality_is_not_trivial(causal_bundle: B.Bundle) -> None:
    """Another seed, or the state dropped between calls, moves the output far beyond the equality's 1e-4."""
    x = vibrato(0.8)

    def played(seed: int = 0, keep_state: bool = True) -> np.ndarray:
        backend = open_backend(causal_bundle, "cpu")
        if not keep_state:
            bind = backend.bind

            def forgetful(graph: str, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]
                          ) -> Callable[[], None]:
                call = bind(graph, inputs, outputs)

                def forget() -> None:
                    call()
                    if graph == "denoiser":  # the new state comes out as zeros
                        for o in outputs[1:]:
                            o[:] = 0.0
                return forget

            backend.bind = forgetful  # type: ignore[method-assign]
        proc = StreamingProcessor(causal_bundle, backend, seed=seed)
        proc.set_params(style_mix=MIX, strength=1.0, steps=1)
        return stream(proc, x)

    y = played()
    assert np.abs(played(seed=1) - y).max() > 1e-3
    assert np.abs(played(keep_state=False) - y).max() > 1e-3


@pytest.mark.jack
def test_a_streaming_bundle_plays_live_through_jack(causal_bundle: B.Bundle, jack_server) -> None:  # noqa: ANN001
    """The live engine plays it through a real PortAudio stream: every call runs (no processor fault), the output
    is the model's (finite, not silent) and the reported latency is the bundle's plus the engine's and devices'."""
    from benchmarks.jackserver import LoopbackProbe
    from realtime.audio import LiveSession
    from realtime.commands import ModelFactory

    factory = ModelFactory(causal_bundle, open_backend(causal_bundle, "cpu"))
    with LiveSession(factory, input="system", output="system", blocksize=256) as live:
        live.engine.set_params(style_mix=(("violin", 1.0),), strength=1.0, steps=1)
        with LoopbackProbe(jack_server.name) as probe:
            probe.connect()
            rate = probe.client.samplerate
            t = np.arange(int(1.5 * rate)) / rate
            recorded = probe.play_and_record((0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32))
        engine = live.engine
        assert engine.processor_errors == 0 and engine.bad_output == 0
        assert engine.latency.processor == round(causal_bundle.latency_samples * rate / 24000)
    late = recorded[int(0.5 * rate) :]
    assert np.isfinite(late).all() and np.sqrt(np.mean(late**2)) > 1e-3


def test_a_network_without_look_ahead_cannot_feed_a_stage_on_a_lagging_excitation(tmp_path: Path) -> None:
    """The live excitation runs lag_hops behind the input: the streaming export refuses a causal network whose
    look-ahead does not cover it, by the rule the processor, eval and the window export use
    (check_stage_reach)."""
    from diffusion.guide import load_stage, save_stage

    stage = load_stage(tiny_stage_file(tmp_path / "g.pt"))
    exc = tmp_path / "g_exc.pt"
    save_stage(exc, stage, {"config": {"excitation": True, "harmonic": {"lag_hops": 1}}})
    with pytest.raises(StylehostError, match=r"runs 1 hop\(s\) behind the input"):
        export_streaming_bundle(tiny_causal(tmp_path / "c0.pt", lookahead=0), tmp_path / "b", exc, frames=2)
    assert not (tmp_path / "b").exists()


def test_a_network_without_look_ahead_plays_one_frame_per_call_on_a_lag_free_excitation(tmp_path: Path) -> None:
    """Issue 17's framing: a causal network at look-ahead 0, a stage with no after-frame and the excitation at
    lag 0 (``excitation_lag``, as the window export's) export as a bundle of 4 ms model delay that plays one
    frame per call, equal to the one-pass reference with the same excitation."""
    import dataclasses

    from diffusion.guide import save_stage

    stage = load_stage(tiny_stage_file(tmp_path / "g.pt", cfg=dataclasses.replace(TINY_GUIDE, lookahead=0)))
    exc = tmp_path / "g_exc.pt"
    save_stage(exc, stage, {"config": {"excitation": True, "harmonic": {"lag_hops": 1}}})
    bundle = export_streaming_bundle(tiny_causal(tmp_path / "c0.pt", lookahead=0), tmp_path / "b", exc, frames=1,
                                     excitation_lag=0)
    assert bundle.lookahead == 0 and bundle.emit == 1 and bundle.excitation["lag_hops"] == 0
    assert bundle.latency_samples == bundle.spectrogram.synthesis_span - bundle.spectrogram.hop
    proc = make_processor(bundle, open_backend(bundle, "cpu"))
    proc.set_params(style_mix=MIX, strength=1.0, steps=1)
    x = vibrato(0.8)
    y = stream(proc, x)
    want = reference(proc, x, len(y), excitation=ExcitationConfig(lag_hops=0))
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(y, want, atol=1e-4, rtol=0)
    with pytest.raises(StylehostError, match="harmonic excitation"):  # a lag needs an excitation to apply to
        export_streaming_bundle(tiny_causal(tmp_path / "c1.pt"), tmp_path / "b1", tiny_stage_file(tmp_path / "p.pt"),
                                frames=1, excitation_lag=0)


def test_no_condition_graph_is_refused_for_a_window_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from stylehost.cli import main

    assert main(["export", "onnx", "--model", "models/default/model.pt", "--out", str(tmp_path / "w"),
                 "--no-condition-graph"]) != 0
    assert "applies to causal streaming models" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
