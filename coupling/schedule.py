"""A hybrid run's clock: ticks, which ticks are outputs, and in ``leapfrog`` which are jumps.

Time advances in ticks of ``dt_tick``: the output interval (``pure``, ``superres``), or the surrogate's
lead time (``leapfrog``, where the output interval must be a whole number of lead times). A leapfrog
run does ``warmup`` solver ticks, then cycles of ``stretch`` solver ticks, ``jumps`` surrogate jumps and
``relax`` solver ticks. The schedule is a function of the tick index alone, so a resumed run
reproduces the uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    mode: str
    dt_tick: float
    output_every: int       # ticks per output
    n_ticks: int
    history_length: int = 1  # leapfrog: the states a jump forecasts from
    warmup: int = 0
    stretch: int = 0
    jumps: int = 0
    relax: int = 0

    @classmethod
    def of(cls, config, surrogate=None) -> "Schedule":
        """The schedule of ``config`` (a HybridConfig) with ``surrogate`` (its lead time and history)."""
        if config.mode != "leapfrog":
            return cls(config.mode, config.output_interval, 1, int(round(config.t_end / config.output_interval)))
        dt = float(surrogate.lead_time)
        ratio = config.output_interval / dt
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio):
            raise ValueError(f"in leapfrog mode output_interval ({config.output_interval}) must be a multiple of "
                             f"the surrogate's lead time ({dt})")
        history = int(getattr(surrogate, "history_length", 1))
        if config.stretch < history - 1:
            raise ValueError(f"stretch ({config.stretch}) must be >= history_length - 1 = {history - 1} "
                             "so the solver fills the surrogate's history")
        return cls("leapfrog", dt, int(round(ratio)), int(round(config.t_end / dt)), history, config.warmup,
                   config.stretch, config.jumps, config.relax)

    def kind(self, j: int) -> str:
        """'solver', 'jump' or 'relax' for tick j >= 1."""
        i = j - 1 - self.warmup
        if self.mode != "leapfrog" or i < 0:
            return "solver"
        pos = i % (self.stretch + self.jumps + self.relax)
        if pos < self.stretch:
            return "solver"
        return "jump" if pos < self.stretch + self.jumps else "relax"

    def is_output(self, j: int) -> bool:
        return j % self.output_every == 0
