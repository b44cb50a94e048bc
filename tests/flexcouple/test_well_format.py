"""The HDF5 layout: Well schema, provenance, atomic writes, and clear errors for bad files."""
import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from flexcouple.data import well
from flexcouple.data.config import load_preset
from flexcouple.data.generate import generate

REPO_ROOT = Path(__file__).resolve().parents[2]


def small_config():
    return load_preset("tiny").replace(n=32, snapshots=4, spinup=0.5, train=2, valid=1, test=1,
                                       reynolds=[100.0], resolution_tolerance=1.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("well") / "ds"
    cfg = small_config()
    generate(cfg, out, comm=None, progress=False, log=lambda m: None)
    return out, cfg


def test_files_follow_the_well_layout(dataset):
    out, cfg = dataset
    path = out / "data" / "train" / "kolmogorov_periodic_Re100_kf4.hdf5"
    with h5py.File(path, "r") as f:
        for attr in ("dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters"):
            assert attr in f.attrs
        assert f.attrs["n_trajectories"] == 2 and f.attrs["Re"] == 100.0
        assert f["t0_fields/vorticity"].shape == (2, 4, 32, 32)
        assert f["t0_fields/vorticity"].dtype == np.float32
        assert f["t1_fields/velocity"].shape == (2, 4, 32, 32, 2)
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y"]
        np.testing.assert_allclose(f["dimensions/x"][:], 2 * np.pi * np.arange(32) / 32, rtol=1e-6)
        np.testing.assert_allclose(f["dimensions/time"][:], cfg.times(), rtol=1e-6)
        assert set(f["boundary_conditions"]) == {"x_periodic", "y_periodic"}
        assert f["boundary_conditions/x_periodic"].attrs["bc_type"] == "PERIODIC"
        assert {"Re", "drag", "forcing_wavenumber", "viscosity"} <= set(f["scalars"].attrs["field_names"])
        assert float(f["scalars/Re"][()]) == 100.0
    walls = out / "data" / "boundary_free_slip" / "kolmogorov_freeslip_Re100_kf4.hdf5"
    with h5py.File(walls, "r") as f:
        assert f["boundary_conditions/y_wall"].attrs["bc_type"] == "WALL"
    summary = well.validate_file(path, config_hash=cfg.config_hash(), full=True)
    assert summary["n_trajectories"] == 2 and summary["parameters"]["Re"] == 100.0


def test_velocity_is_consistent_with_vorticity(dataset):
    out, _ = dataset
    with h5py.File(out / "data/train/kolmogorov_periodic_Re100_kf4.hdf5", "r") as f:
        w = f["t0_fields/vorticity"][0, -1].astype(np.float64)
        uv = f["t1_fields/velocity"][0, -1].astype(np.float64)
    # omega = dv/dx - du/dy, computed spectrally on the periodic grid
    k = np.fft.fftfreq(32, 1 / 32)
    kx, ky = np.meshgrid(k, k, indexing="ij")
    dvdx = np.fft.ifft2(1j * kx * np.fft.fft2(uv[..., 1])).real
    dudy = np.fft.ifft2(1j * ky * np.fft.fft2(uv[..., 0])).real
    assert np.abs(dvdx - dudy - w).max() < 1e-3 * np.abs(w).max()


def test_provenance_is_complete(dataset):
    out, cfg = dataset
    prov = well.read_provenance(out / "data/train/kolmogorov_periodic_Re100_kf4.hdf5")
    assert prov["package_version"]
    # the checkout's full commit (never the "unknown" fallback here: the tests run from a git checkout)
    if (REPO_ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", prov["git_commit"]), prov["git_commit"]
    else:
        assert prov["git_commit"] == "unknown"
    assert prov["config_hash"] == cfg.config_hash()
    assert "[flow]" in prov["config_toml"] and "reynolds = [100.0]" in prov["config_toml"]
    assert prov["solver_settings"]["reynolds"] == 100.0 and prov["solver_settings"]["integrator"]
    assert 0 < prov["dt_min"] <= prov["dt_mean"] <= prov["dt_max"]
    traj = prov["trajectories"]
    assert traj["seed"] == [cfg.ic_seed("train", 0), cfg.ic_seed("train", 1)]
    assert all(s > 0 for s in traj["steps"]) and all(t > 0 for t in traj["wall_time_s"])
    assert all(0 <= r < 1 for r in traj["resolution_ratio"])
    assert "resolution_check" in prov
    # the flag is the recorded check, not just any boolean
    assert bool(prov["under_resolved"]) == (max(traj["resolution_ratio"]) > prov["resolution_tolerance"])
    assert prov["resolution_ratio_max"] == pytest.approx(max(traj["resolution_ratio"]))


def test_dataset_metadata_and_stats_files(dataset):
    out, cfg = dataset
    meta = json.loads((out / well.METADATA_FILE).read_text())
    assert meta["status"] == "complete" and meta["config_hash"] == cfg.config_hash()
    assert set(meta["splits"]) == {"train", "valid", "test", "re_low", "re_high", "boundary_free_slip", "forcing_k2"}
    assert meta["splits"]["re_high"]["ood"] and not meta["splits"]["train"]["ood"]
    assert meta["normalization"]["std"] > 0
    assert (out / "config.toml").is_file() and (out / "stats.yaml").is_file()
    assert (out / f"{cfg.name}.yaml").is_file()
    assert not (out / ".work").exists()  # checkpoints are removed once merged


def test_the_wells_own_reader_loads_the_data_set(dataset):
    pytest.importorskip("the_well", reason="the_well is an optional test dependency (pip install the_well==1.2.0 --no-deps einops pyyaml)")
    from the_well.data import WellDataset
    from the_well.data.normalization import ZScoreNormalization

    out, _ = dataset
    for split in ("train", "boundary_free_slip"):
        ds = WellDataset(path=str(out), well_split_name=split, n_steps_input=2, n_steps_output=1,
                         use_normalization=True, normalization_type=ZScoreNormalization)
        item = ds[0]
        assert item["input_fields"].shape == (2, 32, 32, 3)  # vorticity + 2 velocity components
        assert item["output_fields"].shape == (1, 32, 32, 3)
        assert ds.metadata.dataset_name == "kolmogorov-tiny"
        assert ds.metadata.field_names[0] == ["vorticity"]
    assert "WALL" in ds.metadata.boundary_condition_types
    # its z-score normalisation used our stats.yaml: normalised vorticity has about unit std
    ds = WellDataset(path=str(out), well_split_name="train", n_steps_input=1, n_steps_output=1,
                     use_normalization=True, normalization_type=ZScoreNormalization)
    w = np.stack([ds[i]["input_fields"][..., 0].numpy() for i in range(len(ds))])
    assert 0.7 < w.std() < 1.3


def test_stats_yaml_parses_as_yaml():
    yaml = pytest.importorskip("yaml", reason="PyYAML is optional (comes with the_well)")
    doc = {"mean": {"vorticity": 1e-05, "velocity": [0.5, -2e-10]}, "field_names": {0: ["a"], 1: []}, "n": 3,
           "flag": True, "name": "a b"}
    assert yaml.safe_load(well.to_yaml(doc)) == doc


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.hdf5"
    with pytest.raises(RuntimeError):
        with well.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with well.atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and list(tmp_path.iterdir()) == [target]


def test_missing_truncated_foreign_and_wrong_schema_files(dataset, tmp_path):
    out, cfg = dataset
    good = out / "data/train/kolmogorov_periodic_Re100_kf4.hdf5"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        well.validate_file(tmp_path / "none.hdf5")
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(well.WellFormatError, match="truncated.hdf5"):
        well.validate_file(truncated)
    empty = tmp_path / "empty.hdf5"
    empty.touch()
    with pytest.raises(well.WellFormatError, match="empty file"):
        well.validate_file(empty)
    text = tmp_path / "text.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(well.WellFormatError, match="not a readable HDF5 file"):
        well.validate_file(text)
    foreign = tmp_path / "foreign.hdf5"
    with h5py.File(foreign, "w") as f:
        f["fields"] = np.zeros((2, 8, 8))
    with pytest.raises(well.WellFormatError, match="foreign.hdf5: not a Well-format file"):
        well.validate_file(foreign)
    wrong = tmp_path / "wrong.hdf5"
    shutil.copy(good, wrong)
    with h5py.File(wrong, "a") as f:
        del f["t0_fields/vorticity"]
        f["t0_fields/vorticity"] = np.zeros((2, 4, 16, 16), dtype=np.float32)
    with pytest.raises(well.WellFormatError, match=r"wrong.hdf5: t0_fields/vorticity has shape"):
        well.validate_file(wrong)
    with pytest.raises(well.WellFormatError, match="made with another config"):
        well.validate_file(good, config_hash="0" * 64)
    nan = tmp_path / "nan.hdf5"
    shutil.copy(good, nan)
    with h5py.File(nan, "a") as f:
        f["t0_fields/vorticity"][1, 2, 3, 4] = np.nan
    well.validate_file(nan)  # structure is fine ...
    with pytest.raises(well.WellFormatError, match="non-finite"):
        well.validate_file(nan, full=True)  # ... the data are not


def test_writer_stores_coarse_fields_when_asked(tmp_path):
    from flexcouple.data.coarsen import coarsen

    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 16, 16))
    x = 2 * np.pi * np.arange(16) / 16
    path = tmp_path / "c.hdf5"
    well.write_parameter_set(path, dataset_name="t", trajectories=[{"vorticity": w, "seed": 1}], times=np.arange(3.0),
                             x=x, y=x, boundary="periodic", parameters={"Re": 10.0}, attrs={"config_hash": "h"},
                             provenance_attrs={}, coarse={"spectral_x4": (4, "spectral"), "stride_x4": (4, "stride")})
    summary = well.validate_file(path)
    assert summary["coarse"] == ["spectral_x4", "stride_x4"] and not summary["has_velocity"]
    with h5py.File(path, "r") as f:
        np.testing.assert_allclose(f["coarse/stride_x4/vorticity"][0], w[:, ::4, ::4], rtol=1e-6)
        np.testing.assert_allclose(f["coarse/spectral_x4/vorticity"][0], coarsen(w, 4, "spectral"), atol=1e-6)
