"""Native MERT: m-a-p's config.json and checkpoint layout load into MERTModel strictly, offline, without remote code.

The checkpoints here are tiny but laid out exactly as m-a-p's MERT-v1 `pytorch_model.bin` is: HuBERT key names with
no prefix, the positional convolution stored as `weight_g` `(1, 1, kernel)` / `weight_v`
`(hidden, hidden // groups, kernel)` / `bias` (torch.nn.utils.weight_norm, dim=2), `masked_spec_embed` present.
"""

import json

import pytest
import torch
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import save_file

from modeling_audiocap import modeling_mert
from modeling_audiocap.configuration_mert import MERTConfig
from modeling_audiocap.modeling_mert import (
    MERTModel,
    convert_mert_state_dict,
    load_mert_pretrained,
    mert_feature_extractor,
)

SR = 24000

# m-a-p/MERT-v1-95M config.json (Hub revision c5a8dd1), field for field.
MERT_95M_HUB_CONFIG = {
    "_name_or_path": "m-a-p/MERT-v1-95M",
    "activation_dropout": 0.0,
    "apply_spec_augment": True,
    "architectures": ["MERTModel"],
    "attention_dropout": 0.1,
    "attention_relax": -1.0,
    "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
    "bos_token_id": 1,
    "classifier_proj_size": 256,
    "conv_bias": False,
    "conv_dim": [512, 512, 512, 512, 512, 512, 512],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "ctc_loss_reduction": "sum",
    "ctc_zero_infinity": False,
    "deepnorm": False,
    "do_stable_layer_norm": False,
    "eos_token_id": 2,
    "feat_extract_activation": "gelu",
    "feat_extract_dropout": 0.0,
    "feat_extract_norm": "group",
    "feat_proj_dropout": 0.1,
    "feat_proj_layer_norm": True,
    "feature_extractor_cqt": False,
    "feature_extractor_cqt_bins": 336,
    "final_dropout": 0.1,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout": 0.1,
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "layerdrop": 0.05,
    "mask_feature_length": 10,
    "mask_feature_min_masks": 0,
    "mask_feature_prob": 0.0,
    "mask_time_length": 10,
    "mask_time_min_masks": 2,
    "mask_time_prob": 0.05,
    "model_type": "mert_model",
    "num_attention_heads": 12,
    "num_conv_pos_embedding_groups": 16,
    "num_conv_pos_embeddings": 128,
    "num_feat_extract_layers": 7,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "sample_rate": 24000,
    "tokenizer_class": "Wav2Vec2CTCTokenizer",
    "torch_dtype": "float32",
    "transformers_version": "4.25.1",
    "use_weighted_layer_sum": False,
    "vocab_size": 32,
}

# m-a-p/MERT-v1-330M config.json: what differs from MERT-v1-95M's, and its extra wav2vec2-era SpecAugment fields.
MERT_330M_HUB_CONFIG = {
    **MERT_95M_HUB_CONFIG,
    "_name_or_path": "m-a-p/MERT-v1-330M",
    "attention_dropout": 0.0,
    "attention_relax": 32.0,
    "do_stable_layer_norm": True,
    "feat_extract_norm": "group",
    "feat_proj_dropout": 0.0,
    "final_dropout": 0.0,
    "hidden_dropout": 0.0,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "layerdrop": 0.0,
    "mask_channel_length": 10,
    "mask_channel_min_space": 1,
    "mask_channel_other": 0.0,
    "mask_channel_prob": 0.0,
    "mask_channel_selection": "static",
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
}

# The real MERT feature-encoder layout (kernels, strides: 320 samples per frame, 75 Hz at 24 kHz) at tiny width.
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 48,
    "conv_dim": [8] * 7,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
}

POS_G = "encoder.pos_conv_embed.conv.weight_g"
POS_V = "encoder.pos_conv_embed.conv.weight_v"
POS_ORIG0 = "encoder.pos_conv_embed.conv.parametrizations.weight.original0"
POS_ORIG1 = "encoder.pos_conv_embed.conv.parametrizations.weight.original1"


def tiny_hub_config(**overrides) -> dict:
    return {**MERT_95M_HUB_CONFIG, **TINY, **overrides}


