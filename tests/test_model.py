"""Variants, checkpoints and transfer learning (alexnet_tvm.model.variants / checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from alexnet_tvm.errors import CheckpointError
from alexnet_tvm.meta import ModelMeta, read_sidecar, sidecar_path
from alexnet_tvm.model.checkpoint import load_any_checkpoint, load_checkpoint, load_weights, save_checkpoint
from alexnet_tvm.model.variants import (VARIANTS, build_model, check_input_size, get_variant, head,
                                        load_state_dict_strict, transfer_from)

#: variant -> a small input size it accepts (the 224 family takes any size >= 63)
SMALL_INPUT = {"torchvision": 64, "paper": 64, "half": 64, "cifar": 32, "caffe": 227}


def _fixed_batch(num_classes: int, size: int, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise plus a class-coloured channel: learnable in a few steps."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % num_classes
    x = torch.randn(n, 3, size, size, generator=g) * 0.5
    x[torch.arange(n), y % 3] += 1.0
    return x, y


def _eval_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x), y))


def test_registry_names() -> None:
    assert set(VARIANTS) == {"torchvision", "paper", "cifar", "half", "caffe"}
    assert set(SMALL_INPUT) == set(VARIANTS)


@pytest.mark.parametrize("arch", sorted(SMALL_INPUT))
def test_variant_trains_and_loss_goes_down(arch: str) -> None:
    """Each variant builds at width 0.125, gives (N, classes) logits and fits a fixed batch."""
    torch.manual_seed(0)
    size = SMALL_INPUT[arch]
    check_input_size(get_variant(arch), size)
    model = build_model(arch, 3, width=0.125)
    x, y = _fixed_batch(3, size)
    assert model(x).shape == (12, 3)
    before = _eval_loss(model, x, y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(20):
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    after = _eval_loss(model, x, y)
    assert after < 0.85 * before, f"{arch}: loss {before:.4f} -> {after:.4f}"


def test_width_scales_the_model() -> None:
    small = sum(p.numel() for p in build_model("cifar", 10, 0.125).parameters())
    big = sum(p.numel() for p in build_model("cifar", 10, 0.25).parameters())
    assert big > 2 * small


def test_paper_variant_has_lrn_and_96_channels() -> None:
    model = build_model("paper", 10)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.features) == 2
    assert model.features[0].out_channels == 96


def test_half_variant_layout() -> None:
    model = build_model("half", 5)
    convs = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert convs == [48, 128, 192, 192, 128]
    assert model.classifier[1].out_features == 2048
    assert head(model).out_features == 5


def test_torchvision_variant_state_dict_matches_torchvision() -> None:
    """Same keys and shapes as torchvision's AlexNet, and the same function once loaded."""
    import torchvision

    torch.manual_seed(0)
    tv = torchvision.models.alexnet(weights=None).eval()
    ours = build_model("torchvision", 1000).eval()
    tv_sd, our_sd = tv.state_dict(), ours.state_dict()
    assert list(our_sd) == list(tv_sd)
    assert {k: tuple(v.shape) for k, v in our_sd.items()} == {k: tuple(v.shape) for k, v in tv_sd.items()}
    load_state_dict_strict(ours, tv_sd, "alexnet-owt.pth")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=0, atol=1e-5)


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(CheckpointError, match="unknown variant 'vgg'"):
        get_variant("vgg")
    with pytest.raises(CheckpointError, match="unknown variant"):
        build_model("vgg", 10)


def test_input_size_rules() -> None:
    with pytest.raises(CheckpointError, match="32x32"):
        check_input_size(get_variant("cifar"), 64)
    with pytest.raises(CheckpointError, match="at least 63"):
        check_input_size(get_variant("torchvision"), 32)
    check_input_size(get_variant("half"), 63)
    with pytest.raises(CheckpointError, match="at least 2"):
        build_model("cifar", 1)


def _tiny_meta(num_classes: int = 3, arch: str = "cifar", input_size: int = 32) -> ModelMeta:
    return ModelMeta(arch=arch, num_classes=num_classes, input_size=input_size, resize_size=input_size,
                     class_names=[f"c{i}" for i in range(num_classes)], width=0.125)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("cifar", 3, 0.125).eval()
    meta = _tiny_meta()
    path = tmp_path / "m.pt"
    save_checkpoint(model, meta, path)
    assert json.loads(sidecar_path(path).read_text())["arch"] == "cifar"
    loaded, meta2 = load_checkpoint(path)
    assert meta2 == read_sidecar(path)
    assert meta2.class_names == ["c0", "c1", "c2"] and meta2.width == 0.125
    assert not loaded.training
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    # no stray temporary files beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "m.pt.json"]


def test_load_weights_refuses_a_pickled_whole_model(tmp_path: Path) -> None:
    path = tmp_path / "whole.pt"
    torch.save(build_model("cifar", 3, 0.125), path)
    with pytest.raises(CheckpointError, match="pickled whole model is refused"):
        load_weights(path)


def test_load_weights_refuses_garbage_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="unreadable checkpoint"):
        load_weights(bad)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_weights(tmp_path / "absent.pt")
    notdict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_weights(notdict)


@pytest.mark.parametrize("change, match", [
    ({"arch": "torchvision", "input_size": 64, "resize_size": 64}, "shape"),
    ({"arch": "paper", "input_size": 64, "resize_size": 64}, "does not fit"),
    ({"num_classes": 5, "class_names": ["a", "b", "c", "d", "e"]}, "classifier.6.weight"),
    ({"num_classes": 5}, "3 class names for 5 classes"),
    ({"width": 0.25}, "shape"),
])
def test_checkpoint_not_matching_its_sidecar(tmp_path: Path, change: dict, match: str) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(build_model("cifar", 3, 0.125), _tiny_meta(), path)
    side = json.loads(sidecar_path(path).read_text())
    side.update(change)
    sidecar_path(path).write_text(json.dumps(side))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_missing_sidecar_and_non_torchvision_state(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="no sidecar"):
        load_any_checkpoint(path)
    with pytest.raises(CheckpointError, match="sidecar m.pt.json is missing"):
        load_checkpoint(path)


def test_transfer_loads_everything_but_the_head() -> None:
    """A 3-class state_dict into a 5-class model: the body is copied, the head is fresh."""
    torch.manual_seed(0)
    src = build_model("cifar", 3, 0.125).state_dict()
    torch.manual_seed(1)
    model = build_model("cifar", 5, 0.125)
    transfer_from(model, src, "src.pt", freeze_features=False)
    dst = model.state_dict()
    assert head(model).out_features == 5
    for k, v in dst.items():
        if k.startswith("classifier.6."):
            assert v.shape[0] == 5
        else:
            assert torch.equal(v, src[k]), k
    assert all(p.requires_grad for p in model.parameters())


def test_transfer_freeze_features_keeps_them_fixed() -> None:
    torch.manual_seed(0)
    src = build_model("cifar", 3, 0.125).state_dict()
    model = build_model("cifar", 2, 0.125)
    transfer_from(model, src, "src.pt", freeze_features=True)
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    features = {k: v.clone() for k, v in model.features.state_dict().items()}
    classifier = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, y = _fixed_batch(2, 32, 8)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for k, v in model.features.state_dict().items():
        assert torch.equal(v, features[k]), k
    assert any(not torch.equal(v, classifier[k]) for k, v in model.classifier.state_dict().items())


def test_transfer_refuses_another_architecture() -> None:
    src = build_model("half", 3, 0.125).state_dict()
    with pytest.raises(CheckpointError, match="shape"):
        transfer_from(build_model("cifar", 3, 0.125), src, "src.pt", freeze_features=False)
