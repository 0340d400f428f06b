"""One entry point, `explain_batch`, over every explanation method.

pytorch-grad-cam provides Grad-CAM, Grad-CAM++, Score-CAM, LayerCAM and EigenCAM (used as a
context manager, so its hooks are released, with 2-logit ClassifierOutputTargets). CAM and
attention rollout are implemented here. Every map comes back as float32 (B, H, W) at input
resolution, ReLU'd and scaled to [0, 1] per image, as pytorch-grad-cam scales its own ('maps'),
and before that per-image rescaling ('raw': ReLU'd, bilinearly resized, never min-maxed), which
is what a map's mass inside a region is measured on (explain/localise.py).
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

import numpy as np
import torch
from torch import nn

from genspot.errors import GenspotError
from genspot.explain.layers import MIN_MAP, default_target_layer, map_shape, resolve_layer
from genspot.models.registry import list_models, model_entry
from genspot.models.spec import ModelSpec

METHODS = ("cam", "gradcam", "gradcam++", "scorecam", "layercam", "eigencam", "rollout")
TARGETS = ("fake", "real", "predicted")


def _grad_cam_class(method: str):
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM

    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "layercam": LayerCAM, "eigencam": EigenCAM}[method]


def upsample_raw(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """ReLU and bilinear resize to (H, W) without any per-map rescaling: a map's mass stays comparable
    across pixels (half-pixel centres, as cv2.resize in pytorch-grad-cam's own scaling)."""
    t = torch.from_numpy(np.maximum(np.asarray(cam, dtype=np.float32), 0))[:, None]
    if tuple(t.shape[-2:]) != tuple(size):
        t = torch.nn.functional.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False).clamp_min_(0)
    return t[:, 0].numpy()


