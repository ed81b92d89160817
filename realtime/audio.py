"""PortAudio (sounddevice) devices and the live duplex stream around an Engine.

Every PortAudio failure is wrapped once here into StylehostError with the device and setting that
caused it, so the CLI prints one line. The stream callback only forwards to Engine.process_block,
which copies; nothing else runs on the audio thread.

A stream can die under us (the JACK server stops, a USB device is unplugged): ``active`` turns False
(PortAudio says so, or no callback came for STALL_S) and ``check()`` raises one StylehostError. Such a
stream is abandoned, never stopped or closed: PortAudio 19.6's JACK host waits on a condition its
shutdown handler has already signalled, so Pa_StopStream/Pa_AbortStream/Pa_CloseStream and
Pa_Terminate block for 10 minutes (pa_jack.c RealStop -> WaitCondition; seen here with gdb). The
worker thread is still stopped and joined, and sounddevice's exit handler (Pa_Terminate) is skipped.
"""

from __future__ import annotations

import atexit
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sounddevice as sd

from diffusion.errors import StylehostError
from realtime.device_process import DeviceProcess, StreamSpec
from realtime.engine import Engine, EngineConfig
from realtime.params import CALLBACK_PROCESS, EngineParams
from realtime.processor import Processor
from realtime.resample import QUALITY
from realtime.worker import split_cpus

STALL_S = 2.0  # no callback for this long while "active": the device is gone (a loaded machine stalls < 1 s)
_ABANDONED: list[sd.Stream] = []  # dead streams, kept referenced so their cffi callback handle stays valid


