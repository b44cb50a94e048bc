"""In-process coupling of the pseudo-spectral solver with FLEX (super-resolution and leapfrog forecasts)."""
