"""Torch data sets: shapes, normalisation from the training split, crops, the paper's pipeline, windows."""
import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flexcouple.data import well
from flexcouple.data.coarsen import coarsen, upsample
from flexcouple.data.config import OODSet, load_preset
from flexcouple.data.datasets import ForecastDataset, SuperResDataset, load_normalization
from flexcouple.data.generate import generate


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    cfg = load_preset("tiny").replace(n=32, snapshots=5, spinup=0.5, train=2, valid=1, test=1,
                                      reynolds=[100.0, 150.0], resolution_tolerance=1.0, coarsen_factors=[4],
                                      ood=[OODSet("walls", boundaries=["free-slip"], reynolds=[100.0])])
    out = tmp_path_factory.mktemp("datasets") / "ds"
    generate(cfg, out, comm=None, progress=False, log=lambda m: None)
    return out


def raw(root, split, rel_index=0):
    meta = json.loads((root / well.METADATA_FILE).read_text())
    path = root / meta["splits"][split]["files"][rel_index]
    with h5py.File(path, "r") as f:
        return f["t0_fields/vorticity"][:].astype(np.float64), float(f.attrs["Re"])


def test_normalization_comes_from_the_training_split_and_is_shared(root):
    norm = load_normalization(root)
    train = np.concatenate([raw(root, "train", i)[0].ravel() for i in range(2)])
    assert norm["mean"] == pytest.approx(train.mean(), abs=1e-6)
    assert norm["std"] == pytest.approx(train.std(), rel=1e-6)
    for split in ("train", "test", "walls"):
        assert SuperResDataset(root, split).normalization == norm
        assert ForecastDataset(root, split).normalization == norm
    ds = SuperResDataset(root, "train")
    targets = torch.stack([ds[i]["target"] for i in range(len(ds))])
    assert abs(float(targets.mean())) < 1e-4 and float(targets.std()) == pytest.approx(1.0, rel=1e-3)


def test_superres_items_match_the_contract(root):
    ds = SuperResDataset(root, "train", crop=16, samples_per_snapshot=2)
    assert len(ds) == 2 * 2 * 5 * 2  # files x trajectories x snapshots x crops
    item = ds[7]
    assert set(item) == {"condition", "target", "reynolds"}
    assert item["condition"].shape == (1, 16, 16) and item["target"].shape == (1, 16, 16)
    assert item["reynolds"].shape == () and all(v.dtype == torch.float32 for v in item.values())
    assert float(ds[0]["reynolds"]) == 100.0 and float(ds[len(ds) - 1]["reynolds"]) == 150.0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)))
    assert batch["condition"].shape == (4, 1, 16, 16) and batch["reynolds"].shape == (4,)


def test_full_field_superres_with_spectral_upsampling_is_the_projection(root):
    ds = SuperResDataset(root, "train", factor=4, coarsen_method="spectral", upsample="spectral")
    w, _ = raw(root, "train")
    item = ds[3]  # file 0, trajectory 0, snapshot 3
    norm = ds.normalization
    fine = w[0, 3]
    np.testing.assert_allclose(ds.denormalize(item["target"][0].double().numpy()), fine, atol=1e-4)
    expected = upsample(coarsen(fine, 4, "spectral"), 4, "spectral")
    np.testing.assert_allclose(item["condition"][0].double().numpy(), (expected - norm["mean"]) / norm["std"], atol=1e-5)


def test_stride_bicubic_crop_is_the_papers_pipeline(root):
    ds = SuperResDataset(root, "train", crop=16, factor=4, coarsen_method="stride", upsample="bicubic", seed=3)
    w, _ = raw(root, "train")
    norm = ds.normalization
    for index in (0, 4):
        item = ds[index]
        target = ds.denormalize(item["target"][0].double().numpy())
        # locate the (wrapping) crop in the full field, then redo the paper's steps on it
        full = w[0, index]
        ox, oy = ds._offsets(index, ds.files[0], multiple=4)
        crop = np.roll(np.roll(full, -ox, 0), -oy, 1)[:16, :16]
        np.testing.assert_allclose(target, crop, atol=1e-4)
        lowres = torch.from_numpy(crop[None, None, ::4, ::4])
        paper = F.interpolate(lowres, size=(16, 16), mode="bicubic", align_corners=False)[0, 0].numpy()
        np.testing.assert_allclose(item["condition"][0].double().numpy(), (paper - norm["mean"]) / norm["std"], atol=1e-5)


