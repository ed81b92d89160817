"""One session opener (realtime/session.py) for `live`, `render`, the panel and its engine process: style
names are checked once, against the bundle's own list, so a bundle with a style outside the built-in list
plays it, and a style the bundle lacks is one line naming the bundle's styles."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.jackserver import JackServer
from diffusion.errors import StylehostError
from diffusion.styles import STYLE_NAMES
from export.bundle import Bundle, load_bundle
from gui.controller import EngineController, StreamSettings
from realtime.params import EngineParams
from realtime.session import SessionConfig, open_session
from stylehost.cli import main
from tests.export.tiny import edit_manifest, tiny_bundle

OWN = "kazoo"  # not a built-in style


@pytest.fixture(scope="module")
def own_style_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A tiny bundle whose manifest names a style of its own where the built-in "guitar" was."""
    bundle = tiny_bundle(tmp_path_factory.mktemp("models"), name="own")
    edit_manifest(bundle.path, lambda m: m["styles"].__setitem__(m["styles"].index("guitar"), OWN))
    loaded = load_bundle(bundle.path)
    assert OWN in loaded.styles and OWN not in STYLE_NAMES
    return loaded


def test_a_bundle_style_outside_the_built_in_list_renders(own_style_bundle: Bundle, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    rate = 24000
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, rate)
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", OWN,
                 "--model", str(own_style_bundle.path), "--backend", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    y, got_rate = sf.read(tmp_path / "out.wav", dtype="float32")
    assert got_rate == rate and y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() > 1e-3


def test_the_session_conditions_the_model_on_the_bundle_style(own_style_bundle: Bundle) -> None:
    session = open_session(SessionConfig(str(own_style_bundle.path), "cpu"), say=lambda line: None)
    params = session.params(OWN, steps=1)
    assert session.styles == own_style_bundle.styles and params.style_mix == ((OWN, 1.0),)
    proc = session.factory()
    proc.set_params(**params.model_params())
    row = own_style_bundle.style_table[own_style_bundle.styles.index(OWN)]
    np.testing.assert_array_equal(proc.style_vector, row)  # type: ignore[attr-defined]


def test_a_style_the_bundle_lacks_is_refused_naming_its_styles(own_style_bundle: Bundle) -> None:
    session = open_session(SessionConfig(str(own_style_bundle.path), "cpu"), say=lambda line: None)
    with pytest.raises(StylehostError, match=f"has no style 'guitar'; its styles: piano, organ, {OWN}, violin"):
        session.check_params(EngineParams(style_mix=(("violin", 0.5), ("guitar", 0.5))))
    with pytest.raises(StylehostError, match="has no style 'guitar'"):
        session.params("guitar")


def test_the_passthrough_ignores_style_names() -> None:
    session = open_session(SessionConfig("passthrough"))
    assert session.passthrough and session.styles is None
    assert session.params(OWN).style_mix == ((OWN, 1.0),)


@pytest.mark.jack
@pytest.mark.parametrize("separate_process", [False, True], ids=["in-process", "engine-process"])
def test_the_panel_plays_a_bundle_style_outside_the_built_in_list(
    jack_server: JackServer, own_style_bundle: Bundle, separate_process: bool
) -> None:
    controller = EngineController(EngineParams(style_mix=((OWN, 1.0),), steps=1), separate_process=separate_process)
    controller.start(StreamSettings(input="system", output="system", model=str(own_style_bundle.path),
                                    backend="cpu"))
    try:
        assert not controller.passthrough and controller.model_styles == own_style_bundle.styles
        engine = controller.engine
        assert engine is not None
        deadline = time.monotonic() + 20.0
        while engine.blocks < 100 and time.monotonic() < deadline:
            time.sleep(0.1)
        status = controller.status()
        assert engine.blocks >= 100 and status is not None and status.processor_errors == 0
        with pytest.raises(StylehostError, match="has no style 'guitar'"):
            controller.update(style_mix=(("guitar", 1.0),))
        assert controller.params.style_mix == ((OWN, 1.0),)
    finally:
        controller.stop()


def test_denoiser_input_reaches_the_processor_and_needs_an_excitation(own_style_bundle: Bundle, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(StylehostError, match="only when the stage shapes one"):
        open_session(SessionConfig(str(own_style_bundle.path), "cpu", denoiser_input="excitation"),
                     say=lambda line: None)
    session = open_session(SessionConfig(str(own_style_bundle.path), "cpu", harmonic=True,
                                         denoiser_input="excitation"), say=lambda line: None)
    assert session.factory().denoiser_input == "excitation"  # type: ignore[attr-defined]
    rate = 24000
    x = (0.3 * np.sin(2 * np.pi * 330 * np.arange(rate) / rate)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, rate)
    outs = []
    for heard in ("source", "excitation"):
        out = tmp_path / f"{heard}.wav"
        assert main(["render", str(tmp_path / "in.wav"), str(out), "--style", "violin", "--harmonic",
                     "--denoiser-input", heard, "--model", str(own_style_bundle.path), "--backend", "cpu",
                     "--no-progress"]) == 0, capsys.readouterr().err
        outs.append(sf.read(out, dtype="float32")[0])
    assert np.abs(outs[0] - outs[1]).max() > 1e-4  # the flag changes what the model hears