def scale_maps(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """ReLU, min-max per map, bilinear resize to (H, W), min-max again: pytorch-grad-cam's scaling."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    return scale_cam_image(scale_cam_image(np.maximum(cam, 0), (size[1], size[0]))).astype(np.float32)


def cam_head(model: nn.Module, name: str) -> tuple[str, torch.Tensor]:
    """(layer feeding the global pooling, linear weight) for CAM, as the model's registration declares
    them; an error where CAM does not apply."""
    entry = model_entry(name)
    if entry.cam is None:
        rollout = " or rollout" if entry.rollout else ""
        raise GenspotError(
            f"CAM needs global pooling followed by one linear layer, and {name} has none ({entry.cam_why}); "
            f"use gradcam, gradcam++, scorecam, layercam or eigencam{rollout}"
        )
    layer, linear = entry.cam
    return layer, resolve_layer(model, linear).weight  # type: ignore[return-value]


def applicable_methods(name: str) -> list[str]:
    """The methods that apply to a model: CAM where it declares a CAM head, rollout where attention
    rollout applies, every gradient and score method everywhere."""
    entry = model_entry(name)
    return [m for m in METHODS if (m != "cam" or entry.cam is not None) and (m != "rollout" or entry.rollout)]


def _capture(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    feats: list[torch.Tensor] = []
    h = layer.register_forward_hook(lambda _m, _i, o: feats.append(o.detach()))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        h.remove()
    return feats[0], logits


# (layer path, reshape, map shape) per model and input size: finding them costs dry forward passes
# (one per candidate block for the EfficientNets), which an explanation should not pay every call.
_LAYOUT: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _layer_and_shape(model: nn.Module, name: str, size: int, layer: str | None) -> tuple[str, nn.Module, Any, tuple[int, ...]]:
    memo = _LAYOUT.setdefault(model, {})
    if (layer, size) not in memo:
        default_path, reshape = default_target_layer(model, name, size)
        used = layer or default_path
        memo[(layer, size)] = (used, reshape, map_shape(model, resolve_layer(model, used), size, reshape))
    used, reshape, shape = memo[(layer, size)]
    return used, resolve_layer(model, used), reshape, shape


class _Chosen:
    """A pytorch-grad-cam target that picks its class from the output row itself ('predicted': its
    argmax) or is told it: the logits come from the method's own forward pass, not an extra one."""

    def __init__(self, idx: int | None) -> None:
        self.idx = idx

    def __call__(self, row: torch.Tensor) -> torch.Tensor:
        return row[..., int(row.argmax(-1)) if self.idx is None else self.idx]


def _chosen_targets(target: str | torch.Tensor, b: int, positive: int) -> list[_Chosen]:
    if torch.is_tensor(target):
        return [_Chosen(int(i)) for i in target.tolist()]
    if target not in TARGETS:
        raise GenspotError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    idx = None if target == "predicted" else positive if target == "fake" else 1 - positive
    return [_Chosen(idx) for _ in range(b)]


@contextlib.contextmanager
def _gradients_from(model: nn.Module, layer: nn.Module):
    """Backward only from the logits down to `layer`: a CAM needs the gradient at that layer and
    nothing else, so no parameter gets one and the backward pass stops there (a full backward
    costs about two forward passes). The layer's output becomes a fresh graph root; the `* 1.0`
    keeps it a non-leaf, so in-place operations after it (ReLU(inplace)) stay legal."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)

    def root(_m: nn.Module, _i: Any, out: Any) -> Any:
        return out.detach().requires_grad_(True) * 1.0 if torch.is_tensor(out) else None

    h = layer.register_forward_hook(root)  # registered before pytorch-grad-cam's hooks, so it runs first
    try:
        yield
    finally:
        h.remove()
        for p, f in flags:
            p.requires_grad_(f)


def class_activation_map(model: nn.Module, name: str, x: torch.Tensor, target: str | torch.Tensor = "predicted",
                         positive: int = 1) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:  # fmt: skip
    """CAM (Zhou et al. 2016): the target class's linear weights over the pooled feature maps;
    (scaled maps, raw maps, logits) from one forward pass."""
    path, weight = cam_head(model, name)
    feats, logits = _capture(model, resolve_layer(model, path), x)
    target_idx = target_indices(logits.float(), target, positive)
    if min(feats.shape[-2:]) < MIN_MAP:
        raise GenspotError(
            f"{name}'s last feature map is {feats.shape[-2]}x{feats.shape[-1]} at {x.shape[-1]}x{x.shape[-1]} input, "
            "so its CAM is constant; use gradcam (its default layer keeps a 4x4 map)"
        )
    w = weight.detach()[target_idx]  # (B, C)
    cam = torch.einsum("bc,bchw->bhw", w.float(), feats.float()).cpu().numpy()
    return scale_maps(cam, tuple(x.shape[-2:])), upsample_raw(cam, tuple(x.shape[-2:])), logits.float()


def attention_rollout(model: nn.Module, x: torch.Tensor, discard_ratio: float = 0.0) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
    """Attention rollout (Abnar & Zuidema 2020) for a timm ViT without a class token.

    Per block: heads averaged, identity added for the residual path, rows renormalised; the
    product over blocks says how much each input token feeds each output token. The head
    averages all output tokens, so a token's relevance is its mean column value.
    Rollout is class-agnostic: the target is ignored. Returns (scaled maps, raw maps, logits).
    """
    blocks = getattr(model, "blocks", None)
    if blocks is None or getattr(model, "num_prefix_tokens", 1) != 0:
        raise GenspotError("rollout applies to the ViT (vit_p2) only")
    attns: list[torch.Tensor] = []
    hooks, saved = [], []
    for blk in blocks:
        saved.append(getattr(blk.attn, "fused_attn", False))
        blk.attn.fused_attn = False  # the fused kernel never materialises the attention matrix
        hooks.append(blk.attn.attn_drop.register_forward_hook(lambda _m, _i, o: attns.append(o.detach())))
    try:
        with torch.no_grad():
            logits = model(x).float()
    finally:
        for h in hooks:
            h.remove()
        for blk, f in zip(blocks, saved):
            blk.attn.fused_attn = f
    n = attns[0].shape[-1]
    eye = torch.eye(n, device=x.device)
    rollout = eye.expand(x.shape[0], n, n)
    for a in attns:
        a = a.float().mean(1)
        if discard_ratio > 0:
            flat = a.flatten(1)
            k = int(flat.shape[1] * discard_ratio)
            idx = flat.topk(k, dim=1, largest=False).indices
            flat.scatter_(1, idx, 0)
            a = flat.view_as(a)
        a = a + eye
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    relevance = rollout.mean(1)  # (B, N)
    side = int(round(n**0.5))
    grid = relevance.view(-1, side, side).cpu().numpy()
    return scale_maps(grid, tuple(x.shape[-2:])), upsample_raw(grid, tuple(x.shape[-2:])), logits


def target_indices(logits: torch.Tensor, target: str | torch.Tensor, positive: int = 1) -> torch.Tensor:
    if torch.is_tensor(target):  # class indices per image, chosen by the caller
        return target.to(device=logits.device, dtype=torch.int64)
    if target not in TARGETS:
        raise GenspotError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if target == "predicted":
        return logits.argmax(1)
    idx = positive if target == "fake" else 1 - positive
    return torch.full((logits.shape[0],), idx, dtype=torch.int64, device=logits.device)


def explain_batch(
    model: nn.Module,
    spec: ModelSpec,
    x: torch.Tensor,
    method: str = "gradcam",
    target: str | torch.Tensor = "predicted",
    layer: str | None = None,
) -> dict[str, Any]:
    """Heat maps for a normalised batch: {'maps' (B, H, W) in [0, 1], 'raw' (B, H, W) before the
    per-map rescaling, 'p_fake', 'target', 'layer'}.

    `target` is fake, real, predicted (the raw model's argmax) or a tensor of class indices per
    image. 'p_fake' here is the raw model's (no TTA): callers that show a verdict score it with
    Detector.p_fake, as predict does, and pass that verdict as the target."""
    if method not in METHODS:
        raise GenspotError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    name = spec.model
    model.eval()
    used_layer = None
    # Every method takes the logits (p_fake, the 'predicted' class) from its own forward pass.
    if method == "cam":
        maps, raw, logits = class_activation_map(model, name, x, target, spec.positive)
        used_layer = cam_head(model, name)[0]
    elif method == "rollout":
        if not model_entry(name).rollout:
            which = ", ".join(m for m in list_models() if model_entry(m).rollout)
            raise GenspotError(f"rollout explains attention and applies to {which} only, not {name}; use gradcam")
        maps, raw, logits = attention_rollout(model, x)
        used_layer = "blocks.*.attn"
    else:
        used_layer, target_layer, reshape, shape = _layer_and_shape(model, name, x.shape[-1], layer)
        if len(shape) != 4:
            raise GenspotError(f"layer {used_layer!r} gives {len(shape)}-d output; choose a layer with a spatial map")
        if min(shape[-2:]) < MIN_MAP:
            raise GenspotError(f"layer {used_layer!r} has a {shape[-2]}x{shape[-1]} map: a CAM there is nearly constant")
        cls = _grad_cam_class(method)
        targets = _chosen_targets(target, x.shape[0], spec.positive)
        kept: list[np.ndarray] = []
        gradients = method in ("gradcam", "gradcam++", "layercam")
        scope = _gradients_from(model, target_layer) if gradients else torch.no_grad()
        with scope, cls(model=model, target_layers=[target_layer], reshape_transform=reshape) as cam:
            base = cam.get_cam_image  # each method's own map, before the library's per-map min-max

            def keep(*args: Any, **kwargs: Any) -> np.ndarray:
                kept.append(np.asarray(base(*args, **kwargs)))
                return kept[-1]

            cam.get_cam_image = keep
            maps = cam(input_tensor=x, targets=targets).astype(np.float32)
            logits = cam.outputs.detach().float()
        raw = upsample_raw(kept[0], tuple(x.shape[-2:]))
    p_fake = spec.p_fake(logits)
    t_idx = target_indices(logits, target, spec.positive)
    return {"maps": maps, "raw": raw, "p_fake": p_fake.cpu().numpy(), "target": t_idx.cpu().numpy(), "layer": used_layer}



def explain_verdicts(model: nn.Module, spec: ModelSpec, x_u8: torch.Tensor, labels: list[str], method: str = "gradcam",
                     target: str = "predicted", layer: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Heat maps for a uint8 (B, 3, S, S) batch whose verdicts (`labels`, REAL / FAKE) the caller
    scored with TTA and temperature: "predicted" explains those verdicts, not the raw model's argmax,
    so a heat map never contradicts its caption. {'maps', 'layer', 'targets' (class names)}."""
    from genspot.data.batches import normalize

    if target == "predicted":
        chosen: str | torch.Tensor = torch.tensor([spec.positive if lab == "FAKE" else 1 - spec.positive for lab in labels])
    else:
        chosen = target
    r = explain_batch(model, spec, normalize(x_u8, spec.mean, spec.std), method=method, target=chosen, layer=layer)
    return {"maps": r["maps"], "layer": r["layer"], "targets": [spec.class_names[int(i)] for i in r["target"]]}
