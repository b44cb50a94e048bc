#!/usr/bin/env bash
# Reproduce the shipped default model flexcouple/shipped/flex-tiny-kolmogorov256/ from nothing:
# generate its data, train it, seal the checkpoint into the package, evaluate it.
# These are the exact commands that made the shipped files (see MODEL_CARD.md for the wall times:
# about 48 min of data generation and 70 min of training on one core of a 2-core CPU machine).
#
#   bash flexcouple/shipped/train_default_model.sh            # from the repository root, after `make install`
#
# Every stage resumes: re-running the script skips finished trajectories and continues training from
# its last checkpoint (every 100 steps). One thread per job (the build machine has 2 shared cores;
# threaded FFTW and torch on busy cores were slower, not faster).
set -euo pipefail
cd "$(dirname "$0")/../.."

export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
FC=${FC:-.venv/bin/flexcouple}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/hybrid256}
RUN=${RUN:-runs/hybrid256}
EVAL=${EVAL:-runs/hybrid256-eval}
SHIPPED=flexcouple/shipped/flex-tiny-kolmogorov256
STEPS=${STEPS:-1200}

# 1. data: Kolmogorov flow 256^2, Re 500/700/1400 (train 3, valid 1, test 1 trajectories each) and the
#    unseen Re 1000 (OOD set re_1000); 24 snapshots 0.5 apart after a spin-up of 8
"$FC" generate --config flexcouple/presets/hybrid256.toml --out "$DATA"

# 2. training: one multi-task FLEX tiny, x4 super-resolution (spectral coarsening and upsampling) and
#    forecasting one interval (0.5 time units) ahead from two past snapshots, on 64^2 crops
TRAIN=(train --data "$DATA" --task both --model flex --size tiny --crop 64 --factor 4 --upsample spectral
       --lead 1 --batch-size 8 --steps "$STEPS" --warmup 100 --lr 2e-4 --ema-decay 0.995
       --checkpoint-every 100 --val-every 500 --out "$RUN")
if [ -f "$RUN/training_state.json" ]; then "$FC" "${TRAIN[@]}" --resume; else "$FC" "${TRAIN[@]}"; fi

# 3. seal: the EMA weights and config only (no training state), re-saved so config.json is sealed in
#    the current checkpoint format
"$PY" -c "import sys; from flexcouple.checkpoint import export_weights; print('sealed', export_weights(*sys.argv[1:]))" \
    "$RUN" "$SHIPPED"

# 4. evaluation on full 256^2 fields: the test split (Re 500/700/1400, unseen seeds) and the unseen
#    Re 1000; super-resolution against spectral and bicubic interpolation, forecasting (autoregressive
#    rollouts of 4 leads = 2 time units) against persistence; K = 4 ensemble members (5 + 7 minutes)
"$FC" evaluate --checkpoint "$SHIPPED" spectral bicubic --label flex-tiny spectral bicubic --data "$DATA" \
    --task superres --ensemble 4 --max-samples 6 --batch-size 1 --out "$EVAL/superres" --overwrite --no-progress
"$FC" evaluate --checkpoint "$SHIPPED" persistence --label flex-tiny persistence --data "$DATA" \
    --task forecast --ensemble 4 --horizon 4 --max-samples 4 --batch-size 1 --out "$EVAL/forecast" --overwrite --no-progress
cp "$EVAL/superres/comparison.md" "$SHIPPED/evaluation_superres.md"
cp "$EVAL/forecast/comparison.md" "$SHIPPED/evaluation_forecast.md"