def _abandon(stream: sd.Stream) -> None:
    """Forget a dead stream without calling into PortAudio (see the module docstring for why)."""
    _ABANDONED.append(stream)
    # audit: skip-pa-terminate
    atexit.unregister(sd._exit_handler)  # Pa_Terminate would close the dead stream: a 10-minute wait at exit


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def line(self) -> str:
        return (
            f"{self.index:3d}  {self.name}  [{self.hostapi}]  "
            f"in {self.max_input_channels}, out {self.max_output_channels}, {self.default_samplerate:.0f} Hz"
        )


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio sees, with its host API name (ALSA, JACK, Core Audio, WASAPI...)."""
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
    except sd.PortAudioError as exc:
        raise StylehostError(f"PortAudio cannot list devices: {exc}") from exc
    return [
        DeviceInfo(
            index=i,
            name=d["name"],
            hostapi=hostapis[d["hostapi"]]["name"],
            max_input_channels=d["max_input_channels"],
            max_output_channels=d["max_output_channels"],
            default_samplerate=d["default_samplerate"],
        )
        for i, d in enumerate(devices)
    ]


def find_device(spec: str | int | None, kind: str) -> DeviceInfo:
    """Resolve ``spec`` (index, exact name or unique substring; None = default) for 'input'/'output'."""
    devices = list_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    usable = [d for d in devices if getattr(d, key) > 0]
    if not usable:
        raise StylehostError(
            f"no audio {kind} device: PortAudio sees no sound card and no audio server "
            "(start JACK or PipeWire, or set JACK_DEFAULT_SERVER)"
        )
    if spec is None:
        try:
            default = sd.default.device[0 if kind == "input" else 1]
        except sd.PortAudioError:
            default = -1
        if default is not None and default >= 0 and getattr(devices[default], key) > 0:
            return devices[default]
        return usable[0]
    if isinstance(spec, int) or str(spec).isdigit():
        idx = int(spec)
        for d in usable:
            if d.index == idx:
                return d
        raise StylehostError(f"no {kind} device with index {idx}; run `stylehost devices`")
    exact = [d for d in usable if d.name == spec]
    matches = exact or [d for d in usable if str(spec).lower() in d.name.lower()]
    if len(matches) != 1:
        names = ", ".join(repr(d.name) for d in (matches or usable))
        problem = "is ambiguous" if matches else "matches nothing"
        raise StylehostError(f"{kind} device {spec!r} {problem}; candidates: {names}")
    return matches[0]


def freeze_heap() -> int:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``); return how many.

    Why: with torch and a model loaded a full (generation-2) collection walks ~170 k objects, 46 ms
    measured on the 2-core dev CPU, and it runs in whichever thread happens to allocate, holding the
    GIL: the worker (the callback then waits for the GIL) or the PortAudio callback itself. Either is
    a burst of dropouts. The objects a session starts with live as long as the process, so freezing
    them costs nothing; collections while streaming then only walk what was made since.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class LiveSession:
    """A duplex PortAudio stream feeding an Engine; use as a context manager.

    ``channels`` defaults to min(2, what the device has): stereo input is processed on the mid or
    per channel (``stereo_mode``) by mono processors.
    """

    def __init__(
        self,
        make_processor: Callable[[], Processor],
        input: str | int | None = None,
        output: str | int | None = None,
        samplerate: int | None = None,
        blocksize: int = 256,
        channels: int | None = None,
        stereo_mode: str = "mid",
        margin_ms: float = 6.0,
        params: EngineParams | None = None,
        callback_process: bool = CALLBACK_PROCESS,
        pin_cpus: bool = False,
        governor: bool = True,
        resample_quality: str = QUALITY,
        spin_ms: float = 0.0,
    ) -> None:
        self.input = find_device(input, "input")
        self.output = find_device(output, "output")
        rate = int(samplerate or self.output.default_samplerate)
        if channels is not None:  # asked for: honoured exactly or refused, never silently changed
            most = min(self.input.max_input_channels, self.output.max_output_channels)
            if not 1 <= channels <= most:  # audit: live-channels-refused
                raise StylehostError(f"--channels {channels}: {self.input.name!r} has {self.input.max_input_channels} "
                                     f"input and {self.output.name!r} {self.output.max_output_channels} output "
                                     f"channels; choose 1..{most}")
        in_ch = min(channels or 2, self.input.max_input_channels)
        out_ch = min(channels or 2, self.output.max_output_channels)
        config = EngineConfig(
            sample_rate=rate,
            blocksize=blocksize,
            in_channels=in_ch,
            out_channels=out_ch,
            stereo_mode=stereo_mode,
            margin_ms=margin_ms,
            callback_process=callback_process,
            pin_cpus=pin_cpus,
            governor=governor,
            resample_quality=resample_quality,
            spin_ms=spin_ms,
        )
        self.engine = Engine(make_processor, config, params)
        self._stream: sd.Stream | None = None
        self._device: DeviceProcess | None = None  # the callback's own process (callback_process)
        self._seen_blocks = -1  # callback progress at the last look (stall detection)
        self._seen_at = 0.0
        self.failure: str | None = None  # why the stream died, once it has

    @property
    def device_name(self) -> str:
        if self.input.index == self.output.index:
            return f"{self.input.name} [{self.input.hostapi}]"
        return f"{self.input.name} -> {self.output.name} [{self.input.hostapi}/{self.output.hostapi}]"

    def _callback(self, indata: Any, outdata: Any, frames: int, time: Any, status: sd.CallbackFlags) -> None:
        self.engine.process_block(indata, outdata, status)

    def start(self) -> LiveSession:
        cfg = self.engine.config
        self.engine.reset()
        if cfg.callback_process:
            return self._start_device_process()
        try:
            self._stream = sd.Stream(
                device=(self.input.index, self.output.index),
                samplerate=cfg.sample_rate,
                blocksize=cfg.blocksize,
                channels=(cfg.in_channels, cfg.out_channels),
                dtype="float32",
                latency="low",
                callback=self._callback,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise StylehostError(
                f"cannot open {self.device_name} at {cfg.sample_rate} Hz, block {cfg.blocksize}: {exc} "
                "(try --samplerate or --blocksize)"
            ) from exc
        in_lat, out_lat = self._stream.latency
        self.engine.set_device_latency(in_lat, out_lat)
        self.engine.start()
        freeze_heap()
        self._stream.start()
        return self

    def _start_device_process(self) -> LiveSession:
        """The stream in a process of its own (realtime/device_process.py); the worker stays here."""
        cfg, engine = self.engine.config, self.engine
        assert engine.shared is not None
        engine.start()  # the wake pipe first: its write end goes to the device process
        spec = StreamSpec(self.input.index, self.output.index, cfg.sample_rate, cfg.blocksize, cfg.in_channels,
                          cfg.out_channels, cfg.fade_ms, engine.shared.layout.capacity,
                          tuple(sorted(split_cpus()[0])) if cfg.pin_cpus else ())
        device = DeviceProcess(spec, engine.shared, engine._wake_w)
        try:
            in_lat, out_lat = device.open()
        except StylehostError as exc:
            engine.stop()
            raise StylehostError(f"cannot open {self.device_name} at {cfg.sample_rate} Hz, block {cfg.blocksize} "
                                 f"in the device process: {exc} (try --samplerate or --blocksize)") from exc
        engine.set_device_latency(in_lat, out_lat)
        freeze_heap()
        try:
            device.start()
        except StylehostError:
            engine.stop()
            raise
        self._device = device
        return self

    def stop(self) -> None:
        """Stop and close the stream and join the worker; a dead stream is abandoned, never waited on."""
        device, self._device = self._device, None
        if device is not None:
            try:
                device.stop(abandon=not device.running or self._stalled())  # a dead stream: no PortAudio call
            finally:
                self.engine.stop()
                gc.unfreeze()
            return
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            if stream.active and not self._stalled():  # audit: abandon-dead-stream
                stream.stop()
                stream.close()
            else:
                _abandon(stream)
        except sd.PortAudioError as exc:
            raise StylehostError(f"error closing {self.device_name}: {exc}") from exc
        finally:
            self.engine.stop()  # audit: worker-joined-on-stop
            gc.unfreeze()  # what the session held (model, buffers) can be collected once it is dropped

    def _stalled(self) -> bool:
        """No callback since the previous look, and that was more than STALL_S ago."""
        now, blocks = time.monotonic(), self.engine.blocks
        if blocks != self._seen_blocks:
            self._seen_blocks, self._seen_at = blocks, now
            return False
        return now - self._seen_at > STALL_S

    @property
    def active(self) -> bool:
        """Streaming and alive: PortAudio says active and callbacks keep coming."""
        if self._device is not None:
            return self._device.running and not self._stalled()
        return self._stream is not None and self._stream.active and not self._stalled()  # audit: stream-alive

    def check(self) -> None:
        """Raise one StylehostError if the stream died under us (the session is then stopped)."""
        if self.failure is None and (self._stream is not None or self._device is not None) and not self.active:
            self.failure = (
                f"the stream on {self.device_name} stopped: the audio server went away or the device was "
                "unplugged; start the server (restart stylehost for JACK) and the stream again"
            )
            self.stop()
        if self.failure is not None:
            raise StylehostError(self.failure)

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
