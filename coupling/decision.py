"""What happened to one surrogate call (:class:`Decision`), the run's tally of them (:class:`Tally`), and
the rule that suspends a surrogate after too many rejections in a row (:class:`Suspension`).

A decision is made on rank 0 (where the checks run), broadcast without the prediction, and logged as
one line of ``decisions.jsonl`` (:meth:`Decision.entry`). Its ``reason`` says why a call was not
accepted: ``"suspended"`` (not called), ``"check_failed"``, or how the call itself failed
(``coupling.calls``: ``"exception"``, ``"timeout"``, ``"wrong_output"``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# where a tick's output comes from when the surrogate's answer is not used
FALLBACK = {"superres": "interpolation", "forecast": "solver"}
SUSPENDED = "suspended"
CHECK_FAILED = "check_failed"


@dataclass
class Decision:
    tick: int
    time: float
    task: str                              # "superres" or "forecast"
    called: bool = False
    call: int | None = None                # the call's index in the run (seeds its sampling)
    accepted: bool = False
    reason: str | None = None              # why not accepted (None when accepted)
    checks: list = field(default_factory=list)      # each check's result (CheckResult.as_dict())
    failed_checks: list | None = None      # the checks that failed; None where none ran
    error: str | None = None               # the call's failure, where it failed
    wall: dict | None = None               # seconds: surrogate_s, comm_s, checks_s
    suspended_until_tick: int | None = None  # this rejection started a suspension until that tick
    reanchored_to: float | None = None     # superres: the coarse run was re-anchored, now at this time
    prediction: object = field(default=None, repr=False, compare=False)  # rank 0, accepted: the Prediction

    def __post_init__(self):
        if self.task not in FALLBACK:
            raise ValueError(f"a decision's task is one of {sorted(FALLBACK)}, got {self.task!r}")

    @property
    def source(self) -> str:
        """What the tick's output is: the surrogate's answer, or the mode's fallback."""
        return "surrogate" if self.accepted else FALLBACK[self.task]

    @classmethod
    def suspended(cls, tick: int, time: float, task: str) -> "Decision":
        return cls(tick, time, task, reason=SUSPENDED)

    def entry(self) -> dict:
        """The decision's line of the log (JSON; optional fields only where they apply)."""
        out = {"tick": self.tick, "time": self.time, "task": self.task, "called": self.called, "call": self.call,
               "accepted": self.accepted, "reason": self.reason, "checks": self.checks, "source": self.source}
        for key in ("failed_checks", "error", "wall", "suspended_until_tick", "reanchored_to"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class Tally:
    """Decisions counted: accepted, rejected by reason, and ticks the surrogate was suspended."""

    accepted: int = 0
    rejected: dict = field(default_factory=dict)
    suspended: int = 0

    def add(self, decision: Decision) -> None:
        if decision.reason == SUSPENDED:
            self.suspended += 1
        elif decision.accepted:
            self.accepted += 1
        else:
            self.rejected[decision.reason] = self.rejected.get(decision.reason, 0) + 1

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def to_json(self) -> dict:
        return {"accepted": self.accepted, "rejected": dict(self.rejected), "suspended": self.suspended}

    @classmethod
    def from_json(cls, d: dict) -> "Tally":
        """Also reads the flat layout run states had before (``rejected_<reason>`` keys), so a run
        started with it resumes with its counts."""
        rejected = {str(k): int(v) for k, v in d.get("rejected", {}).items()}
        rejected.update({k[len("rejected_"):]: int(v) for k, v in d.items() if k.startswith("rejected_")})
        return cls(int(d.get("accepted", 0)), rejected, int(d.get("suspended", 0)))


@dataclass
class Suspension:
    """After ``max_rejections`` rejections in a row the surrogate is not called for ``cooldown`` ticks."""

    max_rejections: int
    cooldown: int
    streak: int = 0            # rejections in a row
    until: int = -1            # the last tick of the current suspension

    def active(self, tick: int) -> bool:
        return tick <= self.until

    def record(self, tick: int, accepted: bool) -> int | None:
        """Count a call's outcome at ``tick``; the last suspended tick where a suspension starts."""
        if accepted:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < self.max_rejections:
            return None
        self.until, self.streak = tick + self.cooldown, 0
        return self.until
