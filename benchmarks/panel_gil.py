"""Does a busy panel hurt the audio? Dropouts while the GUI thread spins in Python, engine in- vs out-of-process.

    python -m benchmarks.panel_gil --json benchmarks/results/panel_gil.json

For each mode (the engine in the panel's process, and in its own process as `stylehost gui` runs it)
on a private JACK dummy server (48 kHz, period 256) with the DSP passthrough: alternate ``rounds``
idle seconds (the GUI thread sleeping) and busy seconds (the GUI thread running pure Python, as a
long repaint would), at CPython's default 5 ms switch interval, and count the callbacks per expected
block and the new dropouts in each. No JACK-Client probe plays: it would be a Python callback in this
process that JACK waits for every cycle, and would measure the probe instead of the engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info


def measure(engine: Any, busy: bool, seconds: float) -> dict[str, float]:
    blocks, dropouts = engine.blocks, engine.dropouts
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if busy:
            sum(range(1000))  # holds the GIL between switch intervals
        else:
            time.sleep(0.01)
    expected = (time.monotonic() - t0) * engine.config.sample_rate / engine.config.blocksize
    return {"callback_rate": round((engine.blocks - blocks) / expected, 3), "dropouts": engine.dropouts - dropouts}


def run(rounds: int, seconds: float, switch_s: float) -> dict[str, Any]:
    from benchmarks.jackserver import JackServer
    from gui.controller import EngineController, StreamSettings

    result: dict[str, Any] = {"switch_interval_s": switch_s, "seconds_per_phase": seconds, "modes": {}}
    old = sys.getswitchinterval()
    with JackServer(rate=48000, period=256):
        for mode, separate in (("same_process", False), ("separate_process", True)):
            controller = EngineController(separate_process=separate)
            controller.start(StreamSettings(input="system", output="system", model="passthrough"))
            sys.setswitchinterval(switch_s)
            try:
                time.sleep(0.5)
                phases = [measure(controller.engine, busy, seconds) for _ in range(rounds) for busy in (False, True)]
            finally:
                sys.setswitchinterval(old)
                controller.stop()
            idle, busy = phases[0::2], phases[1::2]
            result["modes"][mode] = {
                "idle_dropouts": sum(p["dropouts"] for p in idle),
                "busy_dropouts": sum(p["dropouts"] for p in busy),
                "idle_callback_rate": round(min(p["callback_rate"] for p in idle), 3),
                "busy_callback_rate": round(min(p["callback_rate"] for p in busy), 3),
                "phases": phases,
            }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="idle/busy pairs per mode")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each idle or busy phase")
    p.add_argument("--switch-ms", type=float, default=5.0, help="CPython switch interval during the test")
    p.add_argument("--json", type=Path, default=None, help="write the result here")
    args = p.parse_args(argv)
    result = run(args.rounds, args.seconds, args.switch_ms / 1000.0)
    result["machine"] = machine_info()
    given = argv if argv is not None else sys.argv[1:]
    result["command"] = " ".join(["python", "-m", "benchmarks.panel_gil", *given])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({m: {k: v for k, v in r.items() if k != "phases"} for m, r in result["modes"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
