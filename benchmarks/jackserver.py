"""A private JACK server (dummy driver) and a loopback probe client, for tests and the latency bench.

Why a real server: CI has no sound card, and the only honest check of the callback path is real
PortAudio streams on a real audio server. ``jackd -d dummy`` runs a real JACK graph on a timer.

Needs the ``jackd`` binary (Debian jackd2) and the JACK-Client package (``import jack``), imported
lazily so the live engine does not depend on it.
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import sounddevice as sd

from diffusion.errors import StylehostError


def _jack() -> Any:
    try:
        import jack
    except (ImportError, OSError) as exc:
        raise StylehostError(f"the JACK-Client package is needed here ({exc}); pip install JACK-Client") from exc
    jack.set_error_function(lambda msg: None)  # libjack prints connection retries; we report ourselves
    jack.set_info_function(lambda msg: None)
    return jack


_stranded: list[str] = []  # the server that died under PortAudio's JACK client in this process, if one did


def reinit_portaudio() -> None:
    """PortAudio reads JACK_DEFAULT_SERVER only when initialised: re-initialise after changing it.

    Safe only while this process holds no libjack client on a server other than PortAudio's (see
    ``server_running``): that is what made Pa_Terminate segfault here.
    """
    if _stranded:
        raise StylehostError(f"JACK server {_stranded[0]!r} stopped answering under PortAudio's client in this "
                             "process, and PortAudio cannot let go of it without aborting the process: "
                             "run again in a fresh process")
    sd._terminate()
    sd._initialize()


def strand_portaudio(server: str) -> None:
    """Never terminate PortAudio again in this process, not at exit either: its JACK host API asserts that
    closing its client succeeds (pa_jack.c, Terminate), which it cannot once the server died or stopped
    answering, and the whole process aborts (a CI run lost every result that way). Later servers are
    refused with a clear error by ``reinit_portaudio`` instead."""
    _stranded.append(server)
    sd._initialized = 0  # sounddevice's exit handler calls Pa_Terminate while this is above 0


# The probe run in a child by ``server_running`` (argv: server, client name) and by ``JackServer.cycling``
# (also: cycles, seconds): exit 0 = the server answered (and ran that many process cycles for the active
# client within those seconds), 1 = it did not (dead, or wedged by an earlier client), 3 = no JACK-Client
# package. Only ``import jack``: the child starts in ~0.1 s.
_PROBE_CODE = """
import sys, threading
try:
    import jack
except (ImportError, OSError) as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
jack.set_error_function(lambda msg: None)
jack.set_info_function(lambda msg: None)
try:
    client = jack.Client(sys.argv[2], no_start_server=True, servername=sys.argv[1])
except jack.JackOpenError:
    sys.exit(1)
ok = True
if len(sys.argv) > 3:
    want, done, count = int(sys.argv[3]), threading.Event(), [0]
    @client.set_process_callback
    def process(frames):
        count[0] += 1
        if count[0] >= want:
            done.set()
    client.activate()
    ok = done.wait(float(sys.argv[4]))
    client.deactivate()
