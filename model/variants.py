"""AlexNet variants in one registry.

Module names follow torchvision's layout (``features.N``, ``classifier.N``) so
that a torchvision ``alexnet-owt-*.pth`` state_dict loads into the
``torchvision`` variant, and every variant swaps its head the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from alexnet_tvm.errors import CheckpointError


@dataclass(frozen=True)
class VariantSpec:
    name: str
    description: str
    default_input_size: int
    #: input sizes the graph accepts; None means any size >= min_input_size
    fixed_input_size: int | None
    min_input_size: int
    build: Callable[[int, float], nn.Module]


def _c(channels: int, width: float) -> int:
    return max(4, int(round(channels * width)))


class AlexNet(nn.Module):
    """features -> avgpool -> flatten -> classifier, torchvision's structure."""

    def __init__(self, features: nn.Sequential, avgpool: nn.Module, classifier: nn.Sequential):
        super().__init__()
        self.features = features
        self.avgpool = avgpool
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _classifier(in_features: int, hidden: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


def _conv3_to_5(c2: int, c3: int, c4: int, c5: int, groups: int = 1) -> list[nn.Module]:
    """conv3-conv5 with their ReLUs, 3x3 'same' convs in every variant (Caffe's conv4/5 in two groups)."""
    return [nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1, groups=groups), nn.ReLU(inplace=True)]


def _imagenet_style(convs: tuple[int, int, int, int, int], hidden: int, lrn: bool):
    """The 224-input family: torchvision (64ch), paper (96ch + LRN), half (48ch)."""

    def build(num_classes: int, width: float) -> nn.Module:
        c1, c2, c3, c4, c5 = (_c(c, width) for c in convs)
        layers: list[nn.Module] = [nn.Conv2d(3, c1, 11, stride=4, padding=2), nn.ReLU(inplace=True)]
        if lrn:
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        layers += [nn.MaxPool2d(3, 2), nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(inplace=True)]
        if lrn:
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        layers += [nn.MaxPool2d(3, 2), *_conv3_to_5(c2, c3, c4, c5), nn.MaxPool2d(3, 2)]
        h = _c(hidden, width)
        return AlexNet(nn.Sequential(*layers), nn.AdaptiveAvgPool2d((6, 6)), _classifier(c5 * 36, h, num_classes))

    return build


def _cifar(num_classes: int, width: float) -> nn.Module:
    c1, c2, c3, c4, c5 = (_c(c, width) for c in (64, 192, 384, 256, 256))
    features = nn.Sequential(
        nn.Conv2d(3, c1, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        *_conv3_to_5(c2, c3, c4, c5),
        nn.MaxPool2d(2),
    )
    return AlexNet(features, nn.Identity(), _classifier(c5 * 2 * 2, _c(4096, width), num_classes))


def _caffe(num_classes: int, width: float) -> nn.Module:
    """BVLC's reference AlexNet (the ONNX model zoos' bvlc_alexnet): 227x227 input, conv1
    without padding, the two-GPU split kept as groups=2 in conv2/4/5, LRN (k=1, Caffe's
    default) after conv1 and conv2, before their pools."""
    c1, c2, c3, c4, c5 = (2 * max(2, int(round(c * width / 2))) for c in (96, 256, 384, 384, 256))

    def lrn() -> nn.Module:
        return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)

    features = nn.Sequential(
        nn.Conv2d(3, c1, 11, stride=4), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c1, c2, 5, padding=2, groups=2), nn.ReLU(inplace=True), lrn(), nn.MaxPool2d(3, 2),
        *_conv3_to_5(c2, c3, c4, c5, groups=2),
        nn.MaxPool2d(3, 2),
    )
    return AlexNet(features, nn.Identity(), _classifier(c5 * 36, _c(4096, width), num_classes))


VARIANTS: dict[str, VariantSpec] = {
    "torchvision": VariantSpec(
        "torchvision", "torchvision layout, 64-channel conv1; loads alexnet-owt-*.pth",
        224, None, 63, _imagenet_style((64, 192, 384, 256, 256), 4096, lrn=False)),
    "paper": VariantSpec(
        "paper", "2012 paper, 96-channel conv1 with local response normalisation",
        224, None, 63, _imagenet_style((96, 256, 384, 384, 256), 4096, lrn=True)),
    "cifar": VariantSpec(
        "cifar", "32x32 input, 3x3 convs, 256*2*2 -> 4096 -> 4096 head", 32, 32, 32, _cifar),
    "half": VariantSpec(
        "half", "48/128/192/192/128 convs, 2048-unit FCs (flowers tutorial)",
        224, None, 63, _imagenet_style((48, 128, 192, 192, 128), 2048, lrn=False)),
    "caffe": VariantSpec(
        "caffe", "BVLC reference (Caffe lineage): 227x227, groups=2 in conv2/4/5, LRN after conv1/conv2",
        227, 227, 227, _caffe),
}


def get_variant(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise CheckpointError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})") from None


def check_input_size(spec: VariantSpec, input_size: int) -> None:
    if spec.fixed_input_size is not None and input_size != spec.fixed_input_size:
        raise CheckpointError(f"variant {spec.name} takes {spec.fixed_input_size}x{spec.fixed_input_size} inputs only")
    if input_size < spec.min_input_size:
        raise CheckpointError(f"variant {spec.name} needs inputs of at least {spec.min_input_size} pixels")


def build_model(arch: str, num_classes: int, width: float = 1.0) -> nn.Module:
    if num_classes < 2:
        raise CheckpointError(f"num_classes must be at least 2, got {num_classes}")
    return get_variant(arch).build(num_classes, width)


def head(model: nn.Module) -> nn.Linear:
    return model.classifier[-1]  # type: ignore[index,return-value]


def load_state_dict_strict(model: nn.Module, state: dict, source: str) -> None:
    """Load with a one-line error naming the first mismatch instead of torch's essay."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: does not fit this architecture (missing {missing[:2]}, unexpected {unexpected[:2]})")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source}: {k} has shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}")
    model.load_state_dict(state)


def transfer_from(model: nn.Module, state: dict, source: str, freeze_features: bool) -> None:
    """Load every weight but the head (which is resized for the new classes)."""
    h = head(model)
    head_keys = {k for k in state if k.startswith("classifier.") and k.split(".")[1] == str(len(model.classifier) - 1)}
    body = {k: v for k, v in state.items() if k not in head_keys}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(f"classifier.{len(model.classifier) - 1}.")}
    missing = [k for k in own if k not in body]
    if missing:
        raise CheckpointError(f"{source}: does not fit this architecture (missing {missing[:2]})")
    for k, v in own.items():
        if tuple(body[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source}: {k} has shape {tuple(body[k].shape)}, the model expects {tuple(v.shape)}")
    model.load_state_dict(body, strict=False)
    nn.init.normal_(h.weight, 0, 0.01)
    nn.init.zeros_(h.bias)
    if freeze_features:
        for p in model.features.parameters():
            p.requires_grad_(False)
