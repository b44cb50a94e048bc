#!/usr/bin/env bash
# Reproduce flexcouple/shipped/flex-c24s4-superres256x2/ from nothing: the c24s4 preset (c24 on the
# field folded 4x4 space-to-depth, so its top level is 64^2), stage A on whole 256^2 fields (64^2
# inside the network, as c16s2's 128^2 crops were), then stages D-H: 4000, 2000, 2000, 2000 and 2000 more steps
# with stage C's settings, by the recipe the stem-folded x2 models share (data, stages A/B/C and further ones,
# seal, calibration: ../train_x2_stem_model.sh). Wall times are in MODEL_CARD.md.
#
#   bash flexcouple/shipped/flex-c24s4-superres256x2/train.sh     # from anywhere, after `make install`
exec bash "$(dirname "$0")/../train_x2_stem_model.sh" flex-c24s4-superres256x2 c24s4 256 4000 2000 2000 2000 2000 4000
