"""The commands end to end through main(): one-line errors, passthrough notice, bench JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.jackserver import JackServer
from diffusion.errors import StylehostError
from stylehost.cli import main


def test_render_command_prints_passthrough_notice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sf.write(tmp_path / "in.wav", np.zeros((4800, 1), np.float32), 48000)
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "violin",
                 "--model", "passthrough"])
    captured = capsys.readouterr()
    assert code == 0 and "NOT style transfer" in captured.err
    assert sf.info(str(tmp_path / "out.wav")).frames == 4800


def test_a_style_the_default_model_lacks_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sf.write(tmp_path / "in.wav", np.zeros((480, 1), np.float32), 48000)
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "kazoo"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and "has no style 'kazoo'; its styles: " in err[-1] and not (tmp_path / "out.wav").exists()


def test_model_bundle_not_yet_supported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["render", "in.wav", "out.wav", "--style", "violin", "--model", str(tmp_path)])
    assert code == 2 and "DSP passthrough" in capsys.readouterr().err


@pytest.mark.jack
def test_devices_lists_jack(jack_server: JackServer, capsys: pytest.CaptureFixture) -> None:
    assert main(["devices"]) == 0
    assert "JACK Audio Connection Kit" in capsys.readouterr().out


@pytest.mark.jack
def test_live_runs_for_a_while(jack_server: JackServer, capsys: pytest.CaptureFixture) -> None:
    code = main(["live", "--style", "flute", "--input", "system", "--output", "system", "--seconds", "1",
                 "--model", "passthrough"])
    captured = capsys.readouterr()
    assert code == 0 and "PASSTHROUGH" in captured.out and "latency" in captured.out


@pytest.mark.jack
def test_bench_latency_writes_json(jack_server: JackServer, tmp_path: Path) -> None:
    out = tmp_path / "lat.json"
    assert main(["bench", "latency", "--seconds", "2", "--json", str(out), "--server", jack_server.name,
                 "--model", "passthrough"]) == 0
    result = json.loads(out.read_text())
    for key in ["end_to_end_latency_ms", "algorithmic_latency_ms", "compute_ms_p50", "compute_ms_p99", "rtf",
                "dropouts", "backend", "device_name"]:
        assert key in result
    assert result["end_to_end_latency_ms"] == pytest.approx(result["reported_latency_ms"], abs=0.1)
    assert result["backend"] == "dsp-passthrough"


def test_bench_without_any_audio_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no jackd to start
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "stylehost-nonexistent")
    code = main(["bench", "latency", "--seconds", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "no audio server" in err and err.count("\n") == 1


class _Payload:
    """Unpickling this runs ``open(marker, 'w')``: what a code-running checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def test_a_refused_checkpoint_is_one_line_that_never_advises_weights_only_false(tmp_path: Path) -> None:
    """Guards the rewording of torch's refusal (relayed by the torch backend, export and training): torch
    advises re-running with weights_only=False, which would run the payload. The line names the refused
    global instead, without ANSI codes or newlines, and the payload never ran."""
    import torch

    from diffusion.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    torch.save({"format": 1, "model_config": {}, "model": _Payload(marker)}, tmp_path / "model.pt")
    with pytest.raises(StylehostError) as info:
        load_checkpoint(tmp_path / "model.pt")
    line = str(info.value)
    assert not re.search(r"weights_only\W{0,3}(=|set to)\W{0,3}False", line), line
    assert "can still be loaded" not in line and "\n" not in line and "\x1b" not in line, line
    assert "Unsupported global: GLOBAL io.open" in line and not marker.exists(), line
