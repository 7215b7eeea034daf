#!/usr/bin/env bash
# The paper's ablation on cluttered synthetic scenes (configs/ablation.py), on a CPU:
# every variant with every seed, one run after another, then one table and one plot.
#
#   bash benchmarks/ablation.sh [OUT] [SEEDS] [VARIANTS]   # defaults: ablation_out, "0 1", all
#
# Runs already finished are skipped (a rerun resumes an interrupted one), so the script
# can be stopped and started again, or run twice at once on disjoint VARIANTS (one per
# core) once the data exist.  PIN="taskset -c 1" runs every command on core 1.
set -euo pipefail
OUT=${1:-ablation_out}
SEEDS=${2:-"0 1"}
VARIANTS=${3:-"hrnet hrgan no_equilibrium tw_in_d strong act gan_image gan_joint gan_image_strong gan_joint_strong"}
PY=${PY:-.venv/bin/python}
PIN=${PIN:-}
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$OUT/jax_cache}
CFG=configs/ablation.py
if [ ! -f "$OUT/data/.complete" ]; then
  $PIN $PY launch.py --mode=synth --config=$CFG --config.data.root="$OUT/data"
  touch "$OUT/data/.complete"
fi
runs=()
for seed in $SEEDS; do
  for variant in $VARIANTS; do
    run="$OUT/${variant}_s${seed}"
    runs+=("$run")
    if [ -f "$run/.complete" ]; then echo "done: $run"; continue; fi
    echo "== $variant, seed $seed -> $run ($(date +%H:%M:%S))"
    mkdir -p "$run"
    if ! $PIN $PY launch.py --mode=train --config=$CFG:$variant --config.seed=$seed \
        --config.data.root="$OUT/data/mpii" --workdir="$run" > "$run/train.log" 2>&1; then
      tail -5 "$run/train.log"; exit 1
    fi
    grep -E "^(eval|best)" "$run/train.log" | tail -3 || true
    touch "$run/.complete"
  done
done
$PY launch.py --mode=compare --workdirs="$(IFS=,; echo "${runs[*]}")" --out="$OUT"
