"""Published weights: the tag table, ``pretrained_cfg`` metadata, the hub download and the adapting load.

A tag names one published file in timm's form ``architecture.tag`` (``unireplknet_a.in1k``). The UniRepLKNet files
live on the Hugging Face hub in ``DingXiaoH/UniRepLKNet`` under the names the reference's ``unireplknet.py``
downloads; they hold the training structure with the reference's key names, which are lkconv's own, so they load
strictly without a key mapping. Peers: InceptionNeXt's are timm's ``timm/inception_next_*.sail_in1k`` files
(sail-sg's weights and key names, lkconv's too); LSNet's are ``jameslahm/lsnet``'s ``lsnet_{t,s,b}.pth`` (DeiT-style
training files, renamed by :mod:`lkconv.models.pretrained_keys`; their ``args`` entry, an ``argparse.Namespace``, is
the one non-tensor object allowed). RepLKNet's weights are published only on Google Drive and Baidu, not on the hub:
no tag (load a downloaded file with ``lkconv.load_checkpoint``).

Loading adapts the file to what was asked for:

* ``num_classes`` other than the file's: the classifier head alone is left freshly initialized;
* ``in_chans`` other than 3: the stem's first convolution is adapted (1 channel: the sum over RGB, so a grey image
  gives the original model's output on that image repeated three times; k channels: RGB repeated to k and scaled
  by 3/k, which keeps the response to an input of the same value in every channel);
* ``deploy=True``: the training-structure file is loaded, then fused;
* ``features_only=True``: the head and final norm are dropped after loading.

``huggingface_hub`` (the extra ``lkconv[hub]``) is imported only when a file is fetched; ``HF_HOME``,
``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` act as huggingface_hub defines them. ``pretrained_file=`` stands in for the
hub on machines without internet.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._checkpoint import checkpoint_structure, load_state_dict_file
from ._features import FeatureExtractor
from ._reparam import reparameterize_model
from .pretrained_keys import KEY_MAPS

__all__ = ["PretrainedTag", "PRETRAINED_TAGS", "HUB_EXTRA", "PretrainedWeightsError", "list_pretrained",
           "split_tag", "resolve_tag", "pretrained_cfg_for", "download_pretrained", "adapt_input_conv",
           "create_pretrained"]

HUB_EXTRA = "pip install 'lkconv[hub]'"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The stem's first convolution (the weight adapted to ``in_chans``) and the classifier, by key prefix (UniRepLKNet's;
#: other families name theirs in their tags).
STEM_CONV_KEY = "downsample_layers.0.0.weight"
HEAD_PREFIX = "head."
#: Non-tensor objects a published file may hold, by name (``PretrainedTag.allowed``): plain attribute bags only.
_ALLOWED_OBJECTS: dict[str, type] = {"argparse.Namespace": argparse.Namespace}


class PretrainedWeightsError(RuntimeError):
    """Published weights cannot be fetched or do not fit: the message names the extra, repo, file and alternative."""


@dataclass(frozen=True)
class PretrainedTag:
    """One published file and how its model was trained and evaluated.

    Attributes:
        arch: The registered architecture (``unireplknet_a``).
        tag: The part after the dot (``in1k``).
        hub_repo: Hugging Face repository that holds ``hub_file``.
        hub_file: The published file name.
        top1: ImageNet-1k top-1 accuracy (%) as published; None for ImageNet-22k pretraining files.
        input_size: Side of the training/evaluation input.
        num_classes: Outputs of the file's head.
        label_set: ``imagenet-1k`` or ``imagenet-22k``.
        crop_pct: Evaluation crop: resize the shorter side to ``input_size / crop_pct``, take the centre crop.
        crop_mode: ``center`` (the resize above and a centre crop) or ``squash`` (resize to the square, aspect not
            kept: the reference's evaluation at 384).
        interpolation: Resize interpolation of the evaluation transform.
        mean, std: Input normalisation of the training and evaluation transforms.
        stem_key: The stem's first convolution weight (adapted to ``in_chans``).
        head_prefix: Key prefix of the classifier (re-initialized for another ``num_classes``).
        key_map: Name of the file's key layout in :data:`lkconv.models.pretrained_keys.KEY_MAPS` (None: lkconv's).
        allowed: Names of the non-tensor objects the file holds (see ``_ALLOWED_OBJECTS``).
    """

    arch: str
    tag: str
    hub_file: str
    top1: float | None
    input_size: int
    num_classes: int = 1000
    label_set: str = "imagenet-1k"
    crop_pct: float = 0.875
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    hub_repo: str = "DingXiaoH/UniRepLKNet"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    stem_key: str = STEM_CONV_KEY
    head_prefix: str = HEAD_PREFIX
    key_map: str | None = None
    allowed: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"


def _unireplknet_tags() -> list[PretrainedTag]:
    """The reference's ``huggingface_file_names`` with the accuracies of its README (= the file names')."""
    tags = [PretrainedTag(f"unireplknet_{v}", "in1k", f"unireplknet_{v}_in1k_224_acc{acc}.pth", float(acc), 224)
            for v, acc in (("a", "77.03"), ("f", "78.58"), ("p", "80.23"), ("n", "81.64"), ("t", "83.21"),
                           ("s", "83.91"))]
    # ImageNet-22k pretraining: S and B at 224, L and XL at 192 (the reference README's 22K table).
    tags += [PretrainedTag(f"unireplknet_{v}", "in22k", f"unireplknet_{v}_in22k_pretrain.pth", None, size,
                           num_classes=21841, label_set="imagenet-22k")
             for v, size in (("s", 224), ("b", 224), ("l", 192), ("xl", 192))]
    # 22k -> 1k fine-tuning at 384, evaluated with a plain bicubic resize to 384 x 384.
    tags += [PretrainedTag(f"unireplknet_{v}", "in22k_ft_in1k_384", f"unireplknet_{v}_in22k_to_in1k_384_acc{acc}.pth",
                           float(acc), 384, crop_pct=1.0, crop_mode="squash")
             for v, acc in (("s", "86.44"), ("b", "87.40"), ("l", "87.88"), ("xl", "87.96"))]
    return tags


def _peer_tags() -> list[PretrainedTag]:
    """InceptionNeXt (timm's hub copies of sail-sg's files; top-1 and crops as published) and LSNet (the
    non-distilled files of ``jameslahm/lsnet``; crop 0.9 as its ``_cfg``)."""
    tags = [PretrainedTag(f"inception_next_{v}", "sail_in1k", "model.safetensors", top1, 224, crop_pct=crop,
                          hub_repo=f"timm/inception_next_{v}.sail_in1k", stem_key="stem.0.weight",
                          head_prefix="head.fc2.")
            for v, top1, crop in (("atto", 75.3, 0.875), ("tiny", 82.3, 0.875), ("small", 83.5, 0.875),
                                  ("base", 84.0, 0.95))]
    tags.append(PretrainedTag("inception_next_base", "sail_in1k_384", "model.safetensors", 85.2, 384, crop_pct=1.0,
                              hub_repo="timm/inception_next_base.sail_in1k_384", stem_key="stem.0.weight",
                              head_prefix="head.fc2."))
    tags += [PretrainedTag(f"lsnet_{v}", "in1k", f"lsnet_{v}.pth", top1, 224, crop_pct=0.9, hub_repo="jameslahm/lsnet",
                           stem_key="downsample_layers.0.0.c.weight", key_map="lsnet_reference",
                           allowed=("argparse.Namespace",))
             for v, top1 in (("t", 74.9), ("s", 77.8), ("b", 80.3))]
    return tags


#: Every published tag, by ``arch.tag``; an architecture's first tag here is its default.
PRETRAINED_TAGS: dict[str, PretrainedTag] = {t.name: t for t in _unireplknet_tags() + _peer_tags()}
_DEFAULT_TAG: dict[str, str] = {}
for _t in PRETRAINED_TAGS.values():
    _DEFAULT_TAG.setdefault(_t.arch, _t.name)
# B, L and XL have no ImageNet-1k-only file: their default is the 1k-fine-tuned 384 one, as in timm.
for _v in ("b", "l", "xl"):
    _DEFAULT_TAG[f"unireplknet_{_v}"] = f"unireplknet_{_v}.in22k_ft_in1k_384"


def list_pretrained(pattern: str | Iterable[str] = "", exclude: str | Iterable[str] = "") -> list[str]:
    """The published tags (``arch.tag``) matching any fnmatch ``pattern``, none of ``exclude``, in table order."""
    pats = [p for p in ([pattern] if isinstance(pattern, str) else pattern) if p]
    excl = [p for p in ([exclude] if isinstance(exclude, str) else exclude) if p]
    names = list(PRETRAINED_TAGS)
    if pats:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in pats)]
    return [n for n in names if not any(fnmatch.fnmatch(n, p) for p in excl)]


def split_tag(name: str) -> tuple[str, str | None]:
    """``"unireplknet_a.in1k"`` -> ``("unireplknet_a", "in1k")``; a plain architecture name -> ``(name, None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def resolve_tag(name: str, *, required: bool = True) -> PretrainedTag | None:
    """The :class:`PretrainedTag` of ``arch.tag``, or of ``arch``'s default tag.

    Raises:
        PretrainedWeightsError: The tag is not published (or, with ``required``, the architecture has none).
    """
    arch, tag = split_tag(name)
    if tag is None:
        full = _DEFAULT_TAG.get(arch)
        if full is None:
            if not required:
                return None
            raise PretrainedWeightsError(
                f"no published weights for {arch!r}; architectures with weights: "
                f"{', '.join(sorted(_DEFAULT_TAG))} (tags: lkconv list-models --pretrained); a local file loads with "
                "lkconv.load_checkpoint")
        return PRETRAINED_TAGS[full]
    if name not in PRETRAINED_TAGS:
        own = [n for n in PRETRAINED_TAGS if n.startswith(arch + ".")]
        accepted = ", ".join(own) if own else ", ".join(PRETRAINED_TAGS)
        raise PretrainedWeightsError(f"unknown pretrained tag {name!r}; accepted: {accepted}")
    return PRETRAINED_TAGS[name]


def pretrained_cfg_for(tag: PretrainedTag, *, in_chans: int = 3, num_classes: int | None = None,
                       file: str | None = None) -> dict[str, Any]:
    """The ``model.pretrained_cfg`` dict: preprocessing, label set and origin of the weights.

    ``mean``/``std`` follow the stem adaptation: with one channel the averages of ImageNet's (a grey image), with k
    channels ImageNet's repeated to k. ``num_classes`` is the model's; ``label_set`` stays the file's only while the
    head is the file's (else ``None``: a new head has new classes).
    """
    mean, std = _adapted_stats(tag.mean, in_chans), _adapted_stats(tag.std, in_chans)
    n = tag.num_classes if num_classes is None else num_classes
    return {
        "tag": tag.name, "architecture": tag.arch, "hub_repo": tag.hub_repo, "hub_file": tag.hub_file,
        "file": file, "input_size": [in_chans, tag.input_size, tag.input_size], "mean": mean, "std": std,
        "crop_pct": tag.crop_pct, "crop_mode": tag.crop_mode, "interpolation": tag.interpolation,
        "num_classes": n, "label_set": tag.label_set if n == tag.num_classes else None,
        "source_num_classes": tag.num_classes, "source_label_set": tag.label_set, "top1": tag.top1,
    }


def _adapted_stats(values: tuple[float, ...], in_chans: int) -> list[float]:
    if in_chans == 3:
        return list(values)
    if in_chans == 1:
        return [round(sum(values) / 3, 4)]
    return [values[i % 3] for i in range(in_chans)]


def download_pretrained(tag: PretrainedTag) -> Path:
    """The local path of ``tag``'s file, fetched through huggingface_hub (its cache and offline mode honoured).

    Raises:
        PretrainedWeightsError: huggingface_hub is not installed, or the file cannot be had (offline and not cached,
            no network, not on the hub); the message names the extra, the repo, the file and ``pretrained_file=``.
    """
    where = f"{tag.hub_file!r} from the Hugging Face hub repo {tag.hub_repo!r}"
    alternative = (f"or download it yourself and pass pretrained_file=PATH (command line: --pretrained-file PATH; "
                   f"https://huggingface.co/{tag.hub_repo}/blob/main/{tag.hub_file})")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise PretrainedWeightsError(
            f"{tag.name} needs {where}, and huggingface_hub is not installed: {HUB_EXTRA}, {alternative}") from None
    try:
        return Path(hf_hub_download(repo_id=tag.hub_repo, filename=tag.hub_file))
    except Exception as e:  # noqa: BLE001 - offline/network/not-found errors all get the same advice
        detail = " ".join(str(e).split())[:300]
        offline = " (HF_HUB_OFFLINE is set and the file is not in the hub cache)" if _offline() else ""
        raise PretrainedWeightsError(
            f"cannot fetch {where} for {tag.name}{offline}: {type(e).__name__}: {detail}; check the network or the "
            f"hub cache (HF_HUB_CACHE / HF_HOME), {alternative}") from None


def _offline() -> bool:
    """huggingface_hub's own reading of ``HF_HUB_OFFLINE`` (taken when it was imported)."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-layer weight ``(O, 3, k, k)`` adapted to ``in_chans`` input channels.

    1 channel: the sum over the three (a grey image x gives what x repeated three times gave). k channels: the three
    repeated cyclically to k, scaled by 3/k (a constant input keeps its response). 3: unchanged.
    """
    if weight.dim() != 4:
        raise ValueError(f"expected a 4-D convolution weight, got shape {tuple(weight.shape)}")
    have = weight.shape[1]
    if in_chans == have:
        return weight
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // have)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (have / in_chans)


def _state_dict_for(model: nn.Module, sd: dict[str, torch.Tensor], tag: PretrainedTag, *, in_chans: int,
                    keep_head: bool, source: str) -> dict[str, torch.Tensor]:
    """``sd`` adapted to the model: keys renamed from the file's layout, stem convolution to ``in_chans``, head
    dropped unless kept; strict key check."""
    sd = dict(sd) if tag.key_map is None else KEY_MAPS[tag.key_map](sd)
    if tag.stem_key not in sd:
        raise PretrainedWeightsError(f"{source} has no {tag.stem_key!r}: not a {tag.arch} state_dict "
                                     f"(first keys: {list(sd)[:5]})")
    sd[tag.stem_key] = adapt_input_conv(sd[tag.stem_key], in_chans)
    own = model.state_dict()
    if not keep_head:
        sd = {k: v for k, v in sd.items() if not k.startswith(tag.head_prefix)}
        own = {k: v for k, v in own.items() if not k.startswith(tag.head_prefix)}
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own
              if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = [f"{source} does not fit {getattr(model, 'model_name', type(model).__name__)}"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f", … ({len(items)} in all)" if len(items) > 6 else ""
                parts.append(f"{label}: {', '.join(items[:6])}{more}")
        raise PretrainedWeightsError("; ".join(parts))
    return sd


def create_pretrained(
    name: str, *, pretrained: bool, pretrained_file: str | os.PathLike | None = None,
    features_only: bool = False, out_indices: Iterable[int] | None = None, **kwargs: Any,
) -> nn.Module:
    """:func:`lkconv.create_model` for a tag (``arch.tag``) or for ``pretrained=True`` (see the module docstring).

    Without ``pretrained`` a tag builds the architecture with random weights and the tag's ``num_classes`` and
    ``pretrained_cfg`` (for its preprocessing). ``kwargs`` are the architecture's arguments.
    """
    from ._registry import create_model  # the registry imports this module when asked for a tag

    tag = resolve_tag(name)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    in_chans = int(kwargs.pop("in_chans", 3))
    num_classes = int(kwargs.pop("num_classes", tag.num_classes))
    deploy = bool(kwargs.pop("deploy", False))
    file, sd, structure = None, None, None
    if pretrained:
        path = Path(pretrained_file) if pretrained_file is not None else download_pretrained(tag)
        allowed = tuple(_ALLOWED_OBJECTS[name] for name in tag.allowed)
        sd = load_state_dict_file(path, allowed=allowed)  # weights_only: pickled code is refused (CheckpointReadError)
        file, structure = str(path), checkpoint_structure(sd)
    # Published files hold the training structure: deploy=True loads them unfused and fuses after. A fused stand-in
    # file (pretrained_file=) can only load into a model built fused.
    fuse_after = deploy and structure not in (None, "deploy")
    build_deploy = (deploy and not fuse_after) or structure == "deploy"
    model = create_model(tag.arch, num_classes=num_classes, in_chans=in_chans, deploy=build_deploy or None, **kwargs)
    if sd is not None:
        adapted = _state_dict_for(model, sd, tag, in_chans=in_chans, keep_head=num_classes == tag.num_classes,
                                  source=f"{file} ({tag.name})")
        model.load_state_dict(adapted, strict=False)  # checked strictly above, apart from a new head
    if fuse_after:
        reparameterize_model(model.eval())
        model.model_args = {**model.model_args, "deploy": True}
    cfg = pretrained_cfg_for(tag, in_chans=in_chans, num_classes=num_classes, file=file)
    cfg["loaded"] = pretrained
    model.pretrained_cfg = cfg
    if features_only:
        extractor = FeatureExtractor(model, out_indices)
        extractor.pretrained_cfg = cfg
        return extractor
    if out_indices is not None:
        raise ValueError("out_indices is only used with features_only=True")
    return model
