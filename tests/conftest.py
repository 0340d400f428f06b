from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genspot.data.synthetic import make_toy_archive, toy_image

SHARED_ZIP = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifake-train.zip"


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory, monkeypatch):
    # Every test gets a private decode cache: no test sees another's (or the user's) cache.
    monkeypatch.setenv("GENSPOT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def jpeg_bytes(arr: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture(scope="session")
def toy_zip(tmp_path_factory) -> Path:
    """1,000 train + 400 test toy images per class, Kaggle layout."""
    d = tmp_path_factory.mktemp("toy")
    make_toy_archive(d / "toy.zip", 500, splits=("train",), seed=1)
    return d / "toy.zip"


@pytest.fixture(scope="session")
def toy_zip_with_test(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("toy2")
    return make_toy_archive(d / "toy.zip", 600, splits=("train", "test"), seed=2)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


__all__ = ["jpeg_bytes", "write_zip", "toy_image", "SHARED_ZIP"]


def rescore_val(run_dir: Path, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """A saved run re-scored in one process on its own validation split: (p_fake, labels, mean
    negative log-likelihood per image, config), to hold against what training logged."""
    from genspot.data import load_dataset
    from genspot.evaluate import predict_scores, select_indices
    from genspot.models.io import load_model_dir

    model, cfg = load_model_dir(run_dir)
    ds = load_dataset(data, progress=False)
    idx, _ = select_indices(ds, cfg, "val")
    p_fake = predict_scores(model, cfg, ds, idx)
    y = ds.labels.numpy()[idx]
    return p_fake, y, -np.log(np.where(y == 1, p_fake, 1 - p_fake)), cfg


def random_model_dir(path: Path, name: str) -> Path:
    """An untrained model directory (seeded): enough for tests of plumbing, not of accuracy."""
    import torch

    from genspot.models.io import save_model_dir
    from genspot.models.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(model=name, tta="flip")  # every other field: the spec's defaults (32 px, resize, ImageNet mean/std)
    return save_model_dir(spec.build().eval(), spec.to_config(), path)


@pytest.fixture(scope="session")
def make_model_dir():
    return random_model_dir
