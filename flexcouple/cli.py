"""The ``flexcouple`` command.

This is the only module that sits above ``solver``, ``flexcouple`` and ``coupling``: each
subcommand lives in its own module, exposes ``add_arguments(parser)`` and ``run(args) -> int``, and
is imported only when that subcommand runs (importing torch for ``simulate`` would cost every MPI
rank seconds).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from flexcouple import __version__

# name -> (module, one-line help)
SUBCOMMANDS = {
    "demo": ("coupling.demo", "the main job on the embedded default: pure CFD against the hybrid (superres, leapfrog)"),
    "simulate": ("solver.cli", "run the pseudo-spectral Navier-Stokes solver and save the fields"),
    "generate": ("flexcouple.data.generate", "generate HDF5 training / OOD data sets with the solver"),
    "train": ("flexcouple.training", "train FLEX or a baseline on a generated data set"),
    "evaluate": ("flexcouple.evaluation.evaluate", "evaluate checkpoints: metrics.json and figures"),
    "run": ("coupling.cli", "run a hybrid simulation: the solver with FLEX in the loop (superres, leapfrog)"),
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
    mod = importlib.import_module(args._module)
    from solver.mpi import run_collectively, world_comm
    try:
        # under mpiexec, any rank's failure ends the whole job, reported once (solver.mpi)
        return int(run_collectively(world_comm(), mod.run, args, prefix=f"flexcouple {args.command}: error") or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        # user errors carry a message saying what is wrong and what to do; no traceback
        print(f"flexcouple {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
