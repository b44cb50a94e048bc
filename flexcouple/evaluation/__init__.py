"""Evaluation of FLEX and baseline models: metrics, rollouts, reports and figures.

- ``metrics``: field metrics (RFNE, PSNR, SSIM, max-norm error, Pearson correlation), the isotropic
  energy spectrum and its error, ensemble calibration (CRPS, spread-skill, coverage, rank histogram)
  and forecast skill against lead time. numpy only; torch tensors are converted.
- ``rollout``: autoregressive forecast rollouts that feed the ensemble mean back, as in the paper.
- ``sources``: the splits of a data set and each sample's out-of-distribution category.
- ``report``: per-sample records, their exact reduction into grouped reports, comparison tables.
- ``plots``: the figures (field panels, spectra, metrics against lead time, calibration).
- ``evaluate``: the ``flexcouple evaluate`` command (metrics.json, figures, comparison tables).
"""
