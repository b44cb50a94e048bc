#!/usr/bin/env bash
# Reproduce the x2 super-resolution model flexcouple/shipped/flex-c24s4-superres256x2/ from nothing:
# the same data, stages and losses as flex-c16s2-superres256x2/train.sh, with the c24s4 preset (c24
# on the field folded 4x4 space-to-depth, so its top level is 64^2) and stage A on whole 256^2 fields
# (64^2 inside the network, as c16s2's 128^2 crops were). Then its calibration. Wall times are
# recorded in each stage's training_state.json (wall_s) and quoted in MODEL_CARD.md.
#
#   bash flexcouple/shipped/flex-c24s4-superres256x2/train.sh     # from anywhere, after `make install`
#
# Every stage resumes: re-running skips finished trajectories and continues each training stage from
# its last checkpoint; a finished stage (its DONE file) is not run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."

FC=${FC:-.venv/bin/flexcouple}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/superres256x2}
A=${A:-runs/c24s4-a}
B=${B:-runs/c24s4-b}
C=${C:-runs/c24s4-c}
EVAL=${EVAL:-runs/eval-c24s4}
SHIPPED=flexcouple/shipped/flex-c24s4-superres256x2

stage() {  # stage DIR ARGS...: run (or resume) one training stage unless it is done
  local dir=$1; shift
  if [ ! -f "$dir/DONE" ]; then
    if [ -f "$dir/training_state.json" ]; then "$FC" "$@" --out "$dir" --resume; else "$FC" "$@" --out "$dir"; fi
    touch "$dir/DONE"
  fi
}

# 1. data (shared with flex-c16-superres256x2): Kolmogorov flow 256^2, Re 500/700/1400, coarse-solver
#    states; a complete data set is only re-checked
.venv/bin/mpiexec -n 2 "$FC" generate --preset superres256x2 --out "$DATA"

COMMON=(train --data "$DATA" --task superres --model flex --size c24s4 --factor 2 --upsample spectral
        --coarse-source both)
# 2. stage A: whole 256^2 fields (64^2 inside the network)
stage "$A" "${COMMON[@]}" --crop 256 --batch-size 8 --steps 2500 --warmup 200 --lr 2e-4 --ema-decay 0.998 \
      --checkpoint-every 250 --val-every 1000
# 3. stage B: whole 256^2 fields with the spectral loss, from stage A
stage "$B" "${COMMON[@]}" --crop 256 --batch-size 2 --steps 1000 --warmup 50 --lr 5e-5 --ema-decay 0.995 \
      --spectral-loss 0.2 --checkpoint-every 100 --val-every 250 --init "$A"
# 3b. stage C: the spectral term on the 2-step sample itself, 16 bands per octave, from stage B
stage "$C" "${COMMON[@]}" --crop 256 --batch-size 2 --steps 1500 --warmup 50 --lr 3e-5 --ema-decay 0.995 \
      --spectral-loss 0.3 --spectral-bands 16 --spectral-steps 2 --checkpoint-every 100 --val-every 250 --init "$B"

# 4. seal: the EMA weights and config only (no training state)
"$PY" -c "import sys; from flexcouple.checkpoint import export_weights; print('sealed', export_weights(*sys.argv[1:]))" \
    "$C" "$SHIPPED"

# 5. calibrate the drift checks on held-out in-distribution runs (and the adversaries)
"$FC" calibrate --config benchmarks/presets/superres256x2.toml --checkpoint "$SHIPPED" --reynolds 500 700 1400 \
    --seeds 7101 7102 --holdout-seeds 7201 7202 --out "$SHIPPED/calibration.json" --overwrite
