"""Smoke tests: every figure is written as a non-empty PNG, and bad input is refused."""
import numpy as np
import pytest

from flexcouple.evaluation import metrics as M
from flexcouple.evaluation import plots as P

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return data[:8] == PNG_MAGIC and len(data) > 2000


def test_every_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(32, 32))
    members = truth + 0.3 * rng.normal(size=(4, 32, 32))
    coarse = truth[::4, ::4]
    paths = [
        P.plot_fields(tmp_path / "fields.png", truth, members.mean(0), condition=coarse, std=members.std(0),
                      title="Re 4000"),
        P.plot_fields(tmp_path / "sub" / "fields_no_std.png", truth, members.mean(0)),
        P.plot_spectra(tmp_path / "spectra.png", {"truth": M.energy_spectrum(truth),
                                                  "model": M.energy_spectrum(members[0])}, k_max=16),
        P.plot_against_lead(tmp_path / "lead.png", [1, 2, 3],
                            {"flex": {"rfne": [0.1, 0.2, 0.3], "correlation": [0.99, 0.97, 0.9]},
                             "persistence": {"rfne": [0.2, 0.4, 0.6], "correlation": [0.98, 0.9, 0.8]}}),
        P.plot_calibration(tmp_path / "calibration.png", members.std(0, ddof=1), np.abs(members.mean(0) - truth),
                           M.rank_histogram(members, truth)),
        P.plot_metric_bars(tmp_path / "bars.png", {"flex": {"2000": 0.1, "8000": 0.2}, "bicubic": {"2000": 0.3}},
                           "rfne"),
    ]
    for p in paths:
        assert p.exists() and _is_png(p), p


def test_lead_plot_refuses_unknown_metrics(tmp_path):
    with pytest.raises(ValueError, match="no metric"):
        P.plot_against_lead(tmp_path / "x.png", [1], {"m": {"rfne": [0.1]}}, metrics=("nope",))
