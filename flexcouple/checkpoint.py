"""Checkpoints without pickle: weights in safetensors, everything else in JSON.

A checkpoint is a directory::

    config.json              model name, size, tasks, image size, cond_snapshots, architecture,
                             normalisation {"mean", "std"}, data provenance, code version,
                             the SHA-256 of every other file, and ``config_sha256``: the SHA-256
                             of the canonical JSON of this config without that field
    model.safetensors        the weights used for inference (the EMA weights when training)
    training_state.json      (optional, for resume) step, train config, optimizer hyper-parameters
    training_state.safetensors   raw weights and optimizer moments

Loading parses JSON and safetensors only, so it never executes code from the files. It refuses, with
a ValueError that says why: a pickled file (``torch.save`` zip or raw pickle), a file that is not
safetensors, weights whose hash differs from the one in config.json (tampered or swapped), a
config.json edited after it was saved (its own hash differs: a changed ``normalization.std`` or
``arch.heads`` would otherwise run silently wrong), and weights whose names or shapes do not match the
model the config describes.

A config without that record (format version 1, or none) is refused too: anyone could edit it and
set its version back. It loads only when the caller opts in with ``allow_unverified=True``
(``--allow-unverified`` on the command line, ``[surrogate] allow_unverified`` in a hybrid config),
with a one-line warning on stderr; :func:`reseal` upgrades such a checkpoint in place once its
weights are verified, and every :func:`save_checkpoint` writes version 2.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import flexcouple
from solver.io import atomic_path, write_text_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "load_weights", "save_training_state", "load_training_state",
           "read_config", "read_training_info", "reseal", "export_weights", "code_version", "FORMAT", "FORMAT_VERSION"]

FORMAT = "flexcouple-checkpoint"
FORMAT_VERSION = 2                  # 2: config.json carries config_sha256 (1: weights hashes only)
CONFIG_HASH = "config_sha256"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
REQUIRED = ("model", "size", "tasks", "image_size", "cond_snapshots", "normalization")


def code_version() -> str:
    """Package version, plus the git commit (and "-dirty") when run from a checkout."""
    from solver.provenance import git_commit
    commit = git_commit(short=True)
    return f"{flexcouple.__version__}+g{commit}" if commit else flexcouple.__version__


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write tensors atomically (solver.io: a crash or a full disk never leaves a half file; safetensors'
    own disk-full error becomes NoSpaceError there) and return the file's SHA-256."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": FORMAT})
    return _sha256(path)


def _check_not_pickle(path: Path) -> None:
    """Refuse pickles before anything parses the file (safetensors = u64 header size, then JSON '{')."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise ValueError(f"{path} is a pickled file (torch.save / pickle); flexcouple refuses to load "
                         "pickles because they can run code. Convert it with flexcouple.checkpoint.save_checkpoint.")
    raise ValueError(f"{path} is not a safetensors file")