def test_crops_wrap_on_periodic_axes_only_and_change_with_epoch(root):
    ds = SuperResDataset(root, "train", crop=24, factor=4, seed=0)
    offsets = {ds._offsets(i, ds.files[0], 4) for i in range(len(ds))}
    assert any(ox + 24 > 32 for ox, _ in offsets) and any(oy + 24 > 32 for _, oy in offsets)  # wraps
    assert all(ox % 4 == 0 and oy % 4 == 0 for ox, oy in offsets)
    walls = SuperResDataset(root, "walls", crop=24, factor=4)
    assert all(oy + 24 <= 32 for _, oy in (walls._offsets(i, walls.files[0], 4) for i in range(len(walls))))
    first = [ds._offsets(i, ds.files[0], 4) for i in range(8)]
    assert first == [ds._offsets(i, ds.files[0], 4) for i in range(8)]  # deterministic
    ds.set_epoch(1)
    assert first != [ds._offsets(i, ds.files[0], 4) for i in range(8)]


def test_forecast_windows(root):
    ds = ForecastDataset(root, "test", past=2, lead=2)
    w, re_ = raw(root, "test")
    assert len(ds) == 2 * 1 * (5 - 2 - 1)  # files x trajectories x windows (t = 1, 2)
    item = ds[1]  # file 0, trajectory 0, t = 2: condition = (w1, w2), target = w4
    assert item["condition"].shape == (2, 32, 32) and item["target"].shape == (1, 32, 32)
    np.testing.assert_allclose(ds.denormalize(item["condition"].double().numpy()), w[0, 1:3], atol=1e-4)
    np.testing.assert_allclose(ds.denormalize(item["target"][0].double().numpy()), w[0, 4], atol=1e-4)
    assert float(item["reynolds"]) == re_
    cropped = ForecastDataset(root, "train", past=3, lead=1, crop=8)
    assert cropped[0]["condition"].shape == (3, 8, 8) and len(cropped) == 2 * 2 * 2
    only = ForecastDataset(root, "train", reynolds=[150.0])
    assert {float(only[i]["reynolds"]) for i in range(len(only))} == {150.0}


def test_stored_coarse_fields_are_used(tmp_path):
    cfg = load_preset("tiny").replace(n=32, snapshots=2, spinup=0.2, train=1, valid=0, test=0, reynolds=[100.0],
                                      resolution_tolerance=1.0, coarsen_factors=[4], coarsen_method="stride",
                                      store_coarse=True, ood=[])
    out = tmp_path / "stored"
    generate(cfg, out, comm=None, progress=False, log=lambda m: None)
    ds = SuperResDataset(out, "train", upsample="spectral")
    assert ds.coarsen_method == "stride" and ds.factor == 4
    with h5py.File(out / "data/train/kolmogorov_periodic_Re100_kf4.hdf5", "a") as f:
        f["coarse/stride_x4/vorticity"][0, 1] = 0.0  # prove the stored copy is what is read
    item = ds[1]
    assert torch.allclose(ds.denormalize(item["condition"].double()), torch.zeros(1, 32, 32, dtype=torch.float64), atol=1e-5)


def test_errors_name_the_problem(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        SuperResDataset(tmp_path / "nowhere", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a flexcouple data set"):
        ForecastDataset(tmp_path / "empty", "train")
    with pytest.raises(ValueError, match="no split 'ood_x'"):
        SuperResDataset(root, "ood_x")
    with pytest.raises(ValueError, match="multiple of the factor"):
        SuperResDataset(root, "train", crop=10, factor=4)
    with pytest.raises(ValueError, match="too few"):
        ForecastDataset(root, "train", past=4, lead=2)
    with pytest.raises(ValueError, match="no files with Re"):
        SuperResDataset(root, "train", reynolds=[999.0])
    with pytest.raises(IndexError):
        SuperResDataset(root, "train")[10_000]
