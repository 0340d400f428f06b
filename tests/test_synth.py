"""genspot synth: the tiny autoencoder rebuilt and loaded strictly, the aligned archive's contract,
bad input, resumption after a kill."""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genspot.errors import GenspotError

TAEF2 = Path(__file__).resolve().parents[1] / ".." / "shared" / "weights" / "taef2"
needs_weights = pytest.mark.skipif(not (TAEF2 / "decoder.safetensors").is_file(), reason=f"{TAEF2} not present")


def photo(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    a = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    img = Image.fromarray(np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8))
    return img.convert(mode) if mode != "RGB" else img


def photo_folder(d: Path) -> Path:
    d.mkdir()
    photo(64, 64, 0).save(d / "a.jpg", quality=92)
    photo(64, 48, 1).save(d / "b.jpg", quality=75, subsampling=0)  # 4:4:4, another quality
    photo(60, 44, 2).save(d / "c.jpg", quality=90)  # sides not multiples of 8
    photo(64, 64, 3, "L").save(d / "d.jpg", quality=90)  # grayscale
    photo(40, 40, 4).save(d / "e.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


def test_a_mismatched_weights_file_is_one_line_naming_the_file_and_the_tensor(tmp_path):
    from safetensors.torch import save_file

    from genspot.synth.taesd import TinyAutoencoder, decoder, encoder

    (tmp_path / "ae").mkdir()
    save_file({k: v.half() for k, v in encoder(4).state_dict().items()}, str(tmp_path / "ae" / "encoder.safetensors"))
    dec = {k: v.half() for k, v in decoder(4).state_dict().items()}
    dec["19.weight"] = torch.zeros(3, 64, 1, 1, dtype=torch.float16)
    save_file(dec, str(tmp_path / "ae" / "decoder.safetensors"))
    with pytest.raises(GenspotError, match=r"decoder.safetensors: tensor '19.weight' is \(3, 64, 1, 1\), expected \(3, 64, 3, 3\)"):
        TinyAutoencoder.load(tmp_path / "ae")
    del dec["19.weight"]
    save_file(dec, str(tmp_path / "ae" / "decoder.safetensors"))
    with pytest.raises(GenspotError, match="lacks tensor '19.weight'"):
        TinyAutoencoder.load(tmp_path / "ae")
    with pytest.raises(GenspotError, match="no autoencoder folder"):
        TinyAutoencoder.load(tmp_path / "nope")


@needs_weights
def test_taef2_round_trip_renders_a_photo_faithfully_at_any_size():
    from genspot.synth.taesd import TinyAutoencoder

    ae = TinyAutoencoder.load(TAEF2)
    for w, h in ((64, 64), (60, 44)):
        x = torch.from_numpy(np.asarray(photo(w, h, 5), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        y = ae.round_trip(x)
        assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
        psnr = float(10 * torch.log10(1 / ((y - x) ** 2).mean()))
        assert 22 < psnr < 60, psnr  # a faithful rendering, and not the input itself


def _synth(tmp_path, photos, out, **kw):
    from genspot.synth.engine import SynthConfig, synth

    base = dict(photos=[str(photos)], out=str(out), operators=["ae:taef2", "splice:ae:taef2", "up:bilinear", "identity"],
                autoencoders={"taef2": str(TAEF2)}, workers=0, progress=False)  # fmt: skip
    return synth(SynthConfig(**{**base, **kw}))


@needs_weights
def test_the_archive_keeps_each_photo_and_writes_its_fakes_in_its_own_container(tmp_path):
    from PIL import JpegImagePlugin

    d = photo_folder(tmp_path / "photos")
    m = _synth(tmp_path, d, tmp_path / "aligned.zip")
    assert m["photos"] == 5 and [s["name"] for s in m["skipped"]] == ["broken.jpg"]
    assert m["probes"] == ["up:bilinear", "identity"] and m["training_sources"] == ["ae:taef2", "splice:ae:taef2"]
    with zipfile.ZipFile(tmp_path / "aligned.zip") as z:
        names = set(z.namelist())
        assert json.loads(z.read("genspot-synth.json"))["seed"] == 0
        for stem, ext in (("a", ".jpg"), ("b", ".jpg"), ("c", ".jpg"), ("d", ".jpg"), ("e", ".png")):
            original = (d / f"{stem}{ext}").read_bytes()
            for src in m["training_sources"] + m["probes"]:
                assert z.read(f"{src}/0_real/{stem}{ext}") == original  # the photo's bytes, unchanged
                real, fake = Image.open(io.BytesIO(original)), Image.open(io.BytesIO(z.read(f"{src}/1_fake/{stem}{ext}")))
                assert (fake.format, fake.size, fake.mode) == (real.format, real.size, real.mode), (src, stem)
                if real.format == "JPEG":  # the photo's own tables and subsampling: quality is no cue
                    assert fake.quantization == real.quantization
                    assert JpegImagePlugin.get_sampling(fake) == JpegImagePlugin.get_sampling(real)
            mask = np.asarray(Image.open(io.BytesIO(z.read(f"splice:ae:taef2/masks/{stem}.png"))))
            assert mask.shape == Image.open(io.BytesIO(original)).size[::-1] and set(np.unique(mask)) <= {0, 255}
            assert 0.05 < (mask == 255).mean() < 0.5
        assert not any(n.startswith("ae:taef2/masks/") for n in names)
    # splices differ from their photo inside the mask far more than outside it
    with zipfile.ZipFile(tmp_path / "aligned.zip") as z:
        real = np.asarray(Image.open(io.BytesIO(z.read("splice:ae:taef2/0_real/a.jpg"))).convert("RGB"), dtype=np.float32)
        ae = np.asarray(Image.open(io.BytesIO(z.read("ae:taef2/1_fake/a.jpg"))).convert("RGB"), dtype=np.float32)
        sp = np.asarray(Image.open(io.BytesIO(z.read("splice:ae:taef2/1_fake/a.jpg"))).convert("RGB"), dtype=np.float32)
        mask = np.asarray(Image.open(io.BytesIO(z.read("splice:ae:taef2/masks/a.png")))) == 255
    inside = np.abs(sp - ae).mean(-1)[mask].mean()  # the splice is the round trip inside the region
    outside = np.abs(sp - real).mean(-1)[~mask].mean()  # and the photo (re-encoded) outside it
    assert inside < 4 and outside < 4 and np.abs(ae - real).mean() > 1
    # genspot reads it in place: one source per operator, both classes in each
    from genspot.data import load_dataset

    ds = load_dataset(tmp_path / "aligned.zip", size=32, policy="crop", progress=False)
    assert sorted(set(ds.sources.tolist())) == sorted(m["training_sources"] + m["probes"])
    assert len(ds) == 5 * 4 * 2


@needs_weights
def test_an_existing_archive_is_refused_and_a_killed_run_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    import genspot.synth.engine as engine

    d = photo_folder(tmp_path / "photos")
    (d / "broken.jpg").unlink()
    monkeypatch.setattr(engine, "CHUNK", 2)
    fresh = _synth(tmp_path, d, tmp_path / "fresh.zip", operators=["ae:taef2", "splice:ae:taef2"])
    with pytest.raises(GenspotError, match="exists; pass --force"):
        _synth(tmp_path, d, tmp_path / "fresh.zip")
    real_chunk = engine._make_chunk

    def dies_on_the_second(args):
        if args[0] == 1:
            raise KeyboardInterrupt  # a kill in the middle of the run
        return real_chunk(args)

    monkeypatch.setattr(engine, "_make_chunk", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        _synth(tmp_path, d, tmp_path / "again.zip", operators=["ae:taef2", "splice:ae:taef2"])
    assert not (tmp_path / "again.zip").exists()  # nothing that looks like a finished archive
    assert (tmp_path / "again.zip.parts" / "part-000000.zip").exists()
    with pytest.raises(GenspotError, match="--resume"):
        _synth(tmp_path, d, tmp_path / "again.zip", operators=["ae:taef2", "splice:ae:taef2"])
    monkeypatch.setattr(engine, "_make_chunk", real_chunk)
    resumed = _synth(tmp_path, d, tmp_path / "again.zip", operators=["ae:taef2", "splice:ae:taef2"], resume=True)
    assert resumed["photos"] == fresh["photos"] == 5 and not (tmp_path / "again.zip.parts").exists()
    with zipfile.ZipFile(tmp_path / "fresh.zip") as a, zipfile.ZipFile(tmp_path / "again.zip") as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        assert all(a.read(n) == b.read(n) for n in a.namelist() if n != "genspot-synth.json")  # seeded: the same bytes


def test_bad_operators_and_missing_autoencoders_are_one_line(tmp_path):
    from genspot.synth.operators import parse_operator

    assert parse_operator("splice:ae:x").autoencoder == "x" and parse_operator("up:nearest").probe
    for bad in ("ae", "up:lanczos", "splice:splice:ae:x", "blur", "x" * 5000):
        with pytest.raises(GenspotError, match="operator") as e:
            parse_operator(bad)
        assert len(str(e.value)) < 300
    d = photo_folder(tmp_path / "photos")
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "synth", str(d), "--out", str(tmp_path / "o.zip"), "--op", "ae:taef2"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "--autoencoder taef2=FOLDER" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "genspot.cli", "synth", str(d), "--out", str(tmp_path / "o.zip"), "--op", "identity",
                        "--op", "up:nearest"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 1 and "skipped" in r.stderr and "broken.jpg" in r.stderr  # the bad file reported, the rest made
    with zipfile.ZipFile(tmp_path / "o.zip") as z:
        assert len([n for n in z.namelist() if "/1_fake/" in n]) == 2 * 5


def test_the_split_keeps_a_photo_and_everything_made_from_it_on_one_side(tmp_path):
    from conftest import jpeg_bytes, write_zip

    from genspot.data import load_dataset, make_splits
    from genspot.data.splits import DataSpec, splits_from_config
    from genspot.train import group_by
    from genspot.train_config import TrainConfig

    rng = np.random.default_rng(0)
    members = {"genspot-synth.json": b"{}"}
    for k in range(60):
        for src in ("ae:x", "identity"):
            for cls in ("0_real", "1_fake"):
                members[f"{src}/{cls}/photo{k:03d}.jpg"] = jpeg_bytes(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
    z = write_zip(tmp_path / "aligned.zip", members)
    assert group_by(TrainConfig(model="npr", data=str(z), out="x")) == "stem"
    assert group_by(TrainConfig(model="npr", data=str(z), out="x", group_by="none")) is None
    ds = load_dataset(z, size=16, progress=False)
    s = make_splits(ds, seed=3, val_fraction=0.2, group_by="stem")
    stem = lambda i: Path(ds.paths[i]).stem  # noqa: E731
    train_stems, val_stems = {stem(i) for i in s.train}, {stem(i) for i in s.val}
    assert not train_stems & val_stems and len(val_stems) == 12 and len(s.val) == 12 * 4
    assert (ds.labels.numpy()[s.val] == 1).mean() == 0.5  # each photo brings its real and its fake
    again = splits_from_config(ds, DataSpec.from_config({"split_seed": 3, "val_fraction": 0.2, "group_by": "stem"}))
    assert np.array_equal(again.val, s.val)  # the rule travels in config.json's data block
    plain = make_splits(ds, seed=3, val_fraction=0.2)  # without it, a photo's members land on both sides
    assert {stem(i) for i in plain.train} & {stem(i) for i in plain.val}
