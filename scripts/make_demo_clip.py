"""Make the bundled demo input: a plucked-string melody (Karplus-Strong) no SoundFont contains.

The melody is written here, not taken from the training corpus, and the instrument is a physical
model, so the demo exercises what the live engine meets: a source that is none of the 8 styles.
Run: python scripts/make_demo_clip.py  (writes demo/plucked_melody.flac, 48 kHz mono, seed 7)
"""

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 48000
# (MIDI note, beats) at 100 bpm: a short original tune in D major with a couple of repeated notes.
MELODY = [(62, 1), (66, 1), (69, 1), (74, 2), (73, 0.5), (71, 0.5), (69, 1), (66, 1), (67, 1), (69, 2),
          (71, 1), (69, 1), (67, 1), (66, 1), (64, 1.5), (62, 0.5), (64, 1), (66, 3)]


def pluck(freq: float, seconds: float, rng: np.random.Generator, velocity: float) -> np.ndarray:
    """Karplus-Strong string: a noise burst circulating in a damped delay line."""
    period = int(round(SR / freq))
    n = int(seconds * SR)
    line = rng.uniform(-1, 1, period) * velocity
    out = np.empty(n)
    for i in range(n):
        out[i] = line[i % period]
        line[i % period] = 0.996 * 0.5 * (line[i % period] + line[(i + 1) % period])
    return out


def notes() -> list[tuple[int, float, float]]:
    """(MIDI note, start s, end s) of the melody as ``main`` lays it out: the demo's score, so a check can
    render the same notes through a real instrument (benchmarks/demo_check.py)."""
    beat, t, out = 60.0 / 100.0, int(0.25 * SR), []
    for note, beats in MELODY:
        n = int(beats * beat * SR)
        out.append((note, t / SR, (t + n) / SR))
        t += n
    return out


def main() -> None:
    rng = np.random.default_rng(7)
    beat = 60.0 / 100.0
    total = int((sum(b for _, b in MELODY) * beat + 1.5) * SR)
    audio = np.zeros(total)
    t = int(0.25 * SR)
    for note, beats in MELODY:
        dur = beats * beat
        freq = 440.0 * 2 ** ((note - 69) / 12)
        tone = pluck(freq, dur + 0.6, rng, rng.uniform(0.6, 1.0))
        tone[int(dur * SR):] *= np.linspace(1, 0, len(tone) - int(dur * SR))  # damp at the next note
        audio[t : t + len(tone)] += tone[: total - t]
        t += int(dur * SR)
    audio += 10 ** (-70 / 20) * rng.standard_normal(total)  # a little room noise, as a real input has
    audio *= 0.5 / np.abs(audio).max()
    out = Path(__file__).resolve().parent.parent / "demo" / "plucked_melody.flac"
    sf.write(out, audio.astype(np.float32), SR, subtype="PCM_16")
    print(f"wrote {out} ({total / SR:.1f} s, {SR} Hz)")


if __name__ == "__main__":
    main()