client.close()
sys.exit(0 if ok else 1)
"""


def server_running(name: str, timeout: float = 10.0) -> bool:
    """Whether the JACK server ``name`` accepts a client (it is never started by asking).

    The probe client is opened in a child process, never in this one. Why: libjack (jack2) keeps
    per-process server state, and PortAudio opens a JACK client on the default server whenever it
    initialises (``import sounddevice``). A client opened here on a *second* server, even one closed
    again at once, left that state broken, and the next Pa_Terminate (``reinit_portaudio``)
    segfaulted: `bench latency --server NAME` crashed with rc 139 whenever another server (``default``,
    or JACK_DEFAULT_SERVER) was running. A child process has its own libjack.
    """
    # audit: jack-probe-in-child
    cmd = [sys.executable, "-c", _PROBE_CODE, name, f"stylehost-probe-{uuid.uuid4().hex[:6]}"]
    try:
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False  # a server that cannot take a client within ``timeout`` is no server to measure through
    if done.returncode == 3:
        reason = done.stderr.decode(errors="replace").strip()
        raise StylehostError(f"the JACK-Client package is needed here ({reason}); pip install JACK-Client")
    return done.returncode == 0


def running_servers(exclude: str | None = None) -> list[str]:
    """JACK servers that answer, for error messages: ``default``, JACK_DEFAULT_SERVER, and every server
    with a jack2 socket (``/dev/shm/jack_NAME_UID_0``) but the private ``stylehost-*`` ones (other runs'
    dummies, gone when their owner ends); less ``exclude``."""
    candidates = ["default", os.environ.get("JACK_DEFAULT_SERVER") or "default"]
    found: list[str] = []
    if hasattr(os, "getuid"):
        pattern = re.compile(rf"^jack_(.+)_{os.getuid()}_0$")
        try:
            entries = sorted(os.scandir("/dev/shm"), key=lambda e: e.name)
        except OSError:
            entries = []
        for entry in entries:
            match = pattern.match(entry.name)
            try:
                is_socket = stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode)
            except OSError:
                is_socket = False
            if match and is_socket and not match.group(1).startswith("stylehost-"):
                found.append(match.group(1))
    names = [n for n in dict.fromkeys(candidates + found) if n != exclude]
    return [n for n in names[:8] if server_running(n)]  # at most 8 probes of ~0.1 s


# jack2's shared registry (common/shm.h): a header, then a table of MAX_SERVERS (8) server slots, each a
# pid_t and a name of JACK_SERVER_NAME_SIZE + 1 bytes (padded to 264). Guarded by the SysV semaphore
# JACK_SEMAPHORE_KEY. jackd frees its slot when it exits cleanly (SIGTERM); a jackd killed with SIGKILL
# leaves it, and jack2 reclaims a dead slot only when a server of the *same name* starts again.
JACK_REGISTRY = Path("/dev/shm/jack-shm-registry")
_JACK_SHM_MAGIC = 0x4A41434B
_JACK_SEMAPHORE_KEY = 0x282929
_MAX_SERVERS = 8
_SERVER_TABLE = 24  # bytes before the table: magic, protocol, type, size, hdr_len, entry_len
_SERVER_SLOT = 264


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    return True


class _RegistryLock:
    """jack2's registry lock (semop -1/+1 with SEM_UNDO on its one-semaphore set); a no-op without it."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._semid = self._libc.semget(_JACK_SEMAPHORE_KEY, 1, 0)

    def _add(self, value: int) -> None:
        if self._semid >= 0:
            sem_undo = 0x1000
            op = struct.pack("HhH", 0, value, sem_undo)  # struct sembuf {sem_num, sem_op, sem_flg}
            self._libc.semop(self._semid, ctypes.c_char_p(op), 1)

    def __enter__(self) -> None:
        self._add(-1)

    def __exit__(self, *exc: object) -> None:
        self._add(1)


def live_server_slots(registry: Path = JACK_REGISTRY) -> list[str]:
    """Names in the registry's server table whose process is alive (for error messages)."""
    try:
        data = registry.read_bytes()[: _SERVER_TABLE + _MAX_SERVERS * _SERVER_SLOT]
    except OSError:
        return []
    names = []
    for slot in range(_MAX_SERVERS):
        at = _SERVER_TABLE + slot * _SERVER_SLOT
        if len(data) < at + _SERVER_SLOT:
            break
        pid, = struct.unpack_from("<i", data, at)
        if pid > 0 and _pid_alive(pid):
            names.append(data[at + 4 : at + _SERVER_SLOT].split(b"\0", 1)[0].decode(errors="replace"))
    return names


