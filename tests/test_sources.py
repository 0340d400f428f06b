import numpy as np
import pytest

from genspot.data import load_dataset, open_source
from genspot.data.info import dataset_info
from genspot.data.sources import classify_path
from genspot.errors import GenspotError

from conftest import jpeg_bytes, toy_image, write_zip


@pytest.mark.parametrize(
    "path, expected",
    [
        ("train/REAL/1.jpg", (0, "train")),
        ("train/FAKE/1 (2).jpg", (1, "train")),
        ("cifake/Test/fake/x.png", (1, "test")),
        ("REAL/a.jpg", (0, "all")),
        ("deep/prefix/Real/sub/a.jpg", (0, "all")),
        ("validation/FAKE/a.jpg", (1, "val")),
        ("train/other/a.jpg", None),
        ("README.md", None),
        ("__MACOSX/train/REAL/._1.jpg", None),
        ("train/REAL/", None),
    ],
)
def test_classify_path(path, expected):
    assert classify_path(path) == expected


def _layout(rng, n=6):
    members = {}
    for split in ("train", "test"):
        for label in ("REAL", "FAKE"):
            for i in range(n):
                members[f"cifake/{split}/{label}/{i}.jpg"] = jpeg_bytes(toy_image(rng, label == "FAKE"))
    return members


def test_zip_and_folder_read_the_same(tmp_path, rng):
    members = _layout(rng)
    z = write_zip(tmp_path / "d.zip", members)
    folder = tmp_path / "folder"
    for name, data in members.items():
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    a = load_dataset(z, progress=False)
    b = load_dataset(folder, progress=False)
    assert len(a) == len(b) == 24
    order_a = np.argsort(a.paths)
    order_b = np.argsort(b.paths)
    assert [a.paths[i] for i in order_a] == [b.paths[i] for i in order_b]
    assert np.array_equal(a.images.numpy()[order_a], b.images.numpy()[order_b])
    assert a.images.shape[1:] == (3, 32, 32) and a.images.dtype.is_floating_point is False
    info = dataset_info(a)
    assert info["splits"]["train"] == {"REAL": 6, "FAKE": 6, "total": 12}
    assert info["splits"]["test"] == {"REAL": 6, "FAKE": 6, "total": 12}


def test_decoded_pixels_match_pil(tmp_path, rng):
    from PIL import Image
    import io

    data = jpeg_bytes(toy_image(rng, False))
    z = write_zip(tmp_path / "d.zip", {"REAL/a.jpg": data, "FAKE/b.jpg": data})
    ds = load_dataset(z, progress=False, workers=1)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(ds.images[0].numpy(), ref)


def test_other_sizes_are_resized_and_reported(tmp_path, rng):
    big = np.asarray(rng.integers(0, 255, (64, 48, 3)), dtype=np.uint8)
    z = write_zip(tmp_path / "d.zip", {"REAL/a.jpg": jpeg_bytes(big), "FAKE/b.jpg": jpeg_bytes(toy_image(rng, True))})
    ds = load_dataset(z, progress=False)
    assert ds.images.shape == (2, 3, 32, 32)
    assert dataset_info(ds)["image_sizes"] == {"48x64": 1, "32x32": 1}


def test_corrupt_members_are_skipped_and_counted(tmp_path, rng, capsys):
    good = jpeg_bytes(toy_image(rng, False))
    members = {f"train/REAL/{i}.jpg": good for i in range(5)}
    members["train/FAKE/ok.jpg"] = jpeg_bytes(toy_image(rng, True))
    members["train/FAKE/truncated.jpg"] = good[: len(good) // 2]
    members["train/FAKE/notes.txt"] = b"not an image at all"
    members["train/REAL/empty.jpg"] = b""
    z = write_zip(tmp_path / "d.zip", members)
    ds = load_dataset(z, progress=False)
    assert len(ds) == 6
    assert sorted(p for p, _ in ds.skipped) == ["train/FAKE/notes.txt", "train/FAKE/truncated.jpg", "train/REAL/empty.jpg"]
    err = capsys.readouterr().err
    assert err.count("warning:") == 3
    assert dataset_info(ds)["skipped"] == 3


def test_cache_is_reused_and_keyed_by_content(tmp_path, rng):
    z = write_zip(tmp_path / "d.zip", {"REAL/a.jpg": jpeg_bytes(toy_image(rng, False)), "FAKE/b.jpg": jpeg_bytes(toy_image(rng, True))})
    first = load_dataset(z, progress=False)
    again = load_dataset(z, progress=False)
    assert not first.from_cache and again.from_cache
    assert np.array_equal(first.images.numpy(), again.images.numpy())
    write_zip(z, {"REAL/a.jpg": jpeg_bytes(toy_image(rng, False)), "FAKE/b.jpg": jpeg_bytes(toy_image(rng, True))})
    changed = load_dataset(z, progress=False)
    assert not changed.from_cache and changed.fingerprint != first.fingerprint
    other_size = load_dataset(z, size=16, progress=False)
    assert not other_size.from_cache and other_size.images.shape[-1] == 16


def test_bad_paths_give_clear_errors(tmp_path):
    with pytest.raises(GenspotError, match="no such file"):
        open_source(tmp_path / "missing.zip")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(GenspotError, match="neither a folder nor a zip"):
        open_source(tmp_path / "x.txt")
    empty = write_zip(tmp_path / "e.zip", {"readme.txt": b"x"})
    with pytest.raises(GenspotError, match="found no images in a layout genspot reads"):
        load_dataset(empty, progress=False)


def test_parallel_decode_equals_serial(toy_zip, tmp_path, monkeypatch):
    a = load_dataset(toy_zip, workers=1, cache=False, progress=False)
    b = load_dataset(toy_zip, workers=2, cache=False, progress=False)
    assert a.paths == b.paths and a.hashes == b.hashes
    assert np.array_equal(a.images.numpy(), b.images.numpy())


def test_duplicates_are_found(tmp_path, rng):
    dup = jpeg_bytes(toy_image(rng, True))
    members = {"train/FAKE/a.jpg": dup, "train/FAKE/b.jpg": dup, "test/FAKE/c.jpg": dup}
    members["train/REAL/r.jpg"] = jpeg_bytes(toy_image(rng, False))
    ds = load_dataset(write_zip(tmp_path / "d.zip", members), progress=False)
    d = dataset_info(ds)["duplicates"]
    assert d["groups"] == 1 and d["images"] == 3
    assert d["within_split"]["train"] == {"groups": 1, "images": 2}
    assert d["groups_across_splits"] == 1
