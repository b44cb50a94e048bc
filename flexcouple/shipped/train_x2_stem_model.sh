#!/usr/bin/env bash
# The recipe shared by the x2 super-resolution models folded by FLEX's space-to-depth stem
# (flex-c16s2-superres256x2, flex-c24s4-superres256x2): the data of flex-c16-superres256x2, three
# training stages (and optional further ones), the seal, the calibration of the checks. Each model's
# train.sh calls it:
#
#   bash flexcouple/shipped/train_x2_stem_model.sh MODEL SIZE CROP_A [STEPS ...]
#
# MODEL: the shipped folder's name; SIZE: the FLEX preset; CROP_A: stage A's crop (the network sees
# CROP_A / stem, 64^2 for both models); each STEPS (none by default): one more stage (d, e, ...) of
# that many steps with stage C's settings, from the stage before it with a fresh cosine schedule;
# the last stage is the one sealed. Every stage resumes: re-running skips finished trajectories
# and continues each training stage from its last checkpoint; a finished stage (its DONE file) is
# not run again. Wall times are in each stage's training_state.json (wall_s) and the model card.
set -euo pipefail
usage() {
  echo "usage: $0 MODEL SIZE CROP_A [STEPS ...]   (e.g. flex-c24s4-superres256x2 c24s4 256 4000 4000)" >&2
  exit 2
}
[ $# -ge 3 ] || usage
MODEL=$1 SIZE=$2 CROP_A=$3
shift 3
MORE=("$@")
for steps in "${MORE[@]}"; do [[ $steps =~ ^[1-9][0-9]*$ ]] || usage; done
cd "$(dirname "$0")/../.."

FC=${FC:-.venv/bin/flexcouple}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-data/superres256x2}
RUNS=${RUNS:-runs}  # where each stage's run folder goes ($RUNS/$SIZE-a, -b, ...)
A=${A:-$RUNS/$SIZE-a}
B=${B:-$RUNS/$SIZE-b}
C=${C:-$RUNS/$SIZE-c}
SHIPPED=flexcouple/shipped/$MODEL

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

COMMON=(train --data "$DATA" --task superres --model flex --size "$SIZE" --factor 2 --upsample spectral
        --coarse-source both)
# 2. stage A: CROP_A^2 crops
stage "$A" "${COMMON[@]}" --crop "$CROP_A" --batch-size 8 --steps 2500 --warmup 200 --lr 2e-4 --ema-decay 0.998 \
      --checkpoint-every 250 --val-every 1000
# 3. stage B: whole 256^2 fields with the spectral loss, from stage A
stage "$B" "${COMMON[@]}" --crop 256 --batch-size 2 --steps 1000 --warmup 50 --lr 5e-5 --ema-decay 0.995 \
      --spectral-loss 0.2 --checkpoint-every 100 --val-every 250 --init "$A"
# 3b. stage C: the spectral term on the 2-step sample itself, 16 bands per octave, from stage B
STAGE_C=(--crop 256 --batch-size 2 --warmup 50 --lr 3e-5 --ema-decay 0.995 --spectral-loss 0.3 --spectral-bands 16
         --spectral-steps 2 --checkpoint-every 100)
stage "$C" "${COMMON[@]}" "${STAGE_C[@]}" --steps 1500 --val-every 250 --init "$B"
LAST=$C
# 3c. further stages (one per STEPS): stage C's settings, each from the one before, a fresh cosine schedule
STAGES=(d e f g h i j k)
if [ ${#MORE[@]} -gt ${#STAGES[@]} ]; then echo "at most ${#STAGES[@]} further stages" >&2; exit 2; fi
for i in "${!MORE[@]}"; do
  dir=$RUNS/$SIZE-${STAGES[$i]}
  stage "$dir" "${COMMON[@]}" "${STAGE_C[@]}" --steps "${MORE[$i]}" --val-every 500 --init "$LAST"
  LAST=$dir
done

# 4. seal: the EMA weights and config only (no training state)
"$PY" -c "import sys; from flexcouple.checkpoint import export_weights; print('sealed', export_weights(*sys.argv[1:]))" \
    "$LAST" "$SHIPPED"

# 5. calibrate the drift checks on held-out in-distribution runs (and the adversaries)
"$FC" calibrate --config benchmarks/presets/superres256x2.toml --checkpoint "$SHIPPED" --reynolds 500 700 1400 \
    --seeds 7101 7102 --holdout-seeds 7201 7202 --out "$SHIPPED/calibration.json" --overwrite
