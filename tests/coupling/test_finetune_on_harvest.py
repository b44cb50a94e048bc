"""The harvest closes the loop: `flexcouple train --init CKPT --data <run>/harvest` fine-tunes the
model on what it got wrong, and the result is again a surrogate for the same run."""
import pytest

from coupling import FlexSurrogate, HybridConfig, HybridSimulation
from flexcouple_cli import main
from tests.coupling.stand_ins import Broken


def test_finetune_from_a_checkpoint_on_the_harvest(checkpoint, tmp_path):
    cfg = HybridConfig(mode="leapfrog", n=32, reynolds=100.0, t_end=3.0, output_interval=0.25, backend="numpy",
                       spinup=1.0, warmup=2, harvest_enabled=True, max_rejections=100)
    sur = Broken("shift", n=32, solver_kwargs=cfg.solver_kwargs())
    sur.history_length = 2
    res = HybridSimulation(cfg, sur, out=tmp_path / "run").run()
    assert sum(d["called"] for d in res.decisions) >= 2
    out = tmp_path / "tuned"
    assert main(["train", "--init", str(checkpoint), "--data", str(tmp_path / "run" / "harvest"), "--task",
                 "forecast", "--crop", "32", "--batch-size", "2", "--steps", "2", "--warmup", "1",
                 "--out", str(out), "--no-progress"]) == 0
    tuned = FlexSurrogate.from_checkpoint(out)
    assert tuned.tasks == ("superres", "forecast")
    assert (tuned.factor, tuned.lead_time) == (2, 0.25)        # the untrained task's record is kept
    assert (tuned.mean, tuned.std_norm) == (0.0, 5.0)          # the start model's units
    tuned.check_fits("leapfrog", 32)


def test_init_refuses_a_task_the_checkpoint_lacks(tmp_path):
    from flexcouple.checkpoint import save_checkpoint
    from flexcouple.models import build_model
    model = build_model("flex", "tiny", tasks=("superres",), image_size=32)
    save_checkpoint(tmp_path / "sr", model, {"normalization": {"mean": 0.0, "std": 1.0}})
    cfg = HybridConfig(mode="leapfrog", n=32, reynolds=100.0, t_end=2.0, output_interval=0.25, backend="numpy",
                       spinup=1.0, warmup=2, harvest_enabled=True, max_rejections=100)
    HybridSimulation(cfg, Broken("shift", n=32, solver_kwargs=cfg.solver_kwargs()), out=tmp_path / "run").run()
    assert main(["train", "--init", str(tmp_path / "sr"), "--data", str(tmp_path / "run" / "harvest"), "--task",
                 "forecast", "--crop", "32", "--batch-size", "2", "--steps", "1", "--out", str(tmp_path / "t"),
                 "--no-progress"]) == 1
