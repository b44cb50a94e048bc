"""Hybrid runs over 1, 2 and 4 MPI ranks give the same trajectory, for both strategies; a failing
rank ends the whole job (mpiexec in a subprocess)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

MPIEXEC = Path(sys.executable).with_name("mpiexec")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable} (pip install mpich)"),
]

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from mpi4py import MPI
    from coupling import HybridConfig, HybridSimulation, SolverSurrogate
    from tests.coupling.stand_ins import NoisyEnsemble
    comm = MPI.COMM_WORLD
    mode, strategy, out = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = HybridConfig(mode=mode, n=32, factor=2, reynolds=100.0, t_end=1.5, output_interval=0.25, backend="numpy",
                       spinup=1.0, warmup=2, ensemble=4, strategy=strategy, disabled_checks=["spectrum_tail"],
                       lead_time=0.25, surrogate_kind="oracle")
    sur = NoisyEnsemble(2) if mode == "superres" else SolverSurrogate(32, cfg.solver_kwargs(), lead_time=0.25)
    cls = HybridSimulation
    if strategy == "crash":  # a bug on rank 1 only, in the middle of the run
        cfg = cfg.replace(strategy="gather")
        class Crashing(HybridSimulation):
            def _superres_tick(self, j, w):
                if j == 3 and comm.rank == 1:
                    raise ZeroDivisionError("a bug on one rank")
                return super()._superres_tick(j, w)
        cls = Crashing
    res = cls(cfg, sur, comm=comm).run()
    if comm.rank == 0:
        np.savez(out, fields=res.fields, std=res.std if res.std is not None else np.zeros(1),
                 sources=np.array(res.sources), accepted=res.summary["accepted"])
""")


def _run(tmp_path, ranks, *args, timeout=240):
    script = tmp_path / "hybrid_mpi.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [str(MPIEXEC), "-n", str(ranks), sys.executable, str(script), *args] if ranks > 1 else \
        [sys.executable, str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("mode, strategy", [("superres", "ensemble"), ("superres", "gather"), ("leapfrog", "gather"),
                                            ("leapfrog", "ensemble")])
def test_one_two_and_four_ranks_give_the_same_trajectory(tmp_path, mode, strategy):
    results = {}
    for ranks in (1, 2, 4):
        out = tmp_path / f"r{ranks}.npz"
        proc = _run(tmp_path, ranks, mode, strategy, str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        results[ranks] = np.load(out)
    assert int(results[1]["accepted"]) > 0
    for ranks in (2, 4):
        assert list(results[ranks]["sources"]) == list(results[1]["sources"])
        assert np.array_equal(results[ranks]["fields"], results[1]["fields"]), f"{ranks} ranks differ"
        assert np.array_equal(results[ranks]["std"], results[1]["std"])


def test_an_error_on_one_rank_ends_the_whole_job(tmp_path):
    proc = _run(tmp_path, 2, "superres", "crash", str(tmp_path / "never.npz"), timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("ZeroDivisionError: a bug on one rank") == 1, proc.stderr[-3000:]
    assert not (tmp_path / "never.npz").exists()


def test_a_bad_config_under_mpi_ends_every_rank_with_one_message(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('mode = "superres"\n[grid]\nn = 64\nfactor = 3\n')
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([str(MPIEXEC), "-n", "2", str(Path(sys.executable).with_name("flexcouple")), "run",
                           "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    assert proc.stderr.count("factor 3 must divide") == 1, proc.stderr
