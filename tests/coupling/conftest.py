"""Shared fixtures of the coupling tests."""
import pytest


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An untrained multi-task FLEX tiny checkpoint of ours: x2 super-resolution (spectral
    upsampling) and forecasts 0.25 ahead from 2 past fields, normalisation (0, 5)."""
    import torch

    from flexcouple.checkpoint import save_checkpoint
    from flexcouple.models import build_model
    torch.manual_seed(0)
    model = build_model("flex", "tiny", tasks=("superres", "forecast"), image_size=32)
    path = tmp_path_factory.mktemp("ckpt") / "flex"
    save_checkpoint(path, model, {"normalization": {"mean": 0.0, "std": 5.0},
                                  "data": {"superres_options": {"factor": 2, "coarsen_method": "spectral",
                                                                "upsample": "spectral"},
                                           "forecast_options": {"past": 2, "lead": 1, "lead_time": 0.25}}})
    return path
