"""MERT (m-a-p/MERT-v1-95M, m-a-p/MERT-v1-330M) as a native transformers model, loadable without remote code.

MERT-v1 checkpoints are HuBERT weights under HuBERT's key names (what m-a-p's `MERTModel(HubertModel)` saved with
transformers 4.2x): `feature_extractor.conv_layers.*`, `feature_projection.{layer_norm,projection}.*`,
`masked_spec_embed`, `encoder.pos_conv_embed.conv.{weight_g,weight_v,bias}`, `encoder.layer_norm.*` and
`encoder.layers.N.{attention.{q,k,v,out}_proj,layer_norm,feed_forward.{intermediate,output}_dense,final_layer_norm}.*`.
`MERTModel` is transformers' `HubertModel` under its own config type; `load_mert_pretrained` reads m-a-p's files,
renames the weight-norm tensors of the positional convolution to the names this torch uses, and loads strictly.
"""

import json
import os
from collections.abc import Mapping
from typing import Any

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from transformers import HubertModel, Wav2Vec2FeatureExtractor

from .configuration_mert import MERTConfig

CONFIG_NAME = "config.json"
# Weight files looked for, in this order.
WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")

# Prefixes a checkpoint may put before the base model's keys (a task model's base_model_prefix, a wrapper's name).
_KEY_PREFIXES = ("module.", "model.", "mert_model.", "mert.", "hubert.")

_POS_CONV = "encoder.pos_conv_embed.conv."
# The two names each weight-norm tensor of the positional convolution goes by: `torch.nn.utils.weight_norm`'s
# (what MERT checkpoints store) and `torch.nn.utils.parametrizations.weight_norm`'s (what current torch builds).
_POS_CONV_G = (_POS_CONV + "weight_g", _POS_CONV + "parametrizations.weight.original0")
_POS_CONV_V = (_POS_CONV + "weight_v", _POS_CONV + "parametrizations.weight.original1")
_POS_CONV_WEIGHT = _POS_CONV + "weight"  # the folded weight g * v / ||v||, if a checkpoint stores that instead
# The dimension MERT's (and HuBERT's) weight norm keeps: one gain per kernel tap.
_WEIGHT_NORM_DIM = 2

# Checkpoint tensors that inference does not read and that may be dropped when the model has no slot for them:
# the SpecAugment mask vector exists only when the config has mask_time_prob or mask_feature_prob > 0.
_DROPPABLE_KEYS = frozenset({"masked_spec_embed"})


class MERTModel(HubertModel):
    """MERT's encoder: transformers' [`HubertModel`] under [`MERTConfig`], so that it has its own Auto-registrable type.

    Its forward is HubertModel's: `input_values` `(batch, samples)` at 24 kHz (normalised as by
    [`mert_feature_extractor`]) give `num_hidden_layers + 1` hidden states at 75 frames per second.
    """

    config_class = MERTConfig
    config: MERTConfig


def _weight_norm_magnitude(v: torch.Tensor) -> torch.Tensor:
    """||v|| over every dimension but `_WEIGHT_NORM_DIM`, kept as size-1 dims: shape `(1, 1, kernel)`."""
    dims = tuple(d for d in range(v.dim()) if d != _WEIGHT_NORM_DIM)
    return v.norm(p=2, dim=dims, keepdim=True)


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _KEY_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    return key


