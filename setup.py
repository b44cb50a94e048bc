"""flexcouple: a pseudo-spectral Navier-Stokes solver coupled in-process with FLEX diffusion models."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "flexcouple" / "__init__.py").read_text()).group(1)

setup(
    name="flexcouple",
    version=VERSION,
    description="In-the-loop CFD acceleration: a pseudo-spectral 2D Navier-Stokes solver coupled with FLEX diffusion models",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["solver", "solver.*", "flexcouple", "flexcouple.*", "coupling", "coupling.*", "flexcouple_cli"]),
    # the shipped models (safetensors + JSON: config and calibration + model card + the script that
    # trained it) install with the package
    package_data={"flexcouple": ["presets/*.toml", "presets/*.json", "shipped/*/*.json",
                                 "shipped/*/*.safetensors", "shipped/*/*.md", "shipped/*/*.sh",
                                 "shipped/*.sh"]},
    install_requires=[
        # solver (never imports torch)
        "numpy>=1.24",
        "scipy>=1.10",
        "pyfftw>=0.13",
        "mpi4py>=3.1",
        "mpi4py-fft>=2.0.5",  # distributed FFTs; building it needs the FFTW headers (libfftw3-dev)
        "numba>=0.60",  # fused element-wise kernels of the CPU step (solver/kernels.py; benchmarks/bench_solver.py)
        # flexcouple
        "torch==2.13.0",  # pinned: an open range pulls a multi-GB CUDA build
        "safetensors>=0.4",
        "h5py>=3.8",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2"],
        "mpi": ["mpich>=4"],  # an MPI library from PyPI, for machines without a system MPI
        "gpu": ["cupy-cuda12x>=13"],
        "peer": ["jax-cfd==0.2.1"],
        "well": ["the_well==1.2.0"],  # install with --no-deps (see Makefile): it pins an old fsspec
    },
    entry_points={"console_scripts": ["flexcouple=flexcouple_cli:main"]},
)
