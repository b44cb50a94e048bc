"""``flexcouple demo``: the hybrid demo (:mod:`coupling.demo`, the product's main job), or with
``--pipeline`` the pipeline demo (:mod:`flexcouple_cli.pipeline`: simulate, generate, train, evaluate)."""
from __future__ import annotations

from coupling.demo import add_arguments  # noqa: F401 (both demos' flags)


def run(args) -> int:
    if args.pipeline:
        from flexcouple_cli import pipeline
        if args.t_end is None:
            args.t_end = 5.0
        return pipeline.run(args)
    from coupling.demo import run_hybrid_demo
    return run_hybrid_demo(args)