def _check_sha(path: Path, expected_sha256: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing")
    actual = _sha256(path)
    if actual != expected_sha256:
        raise ValueError(f"{path} does not match the SHA-256 recorded in {CONFIG_FILE} (tampered with or "
                         f"swapped): expected {expected_sha256[:16]}..., got {actual[:16]}...")


def _load_tensors(path: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} is missing")
    _check_not_pickle(path)
    if expected_sha256 is None:
        raise ValueError(f"{path.parent / CONFIG_FILE} records no hash for {path.name}; refusing an unverifiable file")
    _check_sha(path, expected_sha256)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a valid safetensors file: {exc}") from None


def config_digest(config: dict) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``config`` without its own hash."""
    body = {k: v for k, v in config.items() if k != CONFIG_HASH}
    from solver.provenance import digest
    return digest(json.loads(json.dumps(body)), compact=True)


def _write_config(path: Path, config: dict) -> None:
    """Seal (current format version, own hash) and write config.json atomically."""
    config = dict(config, format_version=FORMAT_VERSION)
    config[CONFIG_HASH] = config_digest(config)
    _atomic_json(path / CONFIG_FILE, config)


_warned_unsealed: set[str] = set()
ALLOW_UNVERIFIED = "--allow-unverified"  # the command-line flag of every command that loads checkpoints


def _format_version(cfg_path: Path, config: dict) -> int:
    version = config.get("format_version", 0)  # absent: written before versions were recorded
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{cfg_path}: format_version must be an integer (this flexcouple writes {FORMAT_VERSION}), "
                         f"got {version!r} ({type(version).__name__}); the file was edited or damaged: restore "
                         "the original or retrain")
    if version > FORMAT_VERSION:
        raise ValueError(f"{cfg_path} has format version {version}; this flexcouple reads up to {FORMAT_VERSION}: "
                         "upgrade flexcouple")
    return version


def _verify_config(cfg_path: Path, config: dict, version: int, allow_unverified: bool) -> None:
    if version >= 2:
        recorded = config.get(CONFIG_HASH)
        if not isinstance(recorded, str):
            raise ValueError(f"{cfg_path} records no {CONFIG_HASH}; refusing an unverifiable config")
        if config_digest(config) != recorded:
            raise ValueError(f"{cfg_path} was edited after it was saved (its content no longer matches its "
                             f"{CONFIG_HASH}); refusing it, since a changed normalization or architecture "
                             "would run silently wrong. Restore the original file or retrain.")
    elif not allow_unverified:
        raise ValueError(f"{cfg_path} is format version {version}: it records no hash of itself ({CONFIG_HASH}), "
                         "so an edit to it (a changed normalization or architecture) cannot be detected. If you "
                         f"trust it, seal it once with flexcouple.checkpoint.reseal('{cfg_path.parent}') (it checks "
                         f"the weights' hashes first), or load it unverified with allow_unverified=True "
                         f"({ALLOW_UNVERIFIED} for flexcouple run and evaluate; allow_unverified = true in a "
                         "hybrid config's [surrogate])")
    elif str(cfg_path.resolve()) not in _warned_unsealed:
        _warned_unsealed.add(str(cfg_path.resolve()))
        print(f"warning: {cfg_path} is format version {version} (no config hash: edits to it cannot be "
              f"detected); upgrade it with flexcouple.checkpoint.reseal('{cfg_path.parent}')", file=sys.stderr)


def read_config(path: str | os.PathLike, *, allow_unverified: bool = False) -> dict:
    """The checkpoint's config.json (``path`` is the directory or any file in it), verified;
    ``allow_unverified``: also one that records no hash of itself (format version 1), with a warning."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: it does not exist")
    directory = path if path.is_dir() else path.parent
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        if path.is_file():
            _check_not_pickle(path)
        raise FileNotFoundError(f"{cfg_path} is missing: {directory} is not a flexcouple checkpoint")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a flexcouple checkpoint config (format field missing)")
    version = _format_version(cfg_path, config)
    missing = [k for k in REQUIRED if k not in config]
    if missing:
        raise ValueError(f"{cfg_path} lacks {missing}")
    _verify_config(cfg_path, config, version, allow_unverified)
    return config


