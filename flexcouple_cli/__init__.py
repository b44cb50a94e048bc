"""The ``flexcouple`` command (``python -m flexcouple_cli`` is the same).

This package is the only one above ``solver``, ``flexcouple`` and ``coupling`` (none of them imports
it): it parses the command line and runs one subcommand. Each subcommand lives in the package of the
work it does, exposes ``add_arguments(parser)`` and ``run(args) -> int``, and is imported only when
that subcommand runs (importing torch for ``simulate`` would cost every MPI rank seconds). Errors are
handled here, once: :func:`run_command` runs the subcommand collectively (under mpiexec any rank's
failure ends the job, reported once) and turns a user error into one line and exit code 1.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from flexcouple import __version__

# name -> (module, one-line help)
SUBCOMMANDS = {
    "demo": ("flexcouple_cli.demo", "the main job on the embedded default: pure CFD against the hybrid (superres, leapfrog)"),
    "simulate": ("solver.cli", "run the pseudo-spectral Navier-Stokes solver and save the fields"),
    "generate": ("flexcouple.data.generate", "generate HDF5 training / OOD data sets with the solver"),
    "train": ("flexcouple.training", "train FLEX or a baseline on a generated data set"),
    "evaluate": ("flexcouple.evaluation.evaluate", "evaluate checkpoints: metrics.json and figures"),
    "run": ("coupling.cli", "run a hybrid simulation: the solver with FLEX in the loop (superres, leapfrog)"),
    "calibrate": ("coupling.calibration", "calibrate the drift checks of a superres regime on held-out runs"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (None: none, for the top-level help)."""
    parser = argparse.ArgumentParser(
        prog="flexcouple", description="A pseudo-spectral Navier-Stokes solver and FLEX diffusion models: "
        "simulate, generate data, train, evaluate.")
    parser.add_argument("--version", action="version", version=f"flexcouple {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return run_command(args.command, importlib.import_module(args._module).run, args)


def run_command(command: str, fn, args) -> int:
    """``fn(args)`` as the exit code; a user error prints one line saying what is wrong and what to
    do (no traceback) and gives 1. Under mpiexec, any rank's failure ends the whole job, reported
    once (solver.mpi)."""
    from solver.io import os_error_message
    from solver.mpi import run_collectively, world_comm
    prefix = f"flexcouple {command}: error"
    try:
        return int(run_collectively(world_comm(), fn, args, prefix=prefix) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a file that cannot be read or written (also FileNotFoundError, FileExistsError)
        print(f"{prefix}: {os_error_message(exc)}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError) as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 1
