"""One rank's failure ends the whole MPI job: non-zero exit, the error printed once, never a hang.

Each case runs ``mpiexec -n 2`` in a subprocess with a timeout: a hang fails the test instead of
blocking the suite.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

MPIEXEC = Path(sys.executable).with_name("mpiexec")
pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable} (pip install mpich)"),
]
TIMEOUT = 120


def mpirun(args, tmp_path, ranks=2):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        return subprocess.run([str(MPIEXEC), "-n", str(ranks), *args], capture_output=True, text=True,
                              timeout=TIMEOUT, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the MPI job hung (no exit within {TIMEOUT} s)")


def script(tmp_path, body):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_simulate_with_a_nan_in_one_ranks_slab_ends_every_rank(tmp_path):
    field = np.random.default_rng(0).standard_normal((32, 32))
    field[25, 3] = np.nan  # rows 16..31 are rank 1's slab
    np.save(tmp_path / "f.npy", field)
    proc = mpirun([sys.executable, "-m", "flexcouple_cli", "simulate", "--n", "32", "--t-end", "0.1",
                   "--backend", "numpy", "--init", str(tmp_path / "f.npy"), "--out", str(tmp_path / "o.h5")],
                  tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("NaN or Inf") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.h5").exists()


def test_the_solver_refuses_a_bad_slab_on_every_rank(tmp_path):
    """The library path (no CLI): a NaN in rank 1's slab raises CollectiveError on both ranks."""
    proc = mpirun(script(tmp_path, """
        import numpy as np
        from mpi4py import MPI
        from solver import NavierStokes2D, random_field
        from solver.mpi import CollectiveError, local_part
        comm = MPI.COMM_WORLD
        sim = NavierStokes2D(32, 100.0, comm=comm, backend="numpy")
        omega = local_part(random_field(32, seed=0), sim)
        if comm.rank == 1:
            omega[2, 2] = np.nan
        try:
            sim.advance(omega, 0.1)
        except CollectiveError as exc:
            print(f"REFUSED on {comm.rank}: {exc}", flush=True)
        sim.advance(local_part(random_field(32, seed=0), sim), 0.05)  # the solver is still usable
        print(f"OK {comm.rank}", flush=True)
    """), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("REFUSED") == 2 and proc.stdout.count("OK") == 2, proc.stdout
    assert "rank 1 of 2: omega contains NaN" in proc.stdout


@pytest.mark.parametrize("failing", ["1", "both"])
def test_a_local_error_while_others_wait_aborts_the_job(tmp_path, failing):
    """run_collectively: an uncaught error on one rank, with the other blocked in a collective."""
    proc = mpirun(script(tmp_path, f"""
        from mpi4py import MPI
        from solver.mpi import run_collectively
        comm = MPI.COMM_WORLD
        def body():
            if "{failing}" == "both" or comm.rank == 1:
                raise ValueError("disk on fire")
            comm.barrier()  # rank 0 would wait here forever without the abort
        run_collectively(comm, body, prefix="job: error")
        print("unreachable", flush=True)
    """), tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("disk on fire") == 1, proc.stderr
    assert "unreachable" not in proc.stdout


def test_an_error_every_rank_agrees_on_is_reported_once_by_rank_0(tmp_path):
    proc = mpirun(script(tmp_path, """
        import sys
        from mpi4py import MPI
        from solver.mpi import agree, run_collectively
        comm = MPI.COMM_WORLD
        def body():
            agree(comm, "bad slab" if comm.rank == 1 else None)
        try:
            run_collectively(comm, body)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(3)
    """), tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.count("bad slab") == 1 and "rank 1 of 2: bad slab" in proc.stderr, proc.stderr
