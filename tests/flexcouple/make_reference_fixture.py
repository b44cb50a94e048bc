"""Write the reference-code fixture that test_models.py checks our FLEX against on every run.

Run ONCE, by hand, with a local copy of the paper's code (github.com/ViniciusMikuni/FLEX; never
committed here, never imported by the package):

    .venv/bin/python tests/flexcouple/make_reference_fixture.py /path/to/FLEX [COMMIT]

(COMMIT: the reference's commit, recorded in the fixture when the copy is not a git checkout.)

It builds a tiny FLEX with the reference modules (its ``Encoder`` / ``Decoder`` exactly as its
``FLEX()`` wires them, at a size its presets do not offer: channels [32, 32], one ResBlock a level,
ViT depth 3, 2 heads, 16^2 fields; GroupNorm(32) makes 32 the narrowest width), moves every weight
off its initial value, and stores into ``fixtures/``:

- ``reference_flex_tiny_weights.safetensors``: the four modules' state dicts under the reference's
  own names (``encoder.*``, ``superres_encoder.*``, ``forecast_encoder.*``, ``decoder.*``), each
  tensor as int8 with a power-of-two scale in the metadata. The weights the reference ran with ARE
  ``int8 * 2**exponent``, exactly representable in float32, so storing them this way loses nothing
  and keeps the file at a quarter of float32's size.
- ``reference_flex_tiny_outputs.safetensors``: fixed inputs and noise, and the reference's outputs:
  one backbone pass per task, one 2-step sample per task, and the multi-task training loss for a
  fixed t and noise.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn as nn

FIXTURES = Path(__file__).parent / "fixtures"
WEIGHTS = FIXTURES / "reference_flex_tiny_weights.safetensors"
OUTPUTS = FIXTURES / "reference_flex_tiny_outputs.safetensors"
# our arch names -> the reference's arguments (model_channels, num_res_blocks, depth, num_heads)
CONFIG = {"image_size": 16, "cond_snapshots": 2, "channels": [32, 32], "res_blocks": [1, 1], "depth": 3, "heads": 2}
REYNOLDS_SCALE = 40000.0  # the reference conditions on Re / 40000


def import_reference(code_dir):
    """The reference's diffusion module and its ``FLEX`` / ``Encoder`` / ``Decoder``, importable on a CPU."""
    sys.path.insert(0, str(code_dir))
    import src.diffusion_model_mt as ref_diffusion
    from src.backbones import flex as ref_flex

    schedule = ref_diffusion.logsnr_schedule_cosine  # undo its @torch.compile: no compiler needed
    ref_diffusion.logsnr_schedule_cosine = getattr(schedule, "_torchdynamo_orig_callable", schedule)
    return ref_diffusion, ref_flex


def reference_modules(ref_flex, image_size, channels, res_blocks, depth, heads, cond_snapshots):
    """(encoder, superres_encoder, forecast_encoder, decoder) wired as the reference's ``FLEX()`` does."""
    kw = dict(img_size=image_size, in_conds=1, model_channels=list(channels), num_res_blocks=list(res_blocks),
              depth=depth, num_heads=heads, mlp_ratio=2, attn_drop=0.1, mlp_drop=0.1, norm_layer=nn.LayerNorm,
              use_checkpoint=False)
    encoder = ref_flex.Encoder(in_chans=1, **kw)
    superres = ref_flex.Encoder(in_chans=1, use_time=False, use_transf=False, **kw)
    forecast = ref_flex.Encoder(in_chans=cond_snapshots, use_time=False, use_transf=False, **kw)
    decoder = ref_flex.Decoder(out_chans=1, use_transf=False, skip=True, **kw)
    return encoder, superres, forecast, decoder


def dequantize(tensors: dict, metadata: dict) -> dict[str, dict[str, torch.Tensor]]:
    """The fixture's int8 tensors as float32 state dicts, one per reference module."""
    exponents = json.loads(metadata["exponents"])
    states: dict[str, dict[str, torch.Tensor]] = {}
    for name, q in tensors.items():
        module, _, key = name.partition(".")
        states.setdefault(module, {})[key] = q.float() * 2.0 ** exponents[name]
    return states


