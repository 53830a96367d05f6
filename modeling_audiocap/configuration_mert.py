"""Configuration of MERT (m-a-p/MERT-v1-95M, m-a-p/MERT-v1-330M), a HuBERT-architecture music encoder at 24 kHz.

MERT's own Hub code (`configuration_MERT.py` / `modeling_MERT.py`, loaded with `trust_remote_code=True`) subclasses
transformers' HuBERT classes and no longer runs on transformers >= 4.48. Its checkpoints, however, are plain HuBERT
weights under HuBERT's key names, so `MERTConfig` is a `HubertConfig` with MERT's defaults and a converter from
m-a-p's `config.json` (`model_type: "mert_model"`) onto it.
"""

import dataclasses
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import HubertConfig
from transformers.utils import logging

logger = logging.get_logger(__name__)

# Fields of m-a-p's config.json that configure nothing at inference time (file metadata, training-only options and
# wav2vec2-era SpecAugment spellings that HubertConfig does not read). They are dropped by `from_mert_hub_config`.
_MERT_IGNORED_FIELDS = frozenset(
    {
        "_name_or_path",
        "architectures",
        "auto_map",
        "transformers_version",
        "torch_dtype",
        "dtype",
        "tokenizer_class",
        "gradient_checkpointing",
        "feat_extract_dropout",
        "hidden_dropout_prob",
        "mask_channel_length",
        "mask_channel_min_space",
        "mask_channel_other",
        "mask_channel_prob",
        "mask_channel_selection",
        "mask_time_min_space",
        "mask_time_other",
        "mask_time_selection",
        "feature_extractor_cqt_bins",  # only read when feature_extractor_cqt is true, which is rejected
    }
)

# m-a-p's `model_type` for MERT checkpoints.
MERT_HUB_MODEL_TYPE = "mert_model"


