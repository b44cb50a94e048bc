#!/usr/bin/env bash
# Reproduce flexcouple/shipped/flex-c16s2-superres256x2/ from nothing: the c16s2 preset (c16 on the
# field folded 2x2 space-to-depth, 3.6x cheaper a call than c16), stage A on 128^2 crops (64^2 inside
# the network, as c16's 64^2 crops were), by the recipe the stem-folded x2 models share (data,
# stages A/B/C, seal, calibration: ../train_x2_stem_model.sh). Wall times are in MODEL_CARD.md.
#
#   bash flexcouple/shipped/flex-c16s2-superres256x2/train.sh     # from anywhere, after `make install`
exec bash "$(dirname "$0")/../train_x2_stem_model.sh" flex-c16s2-superres256x2 c16s2 128
