"""Distillation: a student's training targets mix its labels with a teacher's probabilities."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genspot.data import load_dataset, make_splits
from genspot.distill import CACHE_FILE, soft_targets, teacher_targets
from genspot.errors import GenspotError
from genspot.evaluate import predict_scores
from genspot.models.io import load_model_dir
from genspot.data.splits import DataSpec
from genspot.train import TrainConfig, fit


def _cfg(data, out, **kw):
    base = dict(model="cifake_cnn", data=str(data), out=str(out), epochs=2, batch_size=64, lr=0.05,
                val_fraction=0.2, progress=False, device="cpu")  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_soft_targets_mix_label_and_teacher():
    t = soft_targets(torch.tensor([1, 0]), torch.tensor([0.8, 0.3]), 0.5)
    assert torch.allclose(t, torch.tensor([[0.1, 0.9], [0.85, 0.15]]))
    assert torch.allclose(t.sum(1), torch.ones(2))


def test_student_targets_are_the_teachers_probabilities_on_train_only(toy_zip, tmp_path):
    fit(_cfg(toy_zip, tmp_path / "teacher"))
    fit(_cfg(toy_zip, tmp_path / "student", teacher=str(tmp_path / "teacher"), distill=1.0, seed=1, split_seed=0))
    ds = load_dataset(str(toy_zip))
    splits = make_splits(ds, "full", seed=0, val_fraction=0.2)
    teacher, cfg = load_model_dir(tmp_path / "teacher")
    with torch.inference_mode():
        p = predict_scores(teacher.eval(), cfg, ds, np.asarray(splits.train))
    cached = load_file(str(tmp_path / "student" / CACHE_FILE))
    assert torch.equal(cached["indices"], torch.as_tensor(np.asarray(splits.train), dtype=torch.int64))
    assert np.allclose(cached["p_fake"].numpy(), p, atol=1e-5)
    # rebuilt from the cache (as a resumed run does): soft on train, one-hot elsewhere
    student_data = DataSpec.from_config(json.loads((tmp_path / "student" / "config.json").read_text())["data"])
    targets = teacher_targets(str(tmp_path / "teacher"), ds, splits, student_data, 1.0, tmp_path / "student")
    assert np.allclose(targets[splits.train, 1].numpy(), p, atol=1e-5)
    val = torch.as_tensor(np.asarray(splits.val))
    assert torch.equal(targets[val], torch.nn.functional.one_hot(ds.labels[val].long(), 2).float())
    assert json.loads((tmp_path / "student" / "config.json").read_text())["training"]["teacher"] == str(tmp_path / "teacher")
    # another teacher (here: the same weights at another temperature) is scored afresh, not served the cache
    tcfg = json.loads((tmp_path / "teacher" / "config.json").read_text())
    (tmp_path / "teacher" / "config.json").write_text(json.dumps({**tcfg, "temperature": 5.0}))
    hotter = teacher_targets(str(tmp_path / "teacher"), ds, splits, student_data, 1.0, tmp_path / "student")
    assert (hotter[splits.train, 1] - 0.5).abs().mean() < (targets[splits.train, 1] - 0.5).abs().mean()
    # the soft targets reach the loss: the same run without a teacher trains differently
    fit(_cfg(toy_zip, tmp_path / "plain", seed=1, split_seed=0))
    losses = [[json.loads(ln)["train_loss"] for ln in (tmp_path / r / "metrics.jsonl").read_text().splitlines()]
              for r in ("student", "plain")]  # fmt: skip
    assert losses[0] != losses[1]


def test_a_teacher_from_another_split_is_refused(toy_zip, tmp_path):
    fit(_cfg(toy_zip, tmp_path / "teacher", epochs=1, seed=3))  # split seed 3: other validation images
    with pytest.raises(GenspotError, match="another split"):
        fit(_cfg(toy_zip, tmp_path / "student", epochs=1, teacher=str(tmp_path / "teacher")))
    with pytest.raises(GenspotError, match="--distill"):
        fit(_cfg(toy_zip, tmp_path / "s2", epochs=1, seed=3, teacher=str(tmp_path / "teacher"), distill=0.0))