def reseal(path: str | os.PathLike) -> Path:
    """Upgrade a version-1 checkpoint in place: verify every recorded file hash, then add the config hash.

    Only a checkpoint whose files still match their recorded hashes is sealed; a version-2 checkpoint is
    verified and left as it is. Returns the directory.
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    _warned_unsealed.add(str((directory / CONFIG_FILE).resolve()))  # no warning for the file being upgraded
    config = read_config(directory, allow_unverified=True)  # calling reseal is the opt-in
    files = config.get("files") or {}
    if WEIGHTS_FILE not in files:
        raise ValueError(f"{directory / CONFIG_FILE} records no hash for {WEIGHTS_FILE}; cannot reseal it")
    for name, sha in files.items():
        if name.endswith(".safetensors"):
            _load_tensors(directory / name, sha)  # also refuses a pickle in disguise
        else:
            _check_sha(directory / name, sha)
    if config.get("format_version", 0) < FORMAT_VERSION:
        if (directory / STATE_JSON).is_file() and STATE_JSON not in files:
            config["files"] = dict(files, **{STATE_JSON: _sha256(directory / STATE_JSON)})
        _write_config(directory, config)
    return directory


def export_weights(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy a training run's checkpoint to ``destination`` as a model to ship: its (EMA) weights and
    sealed config only, no training state (what the shipped models' scripts do). Returns the directory."""
    model, config = load_checkpoint(source)
    config["files"] = {k: v for k, v in config.get("files", {}).items() if not k.startswith("training_state")}
    return save_checkpoint(destination, model, config)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: dict | None = None, *,
                    state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (or the given ``state_dict``, e.g. EMA weights) and its config to directory ``path``.

    ``config`` is merged over ``model.config``; it must provide ``normalization`` ({"mean", "std"}) and
    should provide ``data`` (provenance: data set path, its generation config, splits).
    """
    path = Path(path)
    cfg = dict(getattr(model, "config", {}) or {})
    cfg.update(config or {})
    norm = cfg.get("normalization")
    if not (isinstance(norm, dict) and {"mean", "std"} <= set(norm)):
        raise ValueError("config needs normalization={'mean': float, 'std': float} (the data set's)")
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ValueError(f"config lacks {missing}; build the model with flexcouple.models.build_model")
    path.mkdir(parents=True, exist_ok=True)
    weights = dict(state_dict if state_dict is not None else model.state_dict())
    cfg.pop(CONFIG_HASH, None)
    cfg.update(format=FORMAT, format_version=FORMAT_VERSION, code_version=cfg.get("code_version") or code_version(),
               parameters=sum(p.numel() for p in model.parameters()), data=cfg.get("data", {}))
    cfg["files"] = {WEIGHTS_FILE: _save_tensors(path / WEIGHTS_FILE, weights)}  # a training state re-adds its own
    _write_config(path, cfg)
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", *,
                    allow_unverified: bool = False) -> tuple[nn.Module, dict]:
    """``(model, config)`` from a checkpoint directory; see the module docstring for what is refused
    (and for ``allow_unverified``)."""
    from flexcouple.models import model_from_config

    config = read_config(path, allow_unverified=allow_unverified)
    directory = Path(path) if Path(path).is_dir() else Path(path).parent
    weights = _load_tensors(directory / WEIGHTS_FILE, config.get("files", {}).get(WEIGHTS_FILE))
    model = model_from_config(config)
    _load_matching(model, weights, f"{directory / WEIGHTS_FILE} vs the model in {CONFIG_FILE}")
    return model.to(device).eval(), config


def load_weights(path: str | os.PathLike, *, allow_unverified: bool = False) -> dict[str, torch.Tensor]:
    """The verified tensors of ``model.safetensors`` (no model built)."""
    config = read_config(path, allow_unverified=allow_unverified)
    directory = Path(path) if Path(path).is_dir() else Path(path).parent
    return _load_tensors(directory / WEIGHTS_FILE, config.get("files", {}).get(WEIGHTS_FILE))


def _load_matching(model: nn.Module, weights: dict[str, torch.Tensor], what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if tuple(expected[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label}: {names[:3]}{' ...' if len(names) > 3 else ''}" for label, names in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if names)
        raise ValueError(f"weights do not match the configuration ({what}): {detail}")
    model.load_state_dict(weights, strict=True)


# ---- training state (resume) -------------------------------------------------------------------

def save_training_state(path: str | os.PathLike, *, model_state: dict, optimizer: torch.optim.Optimizer,
                        ema_state: dict | None = None, info: dict | None = None) -> None:
    """Raw weights, EMA, optimizer moments (safetensors) and step/config/hyper-parameters (JSON).

    Call after :func:`save_checkpoint` on the same directory (it records the hashes in config.json).
    """
    path = Path(path)
    tensors = {f"model/{k}": v for k, v in model_state.items()}
    tensors.update({f"ema/{k}": v for k, v in (ema_state or {}).items()})
    opt = optimizer.state_dict()
    state_meta: dict[str, dict] = {}
    for pid, entries in opt["state"].items():
        state_meta[str(pid)] = {}
        for name, value in entries.items():
            if torch.is_tensor(value):
                key = f"optimizer/{pid}/{name}"
                tensors[key] = value
                state_meta[str(pid)][name] = {"tensor": key}
            else:
                state_meta[str(pid)][name] = {"value": value}
    sha = _save_tensors(path / STATE_TENSORS, tensors)
    meta = {"format": FORMAT, "info": info or {}, "optimizer": {"state": state_meta,
                                                                 "param_groups": opt["param_groups"]}}
    _atomic_json(path / STATE_JSON, meta)
    cfg = read_config(path)
    cfg["files"] = dict(cfg.get("files", {}), **{STATE_TENSORS: sha, STATE_JSON: _sha256(path / STATE_JSON)})
    _write_config(path, cfg)


def read_training_info(path: str | os.PathLike) -> dict:
    """The ``info`` of a checkpoint's training state (step, train config, history), JSON only, verified
    against config.json where it records the file's hash (format version 2)."""
    path = Path(path)
    config = read_config(path)
    if not (path / STATE_JSON).is_file():
        raise FileNotFoundError(f"{path} has no training state ({STATE_JSON}); it cannot be resumed")
    if STATE_JSON in config.get("files", {}):
        _check_sha(path / STATE_JSON, config["files"][STATE_JSON])
    try:
        return json.loads((path / STATE_JSON).read_text()).get("info", {})
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path / STATE_JSON} is not valid JSON: {exc}") from None


def load_training_state(path: str | os.PathLike) -> dict:
    """``{"model": state, "ema": state, "optimizer": state_dict, "info": dict}`` of a checkpoint."""
    path = Path(path)
    config = read_config(path)
    if not (path / STATE_JSON).is_file():
        raise FileNotFoundError(f"{path} has no training state ({STATE_JSON}); it cannot be resumed")
    tensors = _load_tensors(path / STATE_TENSORS, config.get("files", {}).get(STATE_TENSORS))
    if STATE_JSON in config.get("files", {}):  # recorded since format version 2
        _check_sha(path / STATE_JSON, config["files"][STATE_JSON])
    try:
        meta = json.loads((path / STATE_JSON).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path / STATE_JSON} is not valid JSON: {exc}") from None
    state = {}
    for pid, entries in meta["optimizer"]["state"].items():
        state[int(pid)] = {name: (tensors[e["tensor"]] if "tensor" in e else e["value"]) for name, e in entries.items()}
    groups = []
    for group in meta["optimizer"]["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"model": {k[6:]: v for k, v in tensors.items() if k.startswith("model/")},
            "ema": {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")},
            "optimizer": {"state": state, "param_groups": groups}, "info": meta.get("info", {})}
