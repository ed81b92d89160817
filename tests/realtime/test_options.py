"""Numeric options of `render` and `live` are checked at the parser: one error line naming the range,
exit 2, before any file, device or model is touched (NaN margins, a 0 strength, 99 channels and a
1,000,000-sample block all used to run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stylehost.cli import build_parser, main

RENDER = ["render", "missing-in.wav", "missing-out.wav", "--style", "violin", "--model", "passthrough"]
# A device that does not exist: a value that slipped past the parser ends in a device error, never a stream.
LIVE = ["live", "--style", "violin", "--model", "passthrough", "--input", "no-such-device-xyz",
        "--output", "no-such-device-xyz"]


@pytest.mark.parametrize(
    "command,option,value,message",
    [
        (LIVE, "--margin-ms", "nan", "nan is not a finite number"),
        (LIVE, "--margin-ms", "inf", "inf is not a finite number"),
        (LIVE, "--margin-ms", "-1000", "-1000 is outside [0, 100]"),
        (LIVE, "--margin-ms", "101", "101 is outside [0, 100]"),
        (RENDER, "--strength", "0", "0 is outside (0, 1]"),
        (LIVE, "--strength", "1.5", "1.5 is outside (0, 1]"),
        (RENDER, "--strength", "nan", "nan is not a finite number"),
        (RENDER, "--wet", "-0.1", "-0.1 is outside [0, 1]"),
        (LIVE, "--wet", "2", "2 is outside [0, 1]"),
        (LIVE, "--channels", "0", "0 is outside [1, 32]"),
        (LIVE, "--channels", "99", "99 is outside [1, 32]"),
        (RENDER, "--blocksize", "1000000", "1000000 is outside [16, 65536]"),
        (RENDER, "--blocksize", "0", "0 is outside [16, 65536]"),
        (LIVE, "--blocksize", "1000000", "1000000 is outside [16, 8192]"),
        (LIVE, "--blocksize", "8", "8 is outside [16, 8192]"),
        (LIVE, "--samplerate", "1000", "1000 is outside [8000, 192000]"),
        (LIVE, "--samplerate", "384000", "384000 is outside [8000, 192000]"),
        (LIVE, "--seconds", "0", "0 is outside (0, inf)"),
        (LIVE, "--seconds", "-5", "-5 is outside (0, inf)"),
        (LIVE, "--seconds", "inf", "inf is not a finite number"),
        (LIVE, "--seconds", "nan", "nan is not a finite number"),
        (RENDER, "--steps", "0", "0 is outside [1, 64]"),
        (LIVE, "--steps", "65", "65 is outside [1, 64]"),
        (RENDER, "--steps", "2.5", "'2.5' is not an integer"),
    ],
)
def test_out_of_range_numbers_are_refused_by_the_parser(
    capsys: pytest.CaptureFixture, command: list[str], option: str, value: str, message: str
) -> None:
    """Guards every numeric option's range: argparse's exit 2 with the option and the range on its last line."""
    with pytest.raises(SystemExit) as exit_info:
        main([*command, f"{option}={value}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.splitlines()[-1].endswith(f"error: argument {option}: {message}"), err


@pytest.mark.parametrize(
    "command,option,value",
    [
        (LIVE, "--margin-ms", "0"), (LIVE, "--margin-ms", "100"), (RENDER, "--strength", "1"),
        (RENDER, "--strength", "0.01"), (RENDER, "--wet", "0"), (LIVE, "--wet", "1"), (LIVE, "--channels", "1"),
        (LIVE, "--channels", "32"), (RENDER, "--blocksize", "16"), (RENDER, "--blocksize", "65536"),
        (LIVE, "--blocksize", "8192"), (LIVE, "--samplerate", "8000"), (LIVE, "--samplerate", "192000"),
        (LIVE, "--seconds", "0.5"), (RENDER, "--steps", "1"), (LIVE, "--steps", "64"),
    ],
)
def test_the_ends_of_each_range_are_accepted(command: list[str], option: str, value: str) -> None:
    args = build_parser().parse_args([*command, option, value])
    assert getattr(args, option.lstrip("-").replace("-", "_")) == pytest.approx(float(value))


def test_render_at_the_smallest_block_is_correct(tmp_path: Path) -> None:
    """The lower bound is usable, not only accepted: a render at block 16 matches the input."""
    x = (0.3 * np.sin(np.arange(4800) * 0.05)).astype(np.float32)[:, None]
    sf.write(tmp_path / "in.wav", x, 24000, subtype="FLOAT")
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "violin", "--model",
                 "passthrough", "--no-progress", "--blocksize", "16"])
    y, _ = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert code == 0
    np.testing.assert_allclose(y, x, atol=1e-5)