def _quantize(p: torch.Tensor) -> tuple[torch.Tensor, int]:
    exponent = int(torch.ceil(torch.log2(p.abs().max().clamp_min(1e-30) / 127)).item())
    return torch.round(p / 2.0 ** exponent).clamp(-127, 127).to(torch.int8), exponent


def main(code_dir: str, commit: str | None = None) -> None:
    from safetensors.torch import save_file

    ref_diffusion, ref_flex = import_reference(code_dir)
    c = CONFIG
    torch.manual_seed(0)
    modules = reference_modules(ref_flex, c["image_size"], c["channels"], c["res_blocks"], c["depth"], c["heads"],
                                c["cond_snapshots"])
    g = torch.Generator().manual_seed(1)
    tensors, exponents = {}, {}
    with torch.no_grad():
        for name, module in zip(("encoder", "superres_encoder", "forecast_encoder", "decoder"), modules):
            for p in module.parameters():  # off the zero / identity initialisation: outputs are not trivial
                p += 0.02 * torch.randn(p.shape, generator=g)
            state = module.state_dict()
            for key, value in state.items():
                q, e = _quantize(value)
                tensors[f"{name}.{key}"], exponents[f"{name}.{key}"] = q, e
            module.load_state_dict({k: tensors[f"{name}.{k}"].float() * 2.0 ** exponents[f"{name}.{k}"]
                                    for k in state}, strict=True)
    encoder, superres, forecast, decoder = modules
    ref = ref_diffusion.DiffusionModel(encoder, decoder, superres, forecast, n_T=2, prediction_type="v",
                                       logsnr_shift=1.0).eval()

    n, b = c["image_size"], 2
    g = torch.Generator().manual_seed(2)
    io = {"low": torch.randn(b, 1, n, n, generator=g), "past": torch.randn(b, c["cond_snapshots"], n, n, generator=g),
          "future": torch.randn(b, 1, n, n, generator=g), "reynolds": torch.tensor([1000.0, 8000.0]),
          "noise": torch.randn(b, 1, n, n, generator=g), "x_t": torch.randn(b, 1, n, n, generator=g),
          "t": torch.tensor([0.3, 0.8])}
    fluid = io["reynolds"][:, None] / REYNOLDS_SCALE
    with torch.no_grad():
        for task, head, cond in (("superres", superres, io["low"]), ("forecast", forecast, io["past"])):
            pred_head, skip_head = head(cond, fluid_condition=fluid)
            pred, skips = encoder(io["x_t"].clone(), io["t"], fluid_condition=fluid, cond_skips=skip_head)
            io[f"backbone_{task}"] = decoder(pred, skips, pred_head, skip_head, io["t"], fluid_condition=fluid)
            io[f"sample_{task}"] = ref.sample(b, (1, n, n), cond, fluid, "cpu", superres=task == "superres",
                                              snapshots_i=io["noise"].clone())
        torch.manual_seed(5)  # the reference draws t, then eps, from the global RNG: record both
        io["loss_t"], io["loss_noise"] = torch.rand(b), torch.randn(b, 1, n, n)
        torch.manual_seed(5)
        io["loss"] = ref(io["low"], io["past"], io["future"], fluid).reshape(1)
    if commit is None:
        commit = subprocess.run(["git", "-C", str(code_dir), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "(commit unknown)"
    metadata = {"config": json.dumps(c), "reference": f"github.com/ViniciusMikuni/FLEX {commit}",
                "torch": torch.__version__}
    FIXTURES.mkdir(exist_ok=True)
    save_file(tensors, WEIGHTS, metadata={**metadata, "exponents": json.dumps(exponents)})
    save_file({k: v.contiguous().float() for k, v in io.items()}, OUTPUTS, metadata=metadata)
    print(f"wrote {WEIGHTS} ({WEIGHTS.stat().st_size} B) and {OUTPUTS} ({OUTPUTS.stat().st_size} B)")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(*sys.argv[1:])
