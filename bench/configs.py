"""The published encoder configs, written in code (random weights: speed and memory do not depend on the values).

- wav2vec2-base (facebook/wav2vec2-base): 16 kHz, 7-layer group-norm conv feature encoder (stride 320, 50 frames/s),
  12 post-norm layers, 768 wide, 12 heads, 3072 FFN, positional conv 128 taps / 16 groups under weight norm.
- MERT-v1-95M (m-a-p/MERT-v1-95M): the HuBERT-base shape at 24 kHz (75 frames/s).
- MERT-v1-330M (m-a-p/MERT-v1-330M): 24 pre-norm ("stable layer norm") layers, 1024 wide, 16 heads, 4096 FFN; the
  conv feature encoder is still group norm.
- Whisper-base's encoder (openai/whisper-base): 80 mel bins, 30-s input (3000 mel frames -> 1500 positions),
  6 layers, 512 wide, 8 heads, 2048 FFN.
- CLAP's audio tower (laion/clap-htsat-unfused): HTSAT (Swin) on a 64-band log-mel at 48 kHz, 10-s input,
  depths 2/2/6/2, 96 -> 768 channels, 512-d projection.
"""

from dataclasses import dataclass, field

from transformers import ClapAudioConfig, PretrainedConfig, Wav2Vec2Config, WhisperConfig

from modeling_audiocap import MERTConfig


def wav2vec2_base() -> PretrainedConfig:
    return Wav2Vec2Config(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
    )


def mert_v1_95m() -> PretrainedConfig:
    return MERTConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False, sampling_rate=24000,
    )


def mert_v1_330m() -> PretrainedConfig:
    return MERTConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        feat_extract_norm="group", do_stable_layer_norm=True, conv_bias=False, sampling_rate=24000,
    )


def whisper_base() -> PretrainedConfig:
    return WhisperConfig(
        d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048, decoder_layers=6,
        decoder_attention_heads=8, decoder_ffn_dim=2048, num_mel_bins=80, max_source_positions=1500,
    )


def clap_htsat_unfused() -> PretrainedConfig:
    return ClapAudioConfig(
        window_size=8, num_mel_bins=64, spec_size=256, patch_size=4, patch_stride=(4, 4), hidden_size=768,
        patch_embeds_hidden_size=96, depths=[2, 2, 6, 2], num_attention_heads=[4, 8, 16, 32], projection_dim=512,
        enable_fusion=False,
    )


FRACTION_TARGET = 0.65  # fraction of the dtype's matmul peak an encoder should reach ...
TARGET_BATCH = 16  # ... at this batch


def target_row(rows: list[dict]) -> dict:
    """Of one encoder's rows in one dtype, the one a target is read from: the target batch, or the largest batch run
    where it was not (MERT-v1-330M, Whisper and bf16 on a CPU)."""
    return next((row for row in rows if row["batch"] == TARGET_BATCH), max(rows, key=lambda row: row["batch"]))


@dataclass
class EncoderSpec:
    """An encoder to benchmark and how: window length and batch sizes per device kind and dtype."""

    name: str
    config: callable
    window_seconds: dict = field(default_factory=dict)  # {"cuda": s, "cpu": s, "cpu_bf16": s}
    batches: dict = field(default_factory=dict)  # {"cuda": [...], "cpu": [...], "cpu_bf16": [...]}
    optional: bool = False  # run only if the time budget allows ("if time permits")


# On the 2-core CPU, windows are shorter than the 10 s used on a GPU, MERT-v1-330M stops at batch 4 (batch 16 alone
# would take over a minute a run), and bf16 runs only at batch 1 (this CPU emulates bf16 matmuls and convolutions:
# see BENCHMARKS.md); a GPU runs them all at 10 s (Whisper always sees 30 s).
ENCODERS = [
    EncoderSpec(
        "wav2vec2-base", wav2vec2_base,
        {"cuda": 10.0, "cpu": 4.0, "cpu_bf16": 2.0}, {"cuda": [1, 4, 16, 64], "cpu": [1, 4, 16], "cpu_bf16": [1]},
    ),
    EncoderSpec(
        "MERT-v1-95M", mert_v1_95m,
        {"cuda": 10.0, "cpu": 4.0, "cpu_bf16": 2.0}, {"cuda": [1, 4, 16, 64], "cpu": [1, 4, 16], "cpu_bf16": [1]},
    ),
    EncoderSpec(
        "MERT-v1-330M", mert_v1_330m,
        {"cuda": 10.0, "cpu": 4.0, "cpu_bf16": 1.0}, {"cuda": [1, 4, 16, 64], "cpu": [1, 4], "cpu_bf16": [1]},
    ),
    EncoderSpec(
        "Whisper-base encoder", whisper_base,
        {"cuda": 30.0, "cpu": 30.0, "cpu_bf16": 30.0}, {"cuda": [1, 4, 16], "cpu": [1, 4], "cpu_bf16": [1]},
        optional=True,
    ),
    EncoderSpec(
        "CLAP audio tower (HTSAT)", clap_htsat_unfused,
        {"cuda": 10.0, "cpu": 10.0, "cpu_bf16": 10.0}, {"cuda": [1, 4, 16, 64], "cpu": [1, 4, 16], "cpu_bf16": [1]},
        optional=True,
    ),
]
