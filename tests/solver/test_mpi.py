"""Slab-decomposed runs over MPI ranks give the serial fields (mpiexec in a subprocess)."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from solver import NavierStokes2D, random_field

MPIEXEC = Path(sys.executable).with_name("mpiexec")
pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable} (pip install mpich)"),
]

SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mpi4py import MPI
    from solver import NavierStokes2D, random_field
    from solver.mpi import gather, local_part, scatter
    comm = MPI.COMM_WORLD
    out = {}
    n = 64
    for boundary in ["periodic", "free-slip", "channel", "cylinder"]:
        ic = "free-slip" if boundary == "free-slip" else "periodic"
        omega0 = random_field(n, seed=1, boundary=ic, energy=0.1 if boundary == "channel" else 0.5)
        sim = NavierStokes2D(n, 500.0, forcing="kolmogorov", drag=0.1, boundary=boundary, comm=comm,
                             backend=sys.argv[2], pressure_gradient=1.0)
        local = scatter(omega0 if comm.rank == 0 else None, sim)
        assert np.array_equal(local, local_part(omega0, sim))
        w = sim.advance(local, 0.3)
        full = gather(w, sim)
        diag = [sim.energy(w), sim.enstrophy(w), sim.palinstrophy(w), float(sim.spectrum(w)[1].sum()),
                sim.divergence(w), sim.last_stats["steps"]]
        if comm.rank == 0:
            np.save(f"{sys.argv[1]}/{boundary}.npy", full)
            out[boundary] = diag
    if comm.rank == 0:
        json.dump(out, open(f"{sys.argv[1]}/diag.json", "w"))
        print("transform", sim.backend.name, "exchange", getattr(sim.backend, "exchange", "-"))
""")


@pytest.fixture(scope="module")
def serial():
    res = {}
    for boundary in ["periodic", "free-slip", "channel", "cylinder"]:
        ic = "free-slip" if boundary == "free-slip" else "periodic"
        omega0 = random_field(64, seed=1, boundary=ic, energy=0.1 if boundary == "channel" else 0.5)
        sim = NavierStokes2D(64, 500.0, forcing="kolmogorov", drag=0.1, boundary=boundary, pressure_gradient=1.0)
        w = sim.advance(omega0, 0.3)
        res[boundary] = (w, [sim.energy(w), sim.enstrophy(w), sim.palinstrophy(w), sim.last_stats["steps"]])
    return res


@pytest.mark.parametrize("ranks, backend, transform, exchange", [
    (1, "numpy", "slab", "auto"), (2, "numpy", "slab", "auto"), (4, "numpy", "slab", "auto"),
    (2, "pyfftw", "slab", "auto"), (4, "pyfftw", "slab", "auto"),
    (2, "pyfftw", "slab", "alltoallv"), (4, "numpy", "slab", "alltoallv"),
    (2, "numpy", "mpi4py-fft", "auto"), (2, "pyfftw", "mpi4py-fft", "auto")])
def test_ranks_reproduce_the_serial_run(tmp_path, serial, ranks, backend, transform, exchange):
    """Both distributed transforms: ours (SlabBackend, the default) and mpi4py-fft's (MPIBackend); ours
    with both exchanges: through shared memory (auto on one node) and through Alltoallv."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", FLEXCOUPLE_MPI_TRANSFORM=transform, FLEXCOUPLE_MPI_EXCHANGE=exchange)
    proc = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(script), str(tmp_path), backend],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if ranks > 1:
        assert f"{'slab' if transform == 'slab' else 'mpi'}-{backend}" in proc.stdout, proc.stdout
    if ranks > 1 and transform == "slab":
        assert f"exchange {'shared' if exchange == 'auto' else exchange}" in proc.stdout, proc.stdout
    diag = json.loads((tmp_path / "diag.json").read_text())
    for boundary, (ref, ref_diag) in serial.items():
        full = np.load(tmp_path / f"{boundary}.npy")
        assert np.abs(full - ref).max() / np.abs(ref).max() < 1e-12, boundary
        energy, enstrophy, palinstrophy, spectrum_sum, divergence, steps = diag[boundary]
        assert energy == pytest.approx(ref_diag[0], rel=1e-12)
        assert enstrophy == pytest.approx(ref_diag[1], rel=1e-12)
        assert palinstrophy == pytest.approx(ref_diag[2], rel=1e-12)
        assert steps == ref_diag[3]
        assert divergence < 1e-10
        if boundary in ("periodic", "free-slip"):
            assert spectrum_sum == pytest.approx(energy, rel=1e-10)


def test_rank_count_must_divide_n(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("from mpi4py import MPI\nfrom solver import NavierStokes2D\n"
                      "try:\n    NavierStokes2D(10, 100.0, comm=MPI.COMM_WORLD)\n"
                      "except ValueError as e:\n    print('REFUSED', e)\n")
    proc = subprocess.run([str(MPIEXEC), "-n", "4", sys.executable, str(script)], capture_output=True,
                          text=True, timeout=120)
    assert "REFUSED" in proc.stdout and "slabs" in proc.stdout, proc.stdout + proc.stderr


def test_bad_exchange_name_is_refused():
    from mpi4py import MPI

    from solver.backends import mpi_exchange

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEXCOUPLE_MPI_EXCHANGE", "carrier-pigeon")
        with pytest.raises(ValueError, match="FLEXCOUPLE_MPI_EXCHANGE='carrier-pigeon': choose one of auto, shared, alltoallv"):
            mpi_exchange(MPI.COMM_SELF)
        mp.setenv("FLEXCOUPLE_MPI_EXCHANGE", "shared")
        assert mpi_exchange(MPI.COMM_SELF) == "alltoallv"  # one rank exchanges nothing


def test_shared_windows_are_reused_and_freed_by_close(tmp_path):
    """Backends of one shape share their windows (a solver per trajectory leaves none behind); close()
    frees them on every rank (collective) and the job ends cleanly."""
    script = tmp_path / "close.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from mpi4py import MPI
        from solver.backends import make_backend
        from solver import backends
        x = np.random.default_rng(MPI.COMM_WORLD.rank).standard_normal((32 // MPI.COMM_WORLD.size, 32))
        for _ in range(3):
            be = make_backend("pyfftw", (32, 32), np.float64, comm=MPI.COMM_WORLD)
            y = be.backward(be.forward(x))
        assert be.exchange == "shared" and len(backends._SHARED_BUFFERS) == 2, backends._SHARED_BUFFERS.keys()
        be.close()
        assert not backends._SHARED_BUFFERS
        y2 = make_backend("pyfftw", (32, 32), np.float64, comm=MPI.COMM_WORLD).forward(x)  # new ones can
        err = MPI.COMM_WORLD.allreduce(float(np.abs(y - x).max()), op=MPI.MAX)
        if MPI.COMM_WORLD.rank == 0:
            print("ROUNDTRIP", err, MPI.COMM_WORLD.size)
    """))
    proc = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("ROUNDTRIP")]
    assert len(lines) == 1 and float(lines[0][1]) < 1e-12 and lines[0][2] == "2", proc.stdout
