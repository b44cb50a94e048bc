#!/usr/bin/env bash
# Reproduce the x2 super-resolution model flexcouple/shipped/flex-c16s2-superres256x2/ from nothing:
# the same data and stages as flex-c16-superres256x2/train.sh, with the c16s2 preset (c16 on the
# field folded 2x2 space-to-depth, 3.6x cheaper a call), stage A on 128^2 crops (64^2 inside the
# network, as c16's 64^2 crops were) and the same losses. Wall times are in MODEL_CARD.md.
#
#   bash flexcouple/shipped/flex-c16s2-superres256x2/train.sh     # from anywhere, after `make install`
#
# Every stage resumes: re-running skips finished trajectories and continues each training stage from
# its last checkpoint; a finished stage (its DONE file) is not run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."

FC=${FC:-.venv/bin/flexcouple}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/superres256x2}
A=${A:-runs/c16s2-a}
B=${B:-runs/c16s2-b}
C=${C:-runs/c16s2-c}
EVAL=${EVAL:-runs/eval-c16s2}
SHIPPED=flexcouple/shipped/flex-c16s2-superres256x2

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

COMMON=(train --data "$DATA" --task superres --model flex --size c16s2 --factor 2 --upsample spectral
        --coarse-source both)
# 2. stage A: 128^2 crops
stage "$A" "${COMMON[@]}" --crop 128 --batch-size 8 --steps 2500 --warmup 200 --lr 2e-4 --ema-decay 0.998 \
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
