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
        print("transform", sim.backend.name)
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


@pytest.mark.parametrize("ranks, backend, transform", [(1, "numpy", "slab"), (2, "numpy", "slab"), (4, "numpy", "slab"),
                                                       (2, "pyfftw", "slab"), (4, "pyfftw", "slab"),
                                                       (2, "numpy", "mpi4py-fft"), (2, "pyfftw", "mpi4py-fft")])
def test_ranks_reproduce_the_serial_run(tmp_path, serial, ranks, backend, transform):
    """Both distributed transforms: ours (SlabBackend, the default) and mpi4py-fft's (MPIBackend)."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", FLEXCOUPLE_MPI_TRANSFORM=transform)
    proc = subprocess.run([str(MPIEXEC), "-n", str(ranks), sys.executable, str(script), str(tmp_path), backend],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if ranks > 1:
        assert f"{'slab' if transform == 'slab' else 'mpi'}-{backend}" in proc.stdout, proc.stdout
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