def mert_checkpoint(cfg: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the keys, shapes and layout of an m-a-p MERT-v1 `pytorch_model.bin`, written out by hand."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.1, offset=0.0):
        return torch.randn(*shape, generator=gen) * scale + offset

    hidden, inter = cfg["hidden_size"], cfg["intermediate_size"]
    conv_dim, conv_kernel = cfg["conv_dim"], cfg["conv_kernel"]
    sd = {}
    for i, (dim, kernel) in enumerate(zip(conv_dim, conv_kernel)):
        in_dim = 1 if i == 0 else conv_dim[i - 1]
        sd[f"feature_extractor.conv_layers.{i}.conv.weight"] = rand(dim, in_dim, kernel, scale=0.3)
        if cfg["feat_extract_norm"] == "layer" or i == 0:  # group norm: only the first conv layer is normalised
            sd[f"feature_extractor.conv_layers.{i}.layer_norm.weight"] = rand(dim, offset=1.0)
            sd[f"feature_extractor.conv_layers.{i}.layer_norm.bias"] = rand(dim)
    sd["feature_projection.layer_norm.weight"] = rand(conv_dim[-1], offset=1.0)
    sd["feature_projection.layer_norm.bias"] = rand(conv_dim[-1])
    sd["feature_projection.projection.weight"] = rand(hidden, conv_dim[-1])
    sd["feature_projection.projection.bias"] = rand(hidden)
    sd["masked_spec_embed"] = torch.rand(hidden, generator=gen)
    kernel, groups = cfg["num_conv_pos_embeddings"], cfg["num_conv_pos_embedding_groups"]
    sd[POS_G] = rand(1, 1, kernel, offset=1.0)
    sd[POS_V] = rand(hidden, hidden // groups, kernel)
    sd["encoder.pos_conv_embed.conv.bias"] = rand(hidden)
    sd["encoder.layer_norm.weight"] = rand(hidden, offset=1.0)
    sd["encoder.layer_norm.bias"] = rand(hidden)
    for n in range(cfg["num_hidden_layers"]):
        p = f"encoder.layers.{n}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            sd[p + f"attention.{proj}.weight"] = rand(hidden, hidden)
            sd[p + f"attention.{proj}.bias"] = rand(hidden)
        sd[p + "layer_norm.weight"] = rand(hidden, offset=1.0)
        sd[p + "layer_norm.bias"] = rand(hidden)
        sd[p + "feed_forward.intermediate_dense.weight"] = rand(inter, hidden)
        sd[p + "feed_forward.intermediate_dense.bias"] = rand(inter)
        sd[p + "feed_forward.output_dense.weight"] = rand(hidden, inter)
        sd[p + "feed_forward.output_dense.bias"] = rand(hidden)
        sd[p + "final_layer_norm.weight"] = rand(hidden, offset=1.0)
        sd[p + "final_layer_norm.bias"] = rand(hidden)
    return sd


def write_checkpoint(path, cfg: dict, sd: dict, safetensors: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    if safetensors:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path / "model.safetensors"))
    else:
        torch.save(sd, path / "pytorch_model.bin")
    return path


def weight_norm_by_hand(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g * v / ||v||, the norm taken per kernel tap (over output and input channels)."""
    return g * v / v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()


def assert_loaded_from(model: MERTModel, sd: dict):
    loaded = model.state_dict()
    assert set(loaded) == (set(sd) - {POS_G, POS_V}) | {POS_ORIG0, POS_ORIG1}
    for key, value in sd.items():
        target = {POS_G: POS_ORIG0, POS_V: POS_ORIG1}.get(key, key)
        assert torch.equal(loaded[target], value), key
    effective = model.encoder.pos_conv_embed.conv.weight
    torch.testing.assert_close(effective, weight_norm_by_hand(sd[POS_G], sd[POS_V]), rtol=1e-6, atol=1e-7)


def as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def one_second(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, SR, generator=torch.Generator().manual_seed(seed))


# --- config -------------------------------------------------------------------------------------------------------


def test_defaults_are_mert_v1_95m():
    config = MERTConfig.from_mert_hub_config(MERT_95M_HUB_CONFIG)
    defaults = MERTConfig()
    assert config.model_type == defaults.model_type == "mert"
    assert defaults.sampling_rate == config.sampling_rate == SR
    for field in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "conv_dim",
        "conv_kernel",
        "conv_stride",
        "conv_bias",
        "feat_extract_norm",
        "feat_proj_layer_norm",
        "do_stable_layer_norm",
        "num_conv_pos_embeddings",
        "num_conv_pos_embedding_groups",
        "layer_norm_eps",
        "hidden_act",
        "activation_dropout",
        "attention_dropout",
        "hidden_dropout",
        "feat_proj_dropout",
        "layerdrop",
        "mask_time_prob",
        "conv_pos_batch_norm",
    ):
        assert as_list(getattr(config, field)) == as_list(getattr(defaults, field)), field
    assert config.conv_pos_batch_norm is False
    assert config.sampling_rate / config.inputs_to_logits_ratio == 75  # 75 frames per second
    assert not hasattr(config, "feature_extractor_cqt") and not hasattr(config, "sample_rate")


def test_330m_config_maps_to_stable_layer_norm():
    config = MERTConfig.from_mert_hub_config(MERT_330M_HUB_CONFIG)
    sizes = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.intermediate_size)
    assert sizes == (1024, 24, 16, 4096)
    assert config.do_stable_layer_norm is True
    assert config.feat_extract_norm == "group"  # what m-a-p's MERT-v1-330M config.json says
    assert config.sampling_rate == SR and config.conv_pos_batch_norm is False
    assert not hasattr(config, "attention_relax") and not hasattr(config, "mask_channel_prob")
    with torch.device("meta"):
        model = MERTModel(config)
    assert type(model.encoder).__name__ == "HubertEncoderStableLayerNorm"
    assert sum(v.numel() for v in model.state_dict().values()) == 315_428_992


def test_95m_model_has_the_checkpoint_size():
    # m-a-p/MERT-v1-95M's pytorch_model.bin holds 211 float32 tensors, 94,371,712 values.
    with torch.device("meta"):
        model = MERTModel(MERTConfig.from_mert_hub_config(MERT_95M_HUB_CONFIG))
    state = model.state_dict()
    assert (len(state), sum(v.numel() for v in state.values())) == (211, 94_371_712)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"feature_extractor_cqt": True}, "feature_extractor_cqt"),
        ({"deepnorm": True}, "deepnorm"),
        ({"conv_pos_batch_norm": True}, "conv_pos_batch_norm"),
        ({"model_type": "wav2vec2"}, "model_type"),
        ({"sampling_rate": 16000}, "sample_rate"),
        ({"num_feat_extract_layers": 5}, "num_feat_extract_layers"),
        ({"feat_extract_norm": "batch"}, "feat_extract_norm"),
    ],
)
def test_unsupported_config_fields_are_named(overrides, field):
    with pytest.raises(ValueError, match=field):
        MERTConfig.from_mert_hub_config({**MERT_95M_HUB_CONFIG, **overrides})


def test_config_round_trips_through_to_dict():
    config = MERTConfig.from_mert_hub_config(tiny_hub_config())
    values = config.to_dict()
    assert values["model_type"] == "mert" and values["sampling_rate"] == SR
    again = MERTConfig.from_mert_hub_config(values)
    values.pop("model_type")
    assert MERTConfig(**values).to_dict() == again.to_dict() == config.to_dict()


# --- loading ------------------------------------------------------------------------------------------------------


def test_loads_pytorch_model_bin_exactly_and_runs_at_75_hz(tmp_path):
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg)
    model = load_mert_pretrained(write_checkpoint(tmp_path / "mert", cfg, sd))
    assert isinstance(model, MERTModel) and isinstance(model.config, MERTConfig)
    assert not model.training
    assert_loaded_from(model, sd)

    with torch.no_grad():
        out = model(one_second(), output_hidden_states=True)
    assert len(out.hidden_states) == cfg["num_hidden_layers"] + 1
    # 320 samples per frame: 75 Hz, i.e. 75 * seconds - 1 frames with the convolutions' valid padding.
    assert model.config.inputs_to_logits_ratio == 320
    assert all(h.shape == (1, 74, cfg["hidden_size"]) for h in out.hidden_states)
    assert int(model._get_feat_extract_output_lengths(2 * SR)) == 149
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert torch.isfinite(out.last_hidden_state).all()


def test_loads_safetensors_the_same(tmp_path):
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg, seed=3)
    from_bin = load_mert_pretrained(write_checkpoint(tmp_path / "bin", cfg, sd))
    from_st = load_mert_pretrained(write_checkpoint(tmp_path / "st", cfg, sd, safetensors=True))
    assert_loaded_from(from_st, sd)
    audio = one_second()
    with torch.no_grad():
        torch.testing.assert_close(from_st(audio).last_hidden_state, from_bin(audio).last_hidden_state, rtol=0, atol=0)


def test_missing_key_is_named(tmp_path):
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg)
    del sd["encoder.layers.1.final_layer_norm.bias"]
    del sd[POS_G]
    with pytest.raises(ValueError, match="missing keys") as err:
        load_mert_pretrained(write_checkpoint(tmp_path / "mert", cfg, sd))
    assert "encoder.layers.1.final_layer_norm.bias" in str(err.value)
    assert POS_ORIG0 in str(err.value)


def test_unexpected_key_is_named(tmp_path):
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg)
    sd["encoder.layers.2.attention.q_proj.weight"] = torch.zeros(32, 32)  # a layer the config does not have
    sd["label_embs_concat"] = torch.zeros(4, 32)
    with pytest.raises(ValueError, match="unexpected keys") as err:
        load_mert_pretrained(write_checkpoint(tmp_path / "mert", cfg, sd))
    assert "encoder.layers.2.attention.q_proj.weight" in str(err.value)
    assert "label_embs_concat" in str(err.value)


def test_shape_mismatch_is_named():
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg)
    sd["feature_projection.projection.weight"] = torch.zeros(32, 9)
    model = MERTModel(MERTConfig.from_mert_hub_config(cfg))
    with pytest.raises(ValueError, match=r"feature_projection\.projection\.weight.*\(32, 9\)"):
        convert_mert_state_dict(sd, model)


def test_prefixes_and_parametrization_names_are_accepted():
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg)
    model = MERTModel(MERTConfig.from_mert_hub_config(cfg))
    renamed = {POS_G: POS_ORIG0, POS_V: POS_ORIG1}
    for prefix in ("hubert.", "mert_model.", "model."):
        variant = {prefix + renamed.get(k, k): v for k, v in sd.items()}
        converted = convert_mert_state_dict(variant, model)
        assert set(converted) == set(model.state_dict())
        assert converted[POS_ORIG0] is sd[POS_G] and converted[POS_ORIG1] is sd[POS_V]

    both = {**sd, POS_ORIG0: sd[POS_G]}  # the same tensor under both names
    with pytest.raises(ValueError, match="more than once"):
        convert_mert_state_dict(both, model)


def test_folded_pos_conv_weight_and_absent_mask_embedding():
    cfg = tiny_hub_config(mask_time_prob=0.0)
    sd = mert_checkpoint(cfg)
    folded = {k: v for k, v in sd.items() if k not in (POS_G, POS_V)}
    folded["encoder.pos_conv_embed.conv.weight"] = weight_norm_by_hand(sd[POS_G], sd[POS_V])
    model = MERTModel(MERTConfig.from_mert_hub_config(cfg))
    assert "masked_spec_embed" not in model.state_dict()  # so the checkpoint's one is dropped, not unexpected
    model.load_state_dict(convert_mert_state_dict(folded, model), strict=True)
    torch.testing.assert_close(
        model.encoder.pos_conv_embed.conv.weight, folded["encoder.pos_conv_embed.conv.weight"], rtol=1e-6, atol=1e-7
    )


def test_330m_style_stable_layer_norm_loads(tmp_path):
    cfg = {**MERT_330M_HUB_CONFIG, **TINY}
    sd = mert_checkpoint(cfg, seed=5)
    model = load_mert_pretrained(write_checkpoint(tmp_path / "mert330", cfg, sd))
    assert model.config.do_stable_layer_norm
    assert type(model.encoder).__name__ == "HubertEncoderStableLayerNorm"
    assert_loaded_from(model, sd)
    with torch.no_grad():
        out = model(one_second(), output_hidden_states=True)
    assert len(out.hidden_states) == cfg["num_hidden_layers"] + 1
    assert out.last_hidden_state.shape == (1, 74, cfg["hidden_size"])
    # As in the transformers 4.x HuBERT MERT shipped with: the last hidden state is after the final layer norm.
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)


def test_layer_norm_feature_encoder_loads(tmp_path):
    cfg = tiny_hub_config(feat_extract_norm="layer", do_stable_layer_norm=True)
    sd = mert_checkpoint(cfg, seed=7)
    assert "feature_extractor.conv_layers.6.layer_norm.weight" in sd
    model = load_mert_pretrained(write_checkpoint(tmp_path / "mert", cfg, sd))
    assert_loaded_from(model, sd)


def test_hub_ids_take_the_same_path(tmp_path, monkeypatch):
    cfg = tiny_hub_config()
    sd = mert_checkpoint(cfg)
    snapshot = write_checkpoint(tmp_path / "snapshot", cfg, sd)
    calls = []

    def fake_hf_hub_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        path = snapshot / filename
        if not path.is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(path)

    monkeypatch.setattr(modeling_mert, "hf_hub_download", fake_hf_hub_download)
    model = load_mert_pretrained("m-a-p/MERT-v1-95M", revision="main", local_files_only=True)
    assert [c[1] for c in calls] == ["config.json", "model.safetensors", "pytorch_model.bin"]
    assert all(c[0] == "m-a-p/MERT-v1-95M" and c[2] == {"revision": "main", "local_files_only": True} for c in calls)
    assert model.config.name_or_path == "m-a-p/MERT-v1-95M"
    assert_loaded_from(model, sd)

    (snapshot / "pytorch_model.bin").unlink()
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        load_mert_pretrained("m-a-p/MERT-v1-95M")


def test_feature_extractor_matches_preprocessor_config():
    fe = mert_feature_extractor(MERTConfig())
    assert (fe.sampling_rate, fe.do_normalize, fe.return_attention_mask) == (SR, True, True)
    assert (fe.feature_size, fe.padding_value, fe.padding_side) == (1, 0.0, "right")
    wave = (one_second()[0] * 3 + 1).numpy()
    inputs = fe(wave, sampling_rate=SR, return_tensors="pt")
    assert inputs["input_values"].shape == (1, SR) and inputs["attention_mask"].shape == (1, SR)
    assert abs(float(inputs["input_values"].mean())) < 1e-3 and abs(float(inputs["input_values"].std()) - 1) < 1e-2
