"""What every benchmark JSON records beside its numbers: the command, the date, the machine (cores, GPU
or not, load average at start and end), the library versions and the code's commit.

    from provenance import provenance, finish, write_result
    info = provenance()            # at the start: command, date, machine, versions, loadavg_start
    ...                            # the measurements
    write_result(out_dir, "name", {"benchmark": "name", **finish(info), ...})

``finish`` adds ``loadavg_end`` and the wall time since ``provenance()``: a load average far above 0
at either end says another job shared the machine and the timings are suspect.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from solver.io import write_text_atomic
from solver.provenance import git_commit

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "scipy", "pyfftw", "torch", "mpi4py", "h5py", "cupy-cuda12x")


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def _cpu() -> dict:
    """The CPU's model name and whether it has bf16 units (AMX or AVX512-BF16: FLEX's bfloat16 speed
    depends on them), from /proc/cpuinfo where there is one."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return {"cpu": model, "bf16_units": bool(flags & {"amx_bf16", "avx512_bf16"})}


def _gpu() -> str | None:
    """The GPU's name when torch sees one (torch imported only if the benchmark already did)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def provenance() -> dict:
    """Call at the start of a benchmark."""
    return {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),  # quoted: it can be pasted back
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "gpu": _gpu(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    **_cpu(), "loadavg_start": list(os.getloadavg())},
        "versions": _versions(),
        "commit": git_commit(short=True),
        "_started": time.perf_counter(),
    }


def median_time(fn, repeats: int, warmup: bool = True) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn`` (after one untimed call when ``warmup``:
    oneDNN primitives, FFT plans)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def finish(info: dict) -> dict:
    """Call at the end: a copy of ``info`` with ``loadavg_end`` and ``wall_s``."""
    out = {k: v for k, v in info.items() if k != "_started"}
    out["machine"] = dict(info["machine"], loadavg_end=list(os.getloadavg()), gpu=info["machine"]["gpu"] or _gpu())
    out["wall_s"] = time.perf_counter() - info["_started"]
    return out


def write_result(out_dir: Path, name: str, result: dict) -> Path:
    """Write ``out_dir/name.json`` atomically (solver.io: a stopped benchmark never leaves half a file)."""
    return write_text_atomic(Path(out_dir) / f"{name}.json", json.dumps(result, indent=2, default=float) + "\n")
