"""Issue 15 check: does shaping a harmonic excitation (diffusion/excitation.py) beat shaping the source?

    python -m benchmarks.timbre_excitation 1      # N test clips (each x 4 targets x 4 sources), ~10 min per clip

For test clips (the same pick as benchmarks/timbre.py), sources no SoundFont has (whistle-like sine with
vibrato, Karplus-Strong pluck, formant voice) and one SoundFont source (guitar), to violin, cello, flute
and trumpet: harmonic distance (diffusion/harmonics.py) and log-mel distance to the true FluidR3 target of
- today: the shipped model + GuideDiff stage on the source frames (what `stylehost render` plays);
- exc+stage / exc+srcphase: the same denoiser, the stage (or source-phase gain) shaping the excitation;
- oracle src+stage / oracle exc+stage: the target's own log-mel through the stage, on source / excitation;
- unchanged: the source.
Prints one line per (clip, target, source) and the means; results in benchmarks/results/timbre_excitation.txt.
"""
# ruff: noqa: E402, E501, E702, E731  (an experiment script, to fold into benchmarks/timbre.py)
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
from benchmarks.timbre import TimbreConfig, _read, clip_notes, load_model, pick_clips
from diffusion.data import load_manifest
from diffusion.excitation import ExcitationConfig, excite
from diffusion.guide import restore_clip
from diffusion.harmonics import harmonic_distance
from diffusion.metrics import log_mel_distance
from diffusion.resynth import PhaseGuidedResynth
from diffusion.stream import stream_audio
from diffusion.synth_sources import SOURCES

data = Path("data/paired"); man = load_manifest(data); sr = man["sample_rate"]
recs = [c for c in man["clips"] if c["split"] == "test"]
rng = np.random.default_rng(0); cand = [recs[int(i)] for i in rng.permutation(len(recs))[:12]]
notes = clip_notes(man, data, cand); chosen = pick_clips(cand, notes, sr, TimbreConfig(clips=int(sys.argv[1])))
by = {c["id"]: c for c in cand}
den, st, stage = load_model(Path("models/default"))
res = PhaseGuidedResynth(den.cfg.spectrogram); tr = res.transform
exc = ExcitationConfig()
rows = {}
for cid in chosen:
    rec = by[cid]
    srcs = {n: SOURCES[n](notes[cid], rec["samples"], sr, 0) for n in ("sine_vibrato", "pluck", "voice")}
    srcs["guitar"] = _read(data, rec["audio"]["fluidr3"]["guitar"])
    for tgt in ("violin", "cello", "flute", "trumpet"):
        target = _read(data, rec["audio"]["fluidr3"][tgt])
        with torch.no_grad():
            oracle = tr.log_mel(torch.from_numpy(target)[None])[0]
        for name, a in srcs.items():
            e = excite(a, sr, 96, exc)
            with torch.no_grad():
                outs = {
                  "today": stream_audio(den, res, a, den.style_vector({tgt: 1.0}), st, stage),
                  "exc+stage": stream_audio(den, res, a, den.style_vector({tgt: 1.0}), st, stage, excitation=exc),
                  "exc+srcphase": stream_audio(den, res, a, den.style_vector({tgt: 1.0}), st, None, excitation=exc),
                  "oracle src+stage": restore_clip(stage, torch.from_numpy(a.astype(np.float32))[None], oracle[None])[0].numpy(),
                  "oracle exc+stage": restore_clip(stage, torch.from_numpy(e)[None], oracle[None])[0].numpy(),
                  "unchanged": a,
                }
            for sysname, o in outs.items():
                rows.setdefault((sysname, name), []).append((harmonic_distance(o, target, notes[cid], sr), log_mel_distance(o, target, tr)))
            print(cid, tgt, name, {k: round(v[-1][0], 2) for (k, n), v in rows.items() if n == name}, flush=True)
print()
for (s, n), v in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    v = np.array(v); print(f"{n:14s} {s:18s} harm {v[:,0].mean():6.2f}  logmel {v[:,1].mean():6.2f}")