@strict
class MERTConfig(HubertConfig):
    r"""
    Configuration of [`MERTModel`]: a [`HubertConfig`] whose defaults are those of `m-a-p/MERT-v1-95M` (24 kHz input,
    7-layer group-norm convolutional feature encoder of total stride 320, i.e. 75 frames per second, 12 post-norm
    transformer layers of width 768). `m-a-p/MERT-v1-330M` is the same family with `hidden_size=1024`,
    `num_hidden_layers=24`, `num_attention_heads=16`, `intermediate_size=4096` and `do_stable_layer_norm=True`.

    Use [`MERTConfig.from_mert_hub_config`] to read m-a-p's own `config.json`.

    Args (beyond [`HubertConfig`]'s):
        sampling_rate (`int`, *optional*, defaults to 24000):
            Sampling rate, in Hz, of the waveforms the model was trained on (`sample_rate` in m-a-p's config.json).
        tie_last_hidden_states (`bool`, *optional*, defaults to `True`):
            Make `hidden_states[-1]` the encoder's final output. For `do_stable_layer_norm=True` (MERT-v1-330M) that
            is the output after the encoder's final layer norm, as in the transformers 4.x HuBERT that MERT was
            released with; for post-norm encoders (MERT-v1-95M) it changes nothing.
    """

    model_type = "mert"

    # MERT-v1-95M values where they differ from HubertConfig's defaults.
    activation_dropout: float | int = 0.0
    feat_proj_dropout: float | int = 0.1
    layerdrop: float | int = 0.05
    # MERT's positional convolution is weight-normalised; a batch-norm variant would not match its checkpoints.
    conv_pos_batch_norm: bool = False
    sampling_rate: int = 24000
    tie_last_hidden_states: bool | None = True

    def validate_mert(self):
        """Part of `@strict` validation: options MERT checkpoints cannot be loaded into."""
        if self.conv_pos_batch_norm:
            raise ValueError(
                "MERTConfig: conv_pos_batch_norm=True is not supported; MERT's positional convolution is weight-normed"
            )
        if self.sampling_rate <= 0:
            raise ValueError(f"MERTConfig: sampling_rate must be positive, got {self.sampling_rate}")

    @classmethod
    def from_mert_hub_config(cls, config_dict: dict[str, Any]) -> "MERTConfig":
        """Build a `MERTConfig` from the contents of an m-a-p MERT `config.json` (`model_type: "mert_model"`).

        A config already saved by this class (`model_type: "mert"`) is accepted as is.

        Raises:
            ValueError: naming the field, when the config uses a MERT feature this implementation does not provide
                (`feature_extractor_cqt`, `deepnorm`, `conv_pos_batch_norm`), is not a MERT config, or is
                inconsistent (`sample_rate` vs `sampling_rate`, `num_feat_extract_layers` vs `conv_dim`).
        """
        if not isinstance(config_dict, dict):
            raise ValueError(f"expected the config.json contents as a dict, got {type(config_dict).__name__}")
        values = dict(config_dict)
        model_type = values.pop("model_type", MERT_HUB_MODEL_TYPE)
        if model_type == cls.model_type:
            return cls.from_dict(values)
        if model_type != MERT_HUB_MODEL_TYPE:
            raise ValueError(
                f"field 'model_type' is {model_type!r}; expected {MERT_HUB_MODEL_TYPE!r} (m-a-p MERT) "
                f"or {cls.model_type!r}"
            )

        # Features of m-a-p's MERTModel that HubertModel does not implement.
        if values.pop("feature_extractor_cqt", False):
            raise ValueError(
                "field 'feature_extractor_cqt' is true: MERT's CQT input features (nnAudio) are not supported; "
                "only the waveform convolutional feature encoder of MERT-v1 checkpoints is"
            )
        if values.pop("deepnorm", False):
            raise ValueError(
                "field 'deepnorm' is true: MERT's DeepNorm residual scaling is not supported by HubertModel"
            )
        if values.get("conv_pos_batch_norm", False):
            raise ValueError(
                "field 'conv_pos_batch_norm' is true: MERT checkpoints use a weight-normed positional convolution"
            )
        feat_extract_norm = values.get("feat_extract_norm", "group")
        if feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"field 'feat_extract_norm' is {feat_extract_norm!r}; expected 'group' or 'layer'")
        # `attention_relax` (32.0 in MERT-v1-330M, -1.0 in MERT-v1-95M) needs no handling: m-a-p's code only reads it
        # in its DeepNorm encoder (rejected above), and even there it only subtracts each attention row's maximum
        # before the softmax, which leaves the softmax unchanged.
        values.pop("attention_relax", None)

        if "sample_rate" in values:
            sample_rate = values.pop("sample_rate")
            if "sampling_rate" in values and values["sampling_rate"] != sample_rate:
                raise ValueError(
                    f"field 'sample_rate' ({sample_rate}) disagrees with field 'sampling_rate' "
                    f"({values['sampling_rate']})"
                )
            values["sampling_rate"] = sample_rate

        num_feat_extract_layers = values.pop("num_feat_extract_layers", None)
        conv_dim = values.get("conv_dim", cls.conv_dim)
        if num_feat_extract_layers is not None and num_feat_extract_layers != len(conv_dim):
            raise ValueError(
                f"field 'num_feat_extract_layers' ({num_feat_extract_layers}) disagrees with len(conv_dim) "
                f"({len(conv_dim)})"
            )

        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        ignored_unknown = []
        for key, value in values.items():
            if key in _MERT_IGNORED_FIELDS:
                continue
            if key in known:
                kwargs[key] = list(value) if isinstance(value, tuple) else value
            else:
                ignored_unknown.append(key)
        if ignored_unknown:
            logger.warning(
                "MERTConfig.from_mert_hub_config: ignoring config.json fields with no meaning here: %s",
                ", ".join(sorted(ignored_unknown)),
            )
        kwargs["architectures"] = ["MERTModel"]
        return cls(**kwargs)


__all__ = ["MERTConfig", "MERT_HUB_MODEL_TYPE"]
