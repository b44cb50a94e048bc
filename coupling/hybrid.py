"""``HybridSimulation``: the solver runs, FLEX (or a stand-in) is called in the loop, checks decide.

Time advances in *ticks* of length ``dt_tick`` (the output interval; in ``leapfrog`` the surrogate's
lead time). Every tick is computed by exactly one source:

- ``pure``: the fine solver, every tick;
- ``superres``: the coarse solver (n / factor) advances one output interval; the surrogate
  reconstructs the fine field; accepted -> the output is its mean (and std), rejected -> the spectral
  interpolation of the coarse state (``source = "interpolation"``). Every ``reanchor_every``
  accepted outputs, a fine-solver burst of ``reanchor_time`` from the accepted field, restricted to
  the coarse grid, becomes the coarse state (the coarse run then carries fine-scale information);
- ``leapfrog``: ticks follow a fixed schedule (:mod:`coupling.schedule`). A jump forecasts one lead
  time from the last ``history_length`` states; accepted, it becomes the solver's state; rejected,
  the solver computes that tick instead, so the trajectory is always valid.

Each call ends in a :class:`coupling.decision.Decision`; after ``max_rejections`` rejections in a row
the surrogate is suspended for ``cooldown`` ticks (:class:`coupling.decision.Suspension`). The
schedule is a function of the tick index, surrogate seeds are functions of the call index, and the
solver restarts its adaptive step at every tick, so a run resumed from its last state (written at
every output into its run directory, :mod:`coupling.rundir`) reproduces the uninterrupted run.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace

import numpy as np

from coupling.calls import call_surrogate, finish_running_calls
from coupling.checks import CheckContext, RunningSpectrum
from coupling.config import HybridConfig
from coupling.decision import Decision, Suspension, Tally
from coupling.parts import HybridParts
from coupling.rundir import run_identity
from solver.resample import coarsen, spectral_upsample

# the counters of _State a run state records
_SCALARS = ("tick", "t_solver", "calls", "accepted_outputs", "decisions", "previous_trusted_tick")
SOURCES = ("solver", "surrogate", "interpolation")


@dataclass
class HybridResult:
    times: np.ndarray
    fields: np.ndarray | None          # (n_out, n, n) on rank 0, None elsewhere
    std: np.ndarray | None             # (n_out, n, n) where an ensemble ran (zeros at solver outputs)
    sources: list[str]
    decisions: list[dict]
    summary: dict
    config: HybridConfig | None = None


@dataclass
class _Timers:
    solver: float = 0.0
    surrogate: float = 0.0
    checks: float = 0.0
    comm: float = 0.0
    io: float = 0.0

    def as_dict(self) -> dict:
        return {k: float(v) for k, v in self.__dict__.items()}


@dataclass
class _State:
    """Everything a resumed run needs (written at every output)."""

    tick: int = 0
    t_solver: float = 0.0                       # time of the solver state (superres: after a re-anchor burst)
    calls: int = 0
    suspension: Suspension = field(default_factory=lambda: Suspension(0, 0))
    accepted_outputs: int = 0                   # superres: for the re-anchoring cadence
    decisions: int = 0
    previous_trusted: np.ndarray | None = None  # superres: last accepted fine output (for the budgets)
    previous_trusted_tick: int = -1
    history: list = field(default_factory=list)  # leapfrog: recent states (global), oldest first
    history_solver: list = field(default_factory=list)
    recent_max: list = field(default_factory=list)
    spectra: list = field(default_factory=list)
    timers: _Timers = field(default_factory=_Timers)
    wall_before: float = 0.0                    # wall time of the run before the last resume
    tally: Tally = field(default_factory=Tally)


class HybridSimulation:
    """A hybrid run of finished parts (:class:`coupling.parts.HybridParts`).

    ``HybridSimulation(config, surrogate=None, comm=None, out=..., harvest=...)`` is
    ``HybridSimulation(HybridParts.from_config(config, surrogate, comm, out=..., harvest=...))``:
    ``surrogate`` any :class:`coupling.Surrogate` (None: built from the config); ``comm`` an mpi4py
    communicator (the solver is slab-decomposed over it; surrogate calls are collective); ``out`` a
    run directory (run state for resume, outputs, ``decisions.jsonl``); ``harvest`` a
    :class:`coupling.harvest.Harvest` (rank 0) or None (the config's)."""

    def __init__(self, parts: HybridParts | HybridConfig, surrogate=None, comm=None, *,
                 out: str | os.PathLike | None = None, progress: bool = False, harvest=None):
        if not isinstance(parts, HybridParts):
            parts = HybridParts.from_config(parts, surrogate, comm, out=out, harvest=harvest)
        elif surrogate is not None or comm is not None or out is not None or harvest is not None:
            raise TypeError("HybridSimulation(parts) takes finished parts: give surrogate, comm, out and harvest "
                            "to HybridParts.from_config instead")
        self.parts = parts
        self.cfg = parts.config
        self.comm, self.rank, self.size = parts.comm, parts.rank, parts.size
        self.out, self.rundir = parts.out, parts.rundir
        self.surrogate, self.schedule, self.sim = parts.surrogate, parts.schedule, parts.solver
        self.harvest, self.harvesting = parts.harvest, parts.harvesting
        self.diag, self.checks = parts.diagnostics, parts.checks
        self.n_solver = self.sim.n
        self.progress = progress and self.rank == 0
        self._fine_sim = None

    @classmethod
    def from_config(cls, config: HybridConfig, surrogate=None, comm=None, *, out: str | os.PathLike | None = None,
                    progress: bool = False, harvest=None) -> "HybridSimulation":
        """The run ``config`` describes, its parts built by :meth:`HybridParts.from_config`."""
        return cls(HybridParts.from_config(config, surrogate, comm, out=out, harvest=harvest), progress=progress)

    # the schedule's numbers, under the names the run uses
    dt_tick = property(lambda self: self.schedule.dt_tick)
    output_every = property(lambda self: self.schedule.output_every)
    history_length = property(lambda self: self.schedule.history_length)
    n_ticks = property(lambda self: self.schedule.n_ticks)

    def tick_kind(self, j: int) -> str:
        """'solver', 'jump' or 'relax' for tick j >= 1 (the schedule; a function of j alone)."""
        return self.schedule.kind(j)

    @property
    def fine_sim(self):
        if self._fine_sim is None:
            from solver import NavierStokes2D
            self._fine_sim = NavierStokes2D(self.cfg.n, comm=self.comm, **self.cfg.solver_kwargs())
        return self._fine_sim

    # ---- collective helpers ------------------------------------------------------------------
    def _bcast(self, obj):
        if self.comm is None:
            return obj
        t0 = time.perf_counter()
        obj = self.comm.bcast(obj, root=0)
        self.state.timers.comm += time.perf_counter() - t0
        return obj

    def _gather(self, local, sim):
        from solver.mpi import gather
        t0 = time.perf_counter()
        out = gather(local, sim, root=0)
        self.state.timers.comm += time.perf_counter() - t0
        return out

    def _scatter(self, global_field, sim):
        from solver.mpi import scatter
        t0 = time.perf_counter()
        if self.comm is None:
            out = np.asarray(global_field, dtype=np.float64)
        else:
            out = scatter(global_field, sim, root=0)
        self.state.timers.comm += time.perf_counter() - t0
        return out

    def _advance(self, sim, w_local, t0: float, t1: float):
        """The solver over [t0, t1]. The equations are autonomous, so every interval is integrated
        as [0, t1 - t0]: the same interval gives the same steps, bit for bit, whenever it occurs."""
        start = time.perf_counter()
        duration = self.dt_tick if abs((t1 - t0) - self.dt_tick) < 1e-12 * max(1.0, t1) else t1 - t0
        out = sim.backend.to_numpy(sim.advance(w_local, duration))
        self.state.timers.solver += time.perf_counter() - start
        return out

    # ---- initial state -----------------------------------------------------------------------
    def initial_field(self) -> np.ndarray:
        """The fine initial field at t = 0 (random field or file, then ``spinup`` of the fine solver)."""
        from solver import from_file, random_field
        cfg = self.cfg
        if cfg.init_file:
            omega = np.asarray(from_file(cfg.init_file, cfg.n), dtype=np.float64)
        else:
            omega = random_field(cfg.n, cfg.init_seed, cfg.init_peak_wavenumber, cfg.init_energy,
                                 boundary=cfg.boundary)
        if cfg.spinup > 0:
            from solver.mpi import local_part
            local = self.fine_sim.advance(local_part(omega, self.fine_sim), cfg.spinup)
            from solver.mpi import gather
            omega = gather(local, self.fine_sim, root=None)
        return omega

    # ---- the run -------------------------------------------------------------------------------
    def run(self, omega0=None) -> HybridResult:
        """Integrate to t_end; resume from ``out`` if it holds a run state of this config.

        Under MPI, an error on one rank ends the whole job (printed once, the communicator
        aborted): the other ranks would otherwise wait forever in the next collective."""
        try:
            return self._run(omega0)
        except Exception as exc:
            from solver.mpi import abort_on_error
            abort_on_error(self.comm, exc, prefix="hybrid run: error")
            raise
        finally:
            finish_running_calls()

    def _run(self, omega0=None) -> HybridResult:
        from solver.mpi import local_part
        cfg = self.cfg
        self.state = _State(suspension=Suspension(cfg.max_rejections, cfg.cooldown))
        self._wall0 = None
        if omega0 is None:
            omega0 = self.initial_field()
        omega0 = self._bcast(np.asarray(omega0, dtype=np.float64) if self.rank == 0 else None) \
            if self.comm is not None else np.asarray(omega0, dtype=np.float64)
        if omega0.shape != (cfg.n, cfg.n):
            raise ValueError(f"the initial field has shape {omega0.shape}, but the run's grid is ({cfg.n}, {cfg.n})")
        from solver.initial_conditions import nonfinite_problem
        problem = nonfinite_problem(omega0)
        if problem:
            raise ValueError(f"the initial field {problem}")
        if hasattr(self.surrogate, "reset"):  # the oracle integrates its own fine run from omega0
            self.surrogate.reset(omega0)
        self.outputs: dict[int, tuple] = {}
        self.decisions: list[dict] = []
        resumed = self._resume()
        if resumed is None:
            w_solver = omega0
            if cfg.mode == "superres":
                w_solver = coarsen(omega0, cfg.factor, "spectral")
            w_local = local_part(w_solver, self.sim)
            self._record_output(0, omega0, None, "solver")
            if cfg.mode != "pure" and self.rank == 0:
                self._trust(omega0)
                if cfg.mode == "leapfrog":
                    self._push_history(omega0, solver=True)
            self._save_state(w_solver)
        else:
            w_local = local_part(resumed, self.sim)
        self._wall0 = time.perf_counter()
        bar = self._progress_bar()
        while self.state.tick < self.n_ticks:
            j = self.state.tick + 1
            if cfg.mode == "pure":
                w_local = self._advance(self.sim, w_local, (j - 1) * self.dt_tick, j * self.dt_tick)
                global_w = self._gather(w_local, self.sim) if self.schedule.is_output(j) else None
                out = (global_w, None, "solver")
            elif cfg.mode == "superres":
                w_local, out = self._superres_tick(j, w_local)
            else:
                w_local, out = self._leapfrog_tick(j, w_local)
            self.state.tick = j
            if self.schedule.is_output(j):
                self._record_output(j // self.output_every, *out)
                t0 = time.perf_counter()
                solver_global = self._gather(w_local, self.sim)
                self._save_state(solver_global)
                self.state.timers.io += time.perf_counter() - t0
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(self._postfix())
        if bar is not None:
            bar.close()
        return self._result(self._elapsed())

    # ---- superres --------------------------------------------------------------------------------
    def _superres_tick(self, j: int, w_local):
        cfg, st = self.cfg, self.state
        t1 = j * self.dt_tick
        coarse_before = self._gather(w_local, self.sim) if self.harvesting else None
        w_local = self._advance(self.sim, w_local, st.t_solver, t1)
        st.t_solver = t1
        coarse = self._gather(w_local, self.sim)
        decision = self._decide_call(j, "superres", coarse, t1, coarse=coarse)
        if decision.accepted:
            fine, std = self._take_prediction(decision)
            st.accepted_outputs += 1
            if (cfg.harvest_audit_every and self.harvest is not None and coarse_before is not None
                    and st.accepted_outputs % cfg.harvest_audit_every == 0):
                # an audit: the fine solver's answer for an accepted call, so a harvest also learns
                # where the checks let the model through (out of distribution: every call)
                self._harvest_superres(j, coarse_before, coarse, replace(decision, reason="audit"))
            if self.rank == 0:
                st.previous_trusted, st.previous_trusted_tick = fine, j
            # re-anchor: a fine burst from the accepted field, restricted onto the coarse grid
            if cfg.reanchor_every and st.accepted_outputs % cfg.reanchor_every == 0 and j < self.n_ticks:
                from solver.mpi import local_part
                fine_all = self._bcast(fine if self.rank == 0 else None)
                burst = self._advance(self.fine_sim, local_part(fine_all, self.fine_sim), t1, t1 + cfg.reanchor_time)
                burst_global = self._gather(burst, self.fine_sim)
                if self.rank == 0:
                    self._trust(burst_global, spectrum_only=True)
                    new_coarse = coarsen(burst_global, cfg.factor, "spectral")
                else:
                    new_coarse = None
                w_local = self._scatter(new_coarse, self.sim)
                st.t_solver = decision.reanchored_to = t1 + cfg.reanchor_time
            self._log(decision)
            return w_local, (fine, std, "surrogate")
        if self.rank == 0:
            fine = np.asarray(spectral_upsample(coarse, cfg.factor))
            if decision.called and self.harvest is not None and coarse_before is not None:
                self._harvest_superres(j, coarse_before, coarse, decision)
        else:
            fine = None
        self._log(decision)
        return w_local, (fine, None, "interpolation")

    def _harvest_superres(self, j: int, coarse_before, coarse, decision: Decision):
        """One pair made as the data set's coarse-solver pairs are (:mod:`flexcouple.data.coarse_runs`):
        the run's coarse state at tick ``j`` (what the model was called on) and the fine solver's answer
        then, integrated over one interval from the best fine field one interval earlier: the accepted
        output of tick j - 1 when there is one (it carries the small scales, which one interval from
        an interpolated field does not regrow), else the coarse state then, interpolated."""
        from solver import NavierStokes2D
        st = self.state
        if not hasattr(self, "_serial_fine"):
            self._serial_fine = NavierStokes2D(self.cfg.n, **self.cfg.solver_kwargs())
        start = time.perf_counter()
        from_output = st.previous_trusted is not None and st.previous_trusted_tick == j - 1
        fine0 = st.previous_trusted if from_output else np.asarray(spectral_upsample(coarse_before, self.cfg.factor))
        answer = np.asarray(self._serial_fine.advance(np.asarray(fine0, dtype=np.float64), self.dt_tick))
        st.timers.solver += time.perf_counter() - start
        self.harvest.add(answer[None], coarse=np.asarray(coarse)[None], reason=decision.reason, call=decision.call,
                         time=j * self.dt_tick, checks=decision.failed_checks or [],
                         start="output" if from_output else "interpolation")

    # ---- leapfrog ---------------------------------------------------------------------------------
    def _leapfrog_tick(self, j: int, w_local):
        st = self.state
        kind = self.tick_kind(j)
        t0, t1 = (j - 1) * self.dt_tick, j * self.dt_tick
        if kind == "jump":
            history = np.stack(st.history[-self.history_length:]) if self.rank == 0 else None
            decision = self._decide_call(j, "forecast", history, t1)
            if decision.accepted:
                new, std = self._take_prediction(decision)
                w_local = self._scatter(new, self.sim)
                if self.rank == 0:
                    self._push_history(new, solver=False)
                    self._trust(new)
                self._log(decision)
                return w_local, (new, std, "surrogate")
        # a solver tick, or a jump that was rejected or suspended: the solver computes it
        w_local = self._advance(self.sim, w_local, t0, t1)
        new = self._gather(w_local, self.sim)
        if self.rank == 0:
            if kind == "jump" and decision.called and self.harvest is not None:
                self.harvest.add(np.concatenate([history, new[None]]), reason=decision.reason,
                                 call=decision.call, time=t1, checks=decision.failed_checks or [])
            # the solver's own statistics feed the adaptive thresholds, but not while it relaxes a
            # surrogate state (nor on the first tick after one, nor in place of a rejected jump)
            self._solver_tick_done(new, record=kind == "solver" and bool(st.history_solver and st.history_solver[-1]))
        if kind == "jump":
            self._log(decision)
        return w_local, (new, None, "solver")

    def _solver_tick_done(self, new, record: bool) -> None:
        st = self.state
        if record and st.history:
            t0 = time.perf_counter()
            self.checks.record_solver(self._context(new, st.history[-1]))
            st.timers.checks += time.perf_counter() - t0
        self._push_history(new, solver=True)
        self._trust(new)

    def _push_history(self, w, solver: bool) -> None:
        st = self.state
        st.history.append(np.asarray(w))
        st.history_solver.append(bool(solver))
        keep = max(self.history_length, 1)
        del st.history[:-keep]
        del st.history_solver[:-keep]

    # ---- checks and decisions ------------------------------------------------------------------------
    def _trust(self, w, spectrum_only: bool = False) -> None:
        """Record a trusted field (a solver state, or an accepted prediction): its max |w| and its
        spectrum join the recent windows the checks compare against. Accepted predictions count too,
        or a later jump of a cycle would be compared with a reference several ticks old."""
        st = self.state
        if not spectrum_only:
            st.recent_max.append(float(np.max(np.abs(w))))
            del st.recent_max[:-self.cfg.window]
        if self.diag is not None:
            t0 = time.perf_counter()
            st.spectra.append(self.diag.spectrum(w))
            del st.spectra[:-8]
            st.timers.checks += time.perf_counter() - t0

    def _context(self, candidate, previous, std=None, coarse=None) -> CheckContext:
        st = self.state
        ref = RunningSpectrum(spectra=list(st.spectra)).value
        return CheckContext(candidate=candidate, previous=previous, dt=self.dt_tick, diagnostics=self.diag, std=std,
                            coarse=coarse, recent_max=max(st.recent_max) if st.recent_max else None,
                            reference_spectrum=ref, forecast=self.cfg.mode == "leapfrog")

    def _decide_call(self, j: int, task: str, inp, t1: float, coarse=None) -> Decision:
        """Call the surrogate (collectively), check on rank 0, broadcast the decision.

        The same decision on every rank; on rank 0 it carries the prediction where it was accepted.
        """
        cfg, st = self.cfg, self.state
        if st.suspension.active(j):
            decision = Decision.suspended(j, t1, task)
            st.tally.add(decision)
            return decision
        call = st.calls
        st.calls += 1
        outcome = call_surrogate(self.surrogate, task, inp, cfg.reynolds, ensemble=cfg.ensemble, call=call,
                                 time_=t1, n=cfg.n, strategy=cfg.strategy, timeout=cfg.timeout, comm=self.comm)
        decision = None
        if self.rank == 0:
            st.timers.surrogate += outcome.surrogate_s
            st.timers.comm += outcome.comm_s
            decision = Decision(j, t1, task, called=True, call=call,
                                wall={"surrogate_s": outcome.surrogate_s, "comm_s": outcome.comm_s})
            if outcome.error is not None:
                decision.reason, decision.error = outcome.reason, outcome.error
            else:
                t0 = time.perf_counter()
                pred = outcome.prediction
                previous = st.history[-1] if task == "forecast" else (
                    st.previous_trusted if st.previous_trusted_tick == j - 1 else None)
                results = self.checks.evaluate(self._context(pred.mean, previous, pred.std, coarse))
                checks_s = time.perf_counter() - t0
                st.timers.checks += checks_s
                decision.failed_checks = [r.name for r in results if not r.passed]
                decision.checks = [r.as_dict() for r in results]
                decision.accepted = not decision.failed_checks
                decision.reason = None if decision.accepted else "check_failed"
                decision.wall["checks_s"] = checks_s
        decision = self._bcast(decision)
        st.tally.add(decision)
        decision.suspended_until_tick = st.suspension.record(j, decision.accepted)
        if decision.accepted and self.rank == 0:
            decision.prediction = outcome.prediction
        return decision

    @staticmethod
    def _take_prediction(decision: Decision):
        """(mean, std) of an accepted decision's prediction on rank 0, (None, None) elsewhere; the
        decision lets go of it (it is not logged)."""
        pred, decision.prediction = decision.prediction, None
        return (None, None) if pred is None else (pred.mean, pred.std)

    # ---- outputs, log, run state ---------------------------------------------------------------------
    def _record_output(self, i: int, w, std, source: str) -> None:
        if self.rank != 0:
            return
        self.outputs[i] = (np.asarray(w, dtype=np.float64), None if std is None else np.asarray(std), source)
        if self.rundir is not None:
            t0 = time.perf_counter()
            self.rundir.write_output(i, *self.outputs[i])
            self.state.timers.io += time.perf_counter() - t0

    def _log(self, decision: Decision) -> None:
        if self.rank != 0:
            return
        entry = decision.entry()
        self.decisions.append(entry)
        self.state.decisions += 1
        if self.rundir is not None:
            t0 = time.perf_counter()
            self.rundir.append_decision(entry)
            self.state.timers.io += time.perf_counter() - t0

    def _save_state(self, solver_global) -> None:
        if self.rundir is None:
            return
        st = self.state
        if self.harvest is not None:
            self.harvest.flush()
        scalars = {k: getattr(st, k) for k in _SCALARS}
        meta = dict(scalars, streak=st.suspension.streak, suspended_until=st.suspension.until,
                    wall_s=self._elapsed(), config_hash=run_identity(self.cfg), model=self._model(),
                    timers=st.timers.as_dict(), counts=st.tally.to_json(), history_solver=st.history_solver,
                    recent_max=st.recent_max, samples=self.checks.state(),
                    harvest_parts=None if self.harvest is None else len(self.harvest.parts))
        arrays = {"solver": np.asarray(solver_global)}
        if st.history:
            arrays["history"] = np.stack(st.history)
        if st.spectra:
            arrays["spectra"] = np.stack(st.spectra)
        if st.previous_trusted is not None:
            arrays["previous_trusted"] = st.previous_trusted
        self.rundir.write_state(meta, arrays)

    def _model(self) -> dict | None:
        """The model a run state records: the surrogate's content digest (a FLEX checkpoint's) and
        where it was loaded from; None for a surrogate without a digest."""
        digest = getattr(self.surrogate, "digest", None)
        return None if digest is None else {"digest": digest, "source": str(getattr(self.surrogate, "source", ""))}

    def _refusal(self, meta: dict) -> str | None:
        """Why the run state ``meta`` in ``out`` cannot be resumed by this run (None: it can)."""
        if meta["config_hash"] != run_identity(self.cfg):
            return (f"{self.out} holds a run of another config (hash {meta['config_hash']}, this config "
                    f"{run_identity(self.cfg)}); use another --out or --overwrite")
        old, new = meta.get("model"), self._model()
        if (old or {}).get("digest") != (new or {}).get("digest"):
            def named(m):
                return (f"the checkpoint {m['source'] or '?'} (content digest {m['digest'][:12]})" if m
                        else "a surrogate without a checkpoint digest")
            return (f"{self.out} holds a run made with {named(old)}, but this run loads {named(new)}: another "
                    "model, and one trajectory must not come from two; resume with the model it started with, "
                    "or use another --out, or --overwrite to start over")
        return None

    def _resume(self):
        """Load the last run state of this config from ``out`` (all ranks); the solver state, or None."""
        if self.out is None:
            return None
        found = None
        if self.rank == 0:
            try:
                stored = self.rundir.read_state()
                refusal = None if stored is None else self._refusal(stored[0])
                found = None if stored is None else ("error", refusal) if refusal else ("ok", *stored)
                # before the broadcast, so that a harvest that cannot be cut stops every rank
                kept = found[1].get("harvest_parts") if found and found[0] == "ok" else None
                if self.harvest is not None and kept is not None:
                    self.harvest.cut(kept)  # the parts flushed after the state
            except ValueError as exc:
                found = ("error", str(exc))
        found = self._bcast(found)
        if found is None:
            return None
        if found[0] == "error":
            raise ValueError(found[1])
        _, meta, arrays = found
        st = self.state
        for k in _SCALARS:
            setattr(st, k, meta[k])
        st.suspension.streak, st.suspension.until = int(meta["streak"]), int(meta["suspended_until"])
        st.timers = _Timers(**meta["timers"])
        st.wall_before = float(meta["wall_s"])
        st.tally = Tally.from_json(meta["counts"])
        st.history_solver = list(meta["history_solver"])
        st.recent_max = list(meta["recent_max"])
        self.checks.load_state(meta["samples"])
        st.history = list(arrays["history"]) if "history" in arrays else []
        st.spectra = list(arrays["spectra"]) if "spectra" in arrays else []
        st.previous_trusted = arrays.get("previous_trusted")
        if self.rank == 0:
            self.decisions = self.rundir.cut_log(st.decisions)
            for i in range(st.tick // self.output_every + 1):
                self.outputs[i] = self.rundir.read_output(i)
            if self.progress:
                print(f"resuming {self.out} at t = {st.tick * self.dt_tick:g} ({st.tick}/{self.n_ticks} ticks)",
                      flush=True)
        return arrays["solver"]

    # ---- result -------------------------------------------------------------------------------------
    def _elapsed(self) -> float:
        """Wall time of the run itself (from t = 0; the initial field and spin-up not counted),
        summed over interruptions."""
        start = getattr(self, "_wall0", None)
        return self.state.wall_before + (time.perf_counter() - start if start is not None else 0.0)

    def _progress_bar(self):
        if not self.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=self.n_ticks, initial=self.state.tick, desc=f"{self.cfg.mode} n={self.cfg.n}",
                    unit="tick", dynamic_ncols=True)

    def _postfix(self) -> str:
        tally = self.state.tally
        return f"accepted {tally.accepted} rejected {tally.n_rejected}" if self.cfg.mode != "pure" else ""

    def _result(self, wall: float) -> HybridResult:
        cfg, st = self.cfg, self.state
        times = np.asarray(cfg.output_times())
        summary = {
            "mode": cfg.mode, "n": cfg.n, "factor": cfg.factor if cfg.mode == "superres" else None,
            "reynolds": cfg.reynolds, "t_end": cfg.t_end, "ranks": self.size, "strategy": cfg.strategy,
            "surrogate": None if cfg.mode == "pure" else type(self.surrogate).__name__,
            "ticks": self.n_ticks, "tick_length": self.dt_tick,
            "wall_s": wall,
            "time_s": st.timers.as_dict(),
            "calls": st.calls,
            "accepted": st.tally.accepted,
            "rejected": dict(st.tally.rejected),
            "suspended_ticks": st.tally.suspended,
        }
        summary["time_s"]["other"] = max(0.0, wall - sum(st.timers.as_dict().values()))
        if self.rank != 0:
            return HybridResult(times, None, None, [], [], summary, cfg)
        order = sorted(self.outputs)
        fields = np.stack([self.outputs[i][0] for i in order])
        has_std = any(self.outputs[i][1] is not None for i in order)
        std = np.stack([self.outputs[i][1] if self.outputs[i][1] is not None else np.zeros_like(self.outputs[i][0])
                        for i in order]) if has_std else None
        sources = [self.outputs[i][2] for i in order]
        summary["outputs_by_source"] = {s: sources.count(s) for s in SOURCES if s in sources}
        return HybridResult(times, fields, std, sources, list(self.decisions), summary, cfg)
