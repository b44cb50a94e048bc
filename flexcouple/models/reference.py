"""Weights of the paper's code (ViniciusMikuni/FLEX) in this package's FLEX.

The reference trains four modules (``encoder``, ``superres_encoder``, ``forecast_encoder``,
``decoder``) and saves their state dicts in one ``torch.save`` file. :func:`convert_reference_state`
renames their tensors to ours (same layers, same shapes: the architecture is the same), so a
published FLEX checkpoint can be loaded into ``build_model("flex", size, tasks, image_size=256,
periodic=False)`` (the reference pads convolutions with zeros) and then saved as a safetensors
checkpoint. Reading a ``torch.save`` file needs ``torch.load(path, weights_only=True)`` (the restricted
unpickler that only rebuilds tensors); :func:`load_reference_checkpoint` does exactly that.
"""
from __future__ import annotations

import re

import torch

__all__ = ["convert_reference_state", "load_reference_checkpoint"]

_RESBLOCK = {"in_layers.0": "in_norm", "in_layers.2": "in_conv", "emb_layers.1": "emb_proj",
             "out_layers.0": "out_norm", "out_layers.3": "out_conv", "skip_connection": "skip"}
_BLOCK = {"mlp.fc1": "mlp.0", "mlp.fc2": "mlp.3"}


def _sub(rest: str, table: dict) -> str:
    for old, new in table.items():
        if rest.startswith(old + ".") or rest == old:
            return new + rest[len(old):]
    return rest


def _conv_layers(key: str, prefix: str) -> str | None:
    m = re.match(r"input_blocks\.(\d+)\.0\.(.+)", key)
    if not m:
        return None
    i, rest = m.groups()
    return f"{prefix}.layers.{i}.0.{_sub(rest, _RESBLOCK)}"


def _encoder_key(key: str, shared: bool) -> str:
    """Shared encoder keys live under ``backbone.``; a task encoder's are relative to it."""
    k = _conv_layers(key, "backbone.encoder" if shared else "encoder")
    if k is not None:
        return k
    table = {"MPFourier": "time_fourier", "time_embed": "time_embed", "cond_embed": "reynolds_embed"}
    head, _, rest = key.partition(".")
    if head in table:
        return f"{'backbone.' if shared else ''}{table[head]}.{rest}"
    if shared and head == "pos_embed":
        return "backbone.pos_embed"
    if shared and head == "tr_blocks":
        i, _, rest = rest.partition(".")
        return f"backbone.vit_encoder.{i}.{_sub(rest, _BLOCK)}"
    if shared and head == "mid_block":
        return f"backbone.vit_middle.{_sub(rest, _BLOCK)}"
    raise KeyError(key)


def _decoder_key(key: str) -> str:
    head, _, rest = key.partition(".")
    table = {"MPFourier": "time_fourier", "time_embed": "time_embed", "cond_embed": "reynolds_embed",
             "norm": "norm", "final_layer": "out"}
    if head in table:
        return f"backbone.decoder.{table[head]}.{rest}"
    if head == "tr_blocks":
        i, _, rest = rest.partition(".")
        return f"backbone.decoder.vit.{i}.{_sub(rest, _BLOCK)}"
    if head == "output_blocks":
        i, j, rest = rest.split(".", 2)
        return f"backbone.decoder.blocks.{i}.{j}.{_sub(rest, _RESBLOCK)}"
    raise KeyError(key)


def convert_reference_state(encoder: dict, decoder: dict, superres_encoder: dict | None = None,
                            forecast_encoder: dict | None = None) -> dict[str, torch.Tensor]:
    """State dict for our ``ResidualDiffusion(FLEX)`` from the reference modules' state dicts."""
    out = {}
    for k, v in encoder.items():
        out[_encoder_key(k, shared=True)] = v
    for k, v in decoder.items():
        out[_decoder_key(k)] = v
    for task, state in (("superres", superres_encoder), ("forecast", forecast_encoder)):
        for k, v in (state or {}).items():
            out[f"backbone.task_encoders.{task}.{_encoder_key(k, shared=False)}"] = v
    return out


def load_reference_checkpoint(path, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """Read a reference ``torch.save`` checkpoint with the restricted (weights-only) unpickler.

    With ``use_ema`` the EMA shadow parameters (torch_ema's ``shadow_params``, in the order of
    ``model.parameters()``) are NOT mapped here: their order depends on the reference module layout;
    load the raw weights, or apply the EMA in the reference code first.
    """
    if use_ema:
        raise ValueError("EMA shadow parameters of the reference are positional; convert the raw weights")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in ("encoder", "decoder") if k not in state]
    if missing:
        raise ValueError(f"{path} lacks {missing}: not a checkpoint of the FLEX reference code")
    return convert_reference_state(state["encoder"], state["decoder"], state.get("superres_encoder"),
                                   state.get("forecast_encoder"))