def convert_mert_state_dict(state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map an m-a-p MERT checkpoint's tensors onto `model.state_dict()`'s keys.

    - strips a leading `model.` / `mert_model.` / `mert.` / `hubert.` / `module.` from every key;
    - renames the positional convolution's weight-norm tensors between `weight_g`/`weight_v` and
      `parametrizations.weight.original0`/`original1` to whichever the model uses (same tensors, same layout:
      g is `(1, 1, kernel)`, v is `(hidden, hidden // groups, kernel)`); a checkpoint holding the folded
      `encoder.pos_conv_embed.conv.weight` is split into g = ||w|| (per kernel tap) and v = w, which folds back to w;
    - drops `masked_spec_embed` only when the model has no such parameter (it is used in training only).

    Returns:
        A dict with exactly the model's state-dict keys, holding the checkpoint's tensors.

    Raises:
        ValueError: listing every missing key, every unexpected key (with its name in the checkpoint), every key
            given twice and every shape mismatch. Nothing is ever left at its random initialisation.
    """
    expected = model.state_dict()
    target_g = next((k for k in _POS_CONV_G if k in expected), None)
    target_v = next((k for k in _POS_CONV_V if k in expected), None)

    converted: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    duplicates: list[str] = []
    not_tensors: list[str] = []

    def put(target: str, value: torch.Tensor, source: str) -> None:
        if target in converted:
            duplicates.append(f"{target!r} (from {source_of[target]!r} and {source!r})")
            return
        converted[target] = value
        source_of[target] = source

    for source_key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            not_tensors.append(f"{source_key!r} ({type(value).__name__})")
            continue
        key = _strip_prefixes(source_key)
        if key in _POS_CONV_G and target_g is not None:
            put(target_g, value, source_key)
        elif key in _POS_CONV_V and target_v is not None:
            put(target_v, value, source_key)
        elif key == _POS_CONV_WEIGHT and _POS_CONV_WEIGHT not in expected and target_g and target_v:
            put(target_g, _weight_norm_magnitude(value), source_key)
            put(target_v, value, source_key)
        elif key in _DROPPABLE_KEYS and key not in expected:
            continue
        else:
            put(key, value, source_key)

    # A model that holds the folded positional-conv weight (weight norm removed) takes g * v / ||v||.
    if _POS_CONV_WEIGHT in expected and _POS_CONV_WEIGHT not in converted:
        g_key = next((k for k in _POS_CONV_G if k in converted), None)
        v_key = next((k for k in _POS_CONV_V if k in converted), None)
        if g_key and v_key:
            g, v = converted.pop(g_key), converted.pop(v_key)
            source = f"{source_of.pop(g_key)} + {source_of.pop(v_key)}"
            put(_POS_CONV_WEIGHT, g * v / _weight_norm_magnitude(v), source)

    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    mismatched = [
        f"{key!r}: checkpoint {tuple(converted[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(converted) & set(expected))
        if converted[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): " + ", ".join(map(repr, missing)))
    if unexpected:
        described = [
            repr(key) if source_of[key] == key else f"{key!r} (checkpoint name {source_of[key]!r})"
            for key in unexpected
        ]
        problems.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(described))
    if duplicates:
        problems.append("keys given more than once: " + ", ".join(duplicates))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if not_tensors:
        problems.append("entries that are not tensors: " + ", ".join(not_tensors))
    if problems:
        raise ValueError(
            f"MERT checkpoint does not match {type(model).__name__} ({model.config.num_hidden_layers} layers, "
            f"hidden size {model.config.hidden_size}): " + "; ".join(problems)
        )
    return converted


def _resolve_file(name_or_path: str | os.PathLike, filename: str, **hub_kwargs: Any) -> str | None:
    """Local path of `filename` in a local directory or a Hub repository, or `None` if it has no such file."""
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, hub_kwargs.get("subfolder") or "", filename)
        return path if os.path.isfile(path) else None
    try:
        return hf_hub_download(str(name_or_path), filename, **hub_kwargs)
    except EntryNotFoundError:
        # The repository (or, offline, the cache) has no such file.
        return None


def _load_weights(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    state_dict = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(state_dict).__name__})")
    return dict(state_dict)


def load_mert_pretrained(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> MERTModel:
    """Load an m-a-p MERT checkpoint (`m-a-p/MERT-v1-95M`, `m-a-p/MERT-v1-330M`, or a local copy) without remote code.

    Args:
        name_or_path: a Hub repository id or a local directory holding `config.json` and `model.safetensors` or
            `pytorch_model.bin`. Both are read the same way, file by file.
        hub_kwargs: passed to `huggingface_hub.hf_hub_download` (`revision`, `cache_dir`, `token`,
            `local_files_only`, `subfolder`, ...); for a local directory only `subfolder` is read.

    Returns:
        The `MERTModel`, in eval mode, with every tensor taken from the checkpoint.

    Raises:
        FileNotFoundError: no config.json, or neither weights file.
        ValueError: an unsupported config (see `MERTConfig.from_mert_hub_config`) or a checkpoint whose keys or
            shapes do not match the model (see `convert_mert_state_dict`).
    """
    config_path = _resolve_file(name_or_path, CONFIG_NAME, **hub_kwargs)
    if config_path is None:
        raise FileNotFoundError(f"{name_or_path} has no {CONFIG_NAME}")
    with open(config_path, encoding="utf-8") as f:
        config = MERTConfig.from_mert_hub_config(json.load(f))
    config.name_or_path = str(name_or_path)

    weights_path = None
    for weights_name in WEIGHTS_NAMES:
        weights_path = _resolve_file(name_or_path, weights_name, **hub_kwargs)
        if weights_path is not None:
            break
    if weights_path is None:
        raise FileNotFoundError(f"{name_or_path} has none of {', '.join(WEIGHTS_NAMES)}")

    model = MERTModel(config)
    state_dict = convert_mert_state_dict(_load_weights(weights_path), model)
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model


def mert_feature_extractor(config: MERTConfig | None = None) -> Wav2Vec2FeatureExtractor:
    """The feature extractor of m-a-p's MERT-v1 `preprocessor_config.json`: mono waveform, zero-mean unit-variance
    normalisation per utterance, right padding with 0 and an attention mask, at the config's sampling rate (24 kHz)."""
    sampling_rate = config.sampling_rate if config is not None else MERTConfig().sampling_rate
    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=sampling_rate,
        padding_value=0.0,
        padding_side="right",
        do_normalize=True,
        return_attention_mask=True,
    )


__all__ = ["MERTModel", "convert_mert_state_dict", "load_mert_pretrained", "mert_feature_extractor"]
