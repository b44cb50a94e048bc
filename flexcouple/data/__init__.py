"""Data for FLEX: coarsening/upsampling, data-set generation with the solver (HDF5 in the Well's layout),
and the torch data sets for super-resolution and forecasting.

Submodules are imported on use so that ``import flexcouple.data`` stays cheap (no h5py, no solver):
``coarsen`` (numpy/torch resampling), ``config`` (data-set configs and presets), ``well`` (HDF5
writer/reader/validator), ``generate`` (the ``flexcouple generate`` command), ``datasets`` (torch).
"""
from flexcouple.data.coarsen import coarsen, spectral_resample, upsample

__all__ = ["coarsen", "upsample", "spectral_resample"]