def reclaim_dead_server_slots(registry: Path = JACK_REGISTRY) -> list[str]:
    """Free the registry slots of JACK servers whose process is gone; return their names.

    Why: every private server here has a new name, so a slot left by a killed jackd is never reused;
    after eight, every new jackd fails with "Failed to open server" (ENOSPC) until the machine restarts.
    That is what failed CI once: 40 JACK tests in one run. Only slots whose pid is dead are touched, under
    jack's own registry lock, and only in a registry whose header matches the layout above.
    """
    try:
        fd = os.open(registry, os.O_RDWR)
    except OSError:
        return []  # no registry yet (no server ever ran) or not ours to repair
    reclaimed: list[str] = []
    try:
        size = os.fstat(fd).st_size
        table_end = _SERVER_TABLE + _MAX_SERVERS * _SERVER_SLOT
        if size < table_end:
            return []
        with mmap.mmap(fd, table_end) as shm, _RegistryLock():
            magic, = struct.unpack_from("<I", shm, 0)
            hdr_len, = struct.unpack_from("<i", shm, 16)
            if magic != _JACK_SHM_MAGIC or hdr_len != table_end:
                return []  # a jack build with another layout: leave it alone
            for slot in range(_MAX_SERVERS):
                at = _SERVER_TABLE + slot * _SERVER_SLOT
                pid, = struct.unpack_from("<i", shm, at)
                if pid > 0 and not _pid_alive(pid):
                    name = bytes(shm[at + 4 : at + _SERVER_SLOT]).split(b"\0", 1)[0].decode(errors="replace")
                    shm[at : at + _SERVER_SLOT] = bytes(_SERVER_SLOT)
                    reclaimed.append(name)
    finally:
        os.close(fd)
    for name in reclaimed:  # "jack-UID:NAME:": its socket and semaphores are litter now
        parts = name.split(":")
        if len(parts) >= 2 and parts[0].startswith("jack-") and "/" not in parts[1]:
            uid, server = parts[0][5:], parts[1]
            for litter in [*registry.parent.glob(f"jack_{server}_{uid}_*"),
                           *registry.parent.glob(f"jack_sem.{uid}_{server}_*")]:
                litter.unlink(missing_ok=True)
    return reclaimed


