"""`genspot train --cache none`: decoding from the archive batch by batch gives the cached run's results."""

from __future__ import annotations

import json

import numpy as np

from conftest import jpeg_bytes, write_zip


def _rows(out):
    return [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]


def test_streaming_from_the_archive_repeats_the_cached_run_exactly(tmp_path, toy_zip):
    from genspot.data.decode import cache_root
    from genspot.train import TrainConfig, fit

    common = dict(model="cifake_cnn", data=str(toy_zip), epochs=2, batch_size=64, device="cpu", progress=False, workers=2)
    fit(TrainConfig(out=str(tmp_path / "disk"), **common))
    decoded = list((cache_root() / "decoded").glob("*/images.npy"))
    fit(TrainConfig(out=str(tmp_path / "none"), cache="none", **common))
    assert list((cache_root() / "decoded").glob("*/images.npy")) == decoded  # no decoded copy written
    a, b = _rows(tmp_path / "disk"), _rows(tmp_path / "none")
    # same split, same batches, same pixels: the same run, to the last digit
    assert [r["val_accuracy"] for r in a] == [r["val_accuracy"] for r in b]
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    cfg_a, cfg_b = (json.loads((tmp_path / d / "config.json").read_text())["data"] for d in ("disk", "none"))
    assert cfg_a == cfg_b


def test_a_member_that_cannot_be_decoded_is_left_out_of_its_batch(tmp_path, capfd):
    from genspot.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    members = {f"train/{c}/{i}.jpg": jpeg_bytes(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for c in ("REAL", "FAKE") for i in range(60)}
    members["train/FAKE/broken.jpg"] = b"\xff\xd8 not a jpeg"
    data = write_zip(tmp_path / "d.zip", members)
    s = fit(TrainConfig(model="cifake_cnn", data=str(data), out=str(tmp_path / "r"), epochs=2, batch_size=16, device="cpu",
                        progress=False, cache="none", workers=0))  # fmt: skip
    assert s["epochs_run"] == 2
    err = capfd.readouterr().err
    assert err.count("skipped train/FAKE/broken.jpg") == 1  # said once, not once per epoch
