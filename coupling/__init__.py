"""In-process coupling of the pseudo-spectral solver with FLEX: super-resolved coarse runs and
leapfrog forecasts, guarded by drift checks, falling back to the solver, harvesting what the
surrogate gets wrong.

>>> from coupling import HybridConfig, HybridSimulation, FlexSurrogate
>>> cfg = HybridConfig(mode="superres", n=256, factor=4, reynolds=1000.0, t_end=5.0, output_interval=0.5)
>>> result = HybridSimulation(cfg, FlexSurrogate.from_checkpoint()).run()
>>> result.fields.shape, result.summary["accepted"]
"""
from coupling.checks import CheckResult, CheckSuite, DriftCheck
from coupling.config import HybridConfig
from coupling.hybrid import HybridResult, HybridSimulation
from coupling.parts import HybridParts
from coupling.surrogates import (FlexSurrogate, InterpolationSurrogate, PersistenceSurrogate, Prediction,
                                 SolverSurrogate, Surrogate, SurrogateMisfit)

__all__ = ["CheckResult", "CheckSuite", "DriftCheck", "FlexSurrogate", "HybridConfig", "HybridParts",
           "HybridResult", "HybridSimulation", "InterpolationSurrogate", "PersistenceSurrogate", "Prediction",
           "SolverSurrogate", "Surrogate", "SurrogateMisfit"]