class JackServer:
    """``jackd -n NAME -d dummy -r RATE -p PERIOD``, started and stopped by pid.

    As a context manager it also points PortAudio at this server (JACK_DEFAULT_SERVER) and
    restores the previous setting on exit. Only one at a time per process: libjack keeps
    per-process state, and with clients on two servers at once Pa_Terminate crashed (segfault).
    """

    _active: JackServer | None = None

    def __init__(self, name: str | None = None, rate: int = 48000, period: int = 256) -> None:
        self.name = name or f"stylehost-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.rate = rate
        self.period = period
        self._proc: subprocess.Popen | None = None
        self._old_env: str | None = None

    def start(self, timeout: float = 10.0) -> JackServer:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise StylehostError("no JACK server running and no `jackd` binary to start one (apt install jackd2)")
        from realtime.device_process import die_with_parent  # lazily: the probe's children need no engine code

        reclaim_dead_server_slots()  # audit: jack-reclaim-dead-slots
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        cmd = [jackd, "-n", self.name, "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        self._proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      preexec_fn=die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + timeout
        while not server_running(self.name):
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
                hint = ""
                if "Failed to open server" in err and len(live_server_slots()) >= _MAX_SERVERS:
                    hint = f" (JACK's registry holds its limit of {_MAX_SERVERS} running servers: stop one)"
                raise StylehostError(f"jackd exited with {self._proc.returncode}: {err.splitlines()[-1:]}{hint}")
            if time.monotonic() > deadline:
                self.stop()
                raise StylehostError(f"jackd {self.name!r} not ready after {timeout:.0f} s")
            time.sleep(0.05)
        return self

    def cycling(self, cycles: int = 4, timeouts: tuple[float, ...] = (5.0, 30.0)) -> bool:
        """Whether this server still runs process cycles for a new client (in a child process, as
        ``server_running``): a test that leaves the server dead or wedged is then caught before the
        next one hangs on it until pytest's timeout. A slow answer is asked again with a longer wait, so
        a loaded machine (a child that takes seconds to start) is not taken for a dead server."""
        for timeout in timeouts:
            if self._proc is None or self._proc.poll() is not None:
                return False
            cmd = [sys.executable, "-c", _PROBE_CODE, self.name, f"stylehost-alive-{uuid.uuid4().hex[:6]}",
                   str(cycles), str(timeout)]
            try:
                done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, timeout=timeout + 10)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                return True
        return False

    def pin(self, cpus: set[int]) -> None:
        """Keep every thread of this jackd on ``cpus`` (the benchmarks' --pin-cpus; best effort)."""
        if self._proc is None or not cpus:
            return
        for task in Path(f"/proc/{self._proc.pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except OSError:
                pass

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def __enter__(self) -> JackServer:
        if JackServer._active is not None:
            raise StylehostError(f"JACK server {JackServer._active.name!r} is still in use; one at a time")
        if _stranded:
            reinit_portaudio()  # raises: say why before starting a server nobody can use
        self.start()
        JackServer._active = self
        self._old_env = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        reinit_portaudio()
        return self

    def __exit__(self, *exc: object) -> None:
        answering = self.cycling()
        if answering:
            sd._terminate()  # close PortAudio's JACK client before its server goes away
        else:
            strand_portaudio(self.name)  # audit: jack-strand-dead-server
        if self._old_env is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = self._old_env
        self.stop()
        JackServer._active = None
        if answering:
            sd._initialize()


def play_timeout(samples: int, rate: int) -> float:
    """How long playing ``samples`` may take before the server counts as stopped: 3x real time + 5 s."""
    return 3.0 * samples / rate + 5.0


class LoopbackProbe:
    """A JACK client that plays a signal into PortAudio's inputs and records PortAudio's output.

    Playback and recording start in the same JACK cycle, so the recording's sample index is time
    since the first played sample: an event played at i and recorded at j took j - i samples.
    """

    def __init__(self, servername: str, target: str = "PortAudio") -> None:
        jack = _jack()
        try:
            self.client = jack.Client("stylehost-probe", no_start_server=True, servername=servername)
        except jack.JackOpenError as exc:
            raise StylehostError(f"cannot connect to JACK server {servername!r}: {exc}") from exc
        self.target = target
        self.out = self.client.outports.register("out")
        self.inp = self.client.inports.register("in")
        self._signal = np.zeros(0, np.float32)
        self._record = np.zeros(0, np.float32)
        self._pos = 0
        self._done = threading.Event()
        self.client.set_process_callback(self._process)
        self.client.activate()

    @property
    def samplerate(self) -> int:
        return int(self.client.samplerate)

    def _process(self, frames: int) -> None:
        out = self.out.get_array()
        n = max(0, min(frames, len(self._signal) - self._pos))
        out[:n] = self._signal[self._pos : self._pos + n]
        out[n:] = 0.0
        if n:
            self._record[self._pos : self._pos + n] = self.inp.get_array()[:n]
            self._pos += n
            if self._pos >= len(self._signal):
                self._done.set()

    def connect(self) -> None:
        """Replace system capture/playback connections of the target client with the probe.

        The target is the client with ``in_``/``out_`` ports named ``TARGET`` or ``TARGET-NN``: PortAudio
        names its client "PortAudio", and "PortAudio-01" in a second process on the same server (the
        engine's device process, realtime/device_process.py, beside the PortAudio client that listed
        the devices). More than one such client with ports is an error that names them.
        """
        pattern = f"^{re.escape(self.target)}(-[0-9]+)?:"
        clients = sorted({p.name.split(":")[0] for p in self.client.get_ports(pattern + "in_")})
        if len(clients) > 1:
            raise StylehostError(f"more than one JACK client streams ({', '.join(clients)}); name one as the target")
        target = clients[0] if clients else self.target
        ins = self.client.get_ports(f"^{re.escape(target)}:in_")
        outs = self.client.get_ports(f"^{re.escape(target)}:out_")
        if not ins or not outs:
            raise StylehostError(f"no JACK ports named {self.target}:in_*/out_*; is the stream open?")
        for port in ins:
            for other in self.client.get_all_connections(port):
                self.client.disconnect(other, port)
            self.client.connect(self.out, port)
        for port in outs:
            for other in self.client.get_all_connections(port):
                self.client.disconnect(port, other)
        self.client.connect(outs[0], self.inp)

    def play_and_record(self, signal: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Play ``signal`` (mono float32) and return what came back over the same span."""
        self._done.clear()
        self._record = np.zeros(len(signal), np.float32)
        self._pos = len(signal)  # the callback idles until both arrays are in place
        self._signal = np.ascontiguousarray(signal, dtype=np.float32)
        self._pos = 0
        if not self._done.wait(timeout if timeout is not None else play_timeout(len(signal), self.samplerate)):
            raise StylehostError("JACK probe timed out: the server stopped processing")
        return self._record

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()

    def __enter__(self) -> LoopbackProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProbeProcess:
    """A ``LoopbackProbe`` in a child process, for benchmarks.

    Why: the probe's process callback is Python. In the engine's process it competes with the PortAudio
    callback and the worker for the GIL, and a probe callback that is late stalls the whole JACK graph
    (an xrun the engine then reports). A performer's audio source is another program, so the benchmarks
    measure the engine the same way. Same ``connect`` / ``play_and_record`` / ``samplerate`` interface;
    the signal and the recording travel over a pipe.
    """

    def __init__(self, servername: str, target: str = "PortAudio") -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding PortAudio and threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_probe_main, args=(child, servername, target), name="stylehost-probe",
                                 daemon=True)
        self._proc.start()
        child.close()
        self.samplerate = int(self._reply())  # the child's first message: its JACK client is up

    def _call(self, *request: object, timeout: float = 30.0) -> Any:
        self._conn.send(request)
        return self._reply(timeout)

    def _reply(self, timeout: float = 30.0) -> Any:
        if not self._conn.poll(timeout):
            raise StylehostError("the JACK probe process did not answer (is the server still running?)")
        kind, value = self._conn.recv()
        if kind == "error":
            raise StylehostError(value)
        return value

    def connect(self) -> None:
        self._call("connect")

    def play_and_record(self, signal: np.ndarray, timeout: float | None = None) -> np.ndarray:
        wait = timeout if timeout is not None else play_timeout(len(signal), self.samplerate)
        return self._call("play", np.ascontiguousarray(signal, dtype=np.float32), wait, timeout=wait + 10.0)

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=5.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._conn.close()

    def __enter__(self) -> ProbeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _probe_main(conn: Any, servername: str, target: str) -> None:
    """The probe process: answers (kind, value) to each request until 'close' or a closed pipe."""
    try:
        probe = LoopbackProbe(servername, target)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a message
        conn.send(("error", str(exc)))
        return
    conn.send(("ok", probe.samplerate))
    with probe:
        while True:
            try:
                request = conn.recv()
            except EOFError:
                return
            try:
                if request[0] == "close":
                    return
                if request[0] == "connect":
                    probe.connect()
                    conn.send(("ok", None))
                elif request[0] == "play":
                    conn.send(("ok", probe.play_and_record(request[1], request[2])))
            except Exception as exc:  # noqa: BLE001 - reported to the parent as a message
                conn.send(("error", str(exc)))


# A pulse counts as come back when the best match holds at least this fraction of the pulse's own energy
# (a copy at -60 dB). Silence correlates to 0: without this floor, argmax of an all-zero correlation is 0,
# the search window's start, and a lost pulse read as a delay of ``expected - search`` (0 ms in bench latency).
MIN_PULSE_LEVEL = 1e-3


def find_arrivals(recorded: np.ndarray, pulse: np.ndarray, expected: int, search: int) -> float:
    """Sub-sample arrival index of ``pulse`` near ``expected`` (cross-correlation peak, parabolic fit).

    NaN when no pulse came back: the peak holds less than MIN_PULSE_LEVEL of the pulse's energy.
    """
    lo = max(0, expected - search)
    hi = min(len(recorded) - len(pulse), expected + search)
    if hi <= lo:
        raise StylehostError("recording too short to find the pulse")
    seg = recorded[lo : hi + len(pulse)]
    corr = np.correlate(seg, pulse, mode="valid")
    k = int(np.argmax(corr))
    # audit: no-pulse-is-nan
    if not corr[k] >= MIN_PULSE_LEVEL * float(np.dot(pulse, pulse)):  # `not >=`: a NaN peak is no pulse either
        return float("nan")
    if 0 < k < len(corr) - 1:
        y0, y1, y2 = corr[k - 1], corr[k], corr[k + 1]
        denom = y0 - 2 * y1 + y2
        frac = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    else:
        frac = 0.0
    return lo + k + frac
