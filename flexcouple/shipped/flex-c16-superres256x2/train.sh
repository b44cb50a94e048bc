#!/usr/bin/env bash
# Reproduce the shipped x2 super-resolution model flexcouple/shipped/flex-c16-superres256x2/ from
# nothing: generate its data, train it in two stages, seal it, calibrate its checks, evaluate it.
# These are the exact commands that made the shipped files (wall times in MODEL_CARD.md: 10 min of
# data generation on 2 ranks, 16 + 11 min of training and 3.5 min of calibration on a 2-core CPU).
#
#   bash flexcouple/shipped/flex-c16-superres256x2/train.sh     # from anywhere, after `make install`
#
# Every stage resumes: re-running skips finished trajectories and continues each training stage from
# its last checkpoint (every 250 / 100 steps); a finished stage (its DONE file) is not run again.
set -euo pipefail
cd "$(dirname "$0")/../../.."

FC=${FC:-.venv/bin/flexcouple}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/superres256x2}
A=${A:-runs/c16-a}
B=${B:-runs/c16-spec}
C=${C:-runs/c16-c}
EVAL=${EVAL:-runs/eval-c16}
SHIPPED=flexcouple/shipped/flex-c16-superres256x2

# 1. data: Kolmogorov flow 256^2, Re 500/700/1400 (train 5, valid 1, test 1 trajectories each), the
#    unseen Re 1000 (OOD set re_1000, 2 trajectories), each fine snapshot paired with the 128^2
#    coarse-solver state a hybrid run re-anchored every 4 outputs would hold (coarse_solver_factors)
.venv/bin/mpiexec -n 2 "$FC" generate --preset superres256x2 --out "$DATA"

# 2. stage A: 64^2 crops, the coarse input drawn from both truncations and coarse-solver states
STAGE_A=(train --data "$DATA" --task superres --model flex --size c16 --crop 64 --factor 2 --upsample spectral
         --coarse-source both --batch-size 8 --steps 4000 --warmup 200 --lr 2e-4 --ema-decay 0.998
         --checkpoint-every 250 --val-every 1000 --out "$A")
if [ ! -f "$A/DONE" ]; then
  if [ -f "$A/training_state.json" ]; then "$FC" "${STAGE_A[@]}" --resume; else "$FC" "${STAGE_A[@]}"; fi
  touch "$A/DONE"
fi

# 3. stage B: whole 256^2 fields with the spectral loss (small scales' band energies), from stage A
STAGE_B=(train --data "$DATA" --task superres --model flex --size c16 --crop 256 --factor 2 --upsample spectral
         --coarse-source both --batch-size 2 --steps 1000 --warmup 50 --lr 5e-5 --ema-decay 0.995
         --spectral-loss 0.2 --checkpoint-every 100 --val-every 250 --init "$A" --out "$B")
if [ ! -f "$B/DONE" ]; then
  if [ -f "$B/training_state.json" ]; then "$FC" "${STAGE_B[@]}" --resume; else "$FC" "${STAGE_B[@]}"; fi
  touch "$B/DONE"
fi

# 3b. stage C: the spectral term on the 2-step sample itself (what a run receives), 16 bands per octave
#     so the top octave's shells are nearly apart (stage B's half-octave bands let a deficit at
#     k 54-63 and a 1.5-3x excess at 75-90 cancel), from stage B
STAGE_C=(train --data "$DATA" --task superres --model flex --size c16 --crop 256 --factor 2 --upsample spectral
         --coarse-source both --batch-size 2 --steps 1500 --warmup 50 --lr 3e-5 --ema-decay 0.995
         --spectral-loss 0.3 --spectral-bands 16 --spectral-steps 2 --checkpoint-every 100 --val-every 250
         --init "$B" --out "$C")
if [ ! -f "$C/DONE" ]; then
  if [ -f "$C/training_state.json" ]; then "$FC" "${STAGE_C[@]}" --resume; else "$FC" "${STAGE_C[@]}"; fi
  touch "$C/DONE"
fi

# 4. seal: the EMA weights and config only (no training state)
"$PY" -c "import sys; from flexcouple.checkpoint import export_weights; print('sealed', export_weights(*sys.argv[1:]))" \
    "$C" "$SHIPPED"

# 5. the checks' calibration on held-out runs (Re 500/700/1400, seeds never used for data), for the
#    regime of benchmarks/presets/superres256x2.toml
"$FC" calibrate --config benchmarks/presets/superres256x2.toml --reynolds 500 700 1400 --seeds 7101 7102 \
    --holdout-seeds 7201 7202 --out "$SHIPPED/calibration.json" --overwrite

# 6. evaluation on full 256^2 fields, K = 4, 8 samples per split: inputs truncated from the truth, and
#    the coarse-solver states a hybrid run feeds it; 1 against 2 sampling steps on the latter
for src in truncation solver; do
  "$FC" evaluate --checkpoint "$SHIPPED" spectral bicubic --label flex-c16 spectral bicubic --data "$DATA" \
      --task superres --out "$EVAL-$src" --coarse-source "$src" --max-samples 8 --ensemble 4 --steps 2 \
      --no-progress --overwrite
  cp "$EVAL-$src/comparison.md" "$SHIPPED/evaluation_$src.md"
done
"$FC" evaluate --checkpoint "$SHIPPED" --label flex-c16-1step --data "$DATA" --task superres \
    --out "$EVAL-solver-1step" --coarse-source solver --max-samples 8 --ensemble 4 --steps 1 \
    --no-progress --overwrite --figures none
