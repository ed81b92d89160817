#!/usr/bin/env bash
# The whole benchmark set, one command, on a QUIET machine (nothing else running: figures taken under load
# are not publishable, and RESULTS.md shows the load average each file was measured at).
#
#   bash scripts/benchmarks.sh            # ~35 min on CPU (+ quality): search, latency, sweep, quality, soak, report
#   bash scripts/benchmarks.sh --quick    # seconds per step, into /tmp: checks the script, publishes nothing
#
# Steps: 1. smallest block size with zero dropouts over 60 s (64, 128, 256, ...); 2. end-to-end latency for
# 10 minutes at that block size (the CPU target: <= 50 ms, zero dropouts, rtf < 0.5); 3. compute vs block
# size and steps (30 s per point); 4. on an NVIDIA GPU: the same latency through TensorRT / CUDA and
# `stylehost bench gpu`; 5. quality tables on the test split (when a trained model exists); 6. the 10-minute
# live soak (benchmarks/soak.py); 7. benchmarks/RESULTS.md and plots from every JSON in the results folder.
# Environment: MODEL (bundle; default models/default, else the DSP passthrough), BACKEND (default cpu),
# RESULTS (default benchmarks/results), BLOCKSIZE (skip the search and use this one), QUALITY=0 / SOAK=0 (skip step 5 / 6).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stylehost=.venv/bin/stylehost

quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
if (( quick )); then
    results=${RESULTS:-$(mktemp -d)/results}; long=2; find=1; sweep=1; max_block=128; soak=0.1
    quality_args=(--clips-per-pair 1 --steps 1 --repeats 5)
else
    results=${RESULTS:-benchmarks/results}; long=600; find=60; sweep=30; max_block=4096; soak=10
    quality_args=()
fi
report=$(dirname "$results")/RESULTS.md
backend=${BACKEND:-cpu}
model_args=()
[[ -n "${MODEL:-}" ]] && model_args=(--model "$MODEL")
mkdir -p "$results"

cores=$(nproc)
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > c / 2) }'; then
    echo "warning: load average $load on $cores cores: something else is running; these figures are not publishable"
fi

echo "== 1/7 smallest block size with zero dropouts over ${find} s ($backend)"
if [[ -n "${BLOCKSIZE:-}" ]]; then
    block=$BLOCKSIZE
else
    $stylehost bench latency "${model_args[@]}" --backend "$backend" --find-blocksize --seconds "$find" \
        --max-blocksize "$max_block" --json "$results/find_blocksize.json"
    block=$(.venv/bin/python -c "import json, sys; s = json.load(open(sys.argv[1]))['find_blocksize'][0]; \
print(s['smallest_blocksize'] or 256)" "$results/find_blocksize.json")
fi

echo "== 2/7 end-to-end latency for ${long} s at block $block ($backend)"
$stylehost bench latency "${model_args[@]}" --backend "$backend" --blocksize "$block" --seconds "$long" \
    --json "$results/latency.json"

echo "== 3/7 compute vs block size and steps (${sweep} s per point)"
steps_args=()
if [[ -n "${MODEL:-}" || -f models/default/manifest.json ]]; then
    steps_args=(--steps 1,2,4)  # the passthrough has no sampler: only block sizes for it
fi
# A point whose pulses do not come back (too many steps for this CPU) is a failed measurement: its JSON
# says so and the command exits 2; the sweep goes on to the next steps.
$stylehost bench latency "${model_args[@]}" --backend "$backend" --blocksize 128,256,512 "${steps_args[@]}" \
    --seconds "$sweep" --json "$results/latency_sweep.json" || echo "   (some points failed: see the JSON's error fields)"

echo "== 4/7 NVIDIA GPU"
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    # Backends that cannot run here are recorded as skipped with the reason; the others are measured.
    $stylehost bench latency "${model_args[@]}" --backend tensorrt,ort-tensorrt,cuda --blocksize 64,128,256 \
        --seconds "$(( quick ? 2 : 60 ))" --json "$results/latency_gpu.json" || echo "GPU latency: no GPU backend ran"
    $stylehost bench gpu --json "$results/gpu_check.json" || echo "GPU check failed (see above)"
else
    echo "no NVIDIA GPU (nvidia-smi): skipped"
fi

echo "== 5/7 quality on the test split"
if [[ "${QUALITY:-1}" == 0 ]]; then
    echo "QUALITY=0: skipped"
elif [[ (-f runs/teacher/model.pt || -f models/teacher/model.pt) && -f data/paired/manifest.json ]]; then
    $stylehost bench quality "${quality_args[@]}" --out "$results"
else
    echo "no teacher (runs/teacher/model.pt, models/teacher/model.pt) or dataset (data/paired): skipped;"
    echo "see docs/teacher.md (\`stylehost data render\`, \`stylehost train\`)"
fi

echo "== 6/7 soak: memory, latency and dropouts over ${soak} min of live streaming (benchmarks/soak.py)"
if [[ "${SOAK:-1}" == 0 ]]; then
    echo "SOAK=0: skipped"
else
    soak_model=${MODEL:-}
    [[ -z "$soak_model" && -f models/default/manifest.json ]] && soak_model=default
    .venv/bin/python -m benchmarks.soak --minutes "$soak" --model "${soak_model:-passthrough}" --json "$results/soak.json"
fi

echo "== 7/7 report"
$stylehost bench report --results "$results" --out "$report"
