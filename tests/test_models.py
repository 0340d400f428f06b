import pytest
import torch

from genspot.errors import GenspotError
from genspot.models import count_parameters, create_model, list_models, load_pretrained
from genspot.models.io import load_model_dir, save_model_dir

STUDY = ["cifake_cnn", "vgg16", "efficientnet_b0", "efficientnetv2_b0", "vit_p2"]


def test_registry_has_every_study_model_and_a_candidate():
    names = list_models()
    for n in STUDY + ["spot_resnet"]:
        assert n in names


@pytest.mark.parametrize("name", sorted(set(STUDY + ["spot_resnet", "spot_resnet_s"])))
def test_forward_shape(name):
    m = create_model(name).eval()
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 2)


def test_vgg16_parameter_count_matches_the_study():
    assert count_parameters(create_model("vgg16")) == (14_715_714, 14_715_714)


def test_vgg16_freeze_blocks_1_to_4():
    m = create_model("vgg16", freeze_blocks=4)
    total, trainable = count_parameters(m)
    # Block 5 (3 convs of 512x512x3x3) and the head stay trainable.
    assert trainable == 3 * (512 * 512 * 9 + 512) + 1026
    assert total == 14_715_714


def test_cifake_cnn_is_the_papers_topology():
    m = create_model("cifake_cnn")
    convs = [l for l in m.modules() if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32]
    assert count_parameters(m)[0] == 84_066


def test_vit_has_256_tokens():
    m = create_model("vit_p2")
    assert m.patch_embed.num_patches == 256 and m.embed_dim == 128
    assert m.blocks[0].attn.num_heads == 8


def test_unknown_model_and_bad_kwarg():
    with pytest.raises(GenspotError, match="unknown model"):
        create_model("resnet9000")
    with pytest.raises(GenspotError, match="bad option"):
        create_model("cifake_cnn", nonsense=3)


def test_pretrained_from_local_file(tmp_path):
    from safetensors.torch import save_file

    src = create_model("cifake_cnn")
    sd = {k: v for k, v in src.state_dict().items()}
    sd["classifier.4.weight"] = torch.zeros(10, 64)  # another head shape is ignored
    save_file(sd, str(tmp_path / "w.safetensors"))
    dst = create_model("cifake_cnn", pretrained=tmp_path / "w.safetensors")
    assert torch.equal(dst.features[0].weight, src.features[0].weight)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    report = load_pretrained(create_model("cifake_cnn"), tmp_path / "w.pt")
    assert "features.0.weight" in report["loaded"] and not report["missing"]
    with pytest.raises(GenspotError, match="no weights file"):
        create_model("cifake_cnn", pretrained=tmp_path / "missing.safetensors")


def test_model_dir_round_trip(tmp_path):
    m = create_model("spot_resnet_s").eval()
    save_model_dir(m, {"model": "spot_resnet_s", "model_kwargs": {}, "class_names": ["REAL", "FAKE"]}, tmp_path)
    m2, cfg = load_model_dir(tmp_path)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), m2(x))
    assert (tmp_path / "model.safetensors").exists() and cfg["model"] == "spot_resnet_s"
    with pytest.raises(GenspotError, match="not a model directory"):
        load_model_dir(tmp_path / "nope")


def test_highpass_stem_is_blind_to_colour_offsets_but_not_to_texture():
    # zero-sum filters with replicate padding: a constant shift of a channel changes nothing
    m = create_model("spot_resnet_s", stem="highpass").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = m(x)
        assert torch.allclose(out, m(x + torch.tensor([0.3, -1.0, 2.0]).view(1, 3, 1, 1)), atol=1e-5)
        assert not torch.allclose(m.forward_features(x), m.forward_features(x.flip(-2)), atol=1e-3)
    assert not any("stem.0" in k for k in m.state_dict())  # the filter bank is fixed, not a weight
    with pytest.raises(ValueError, match="stem must be"):
        create_model("spot_resnet_s", stem="dct")
