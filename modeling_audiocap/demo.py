"""`make demo`: build a small genre model, save it as a Hub-style repo, reload it and classify a clip, offline."""

import argparse
import logging
import wave
from pathlib import Path

import numpy as np
from transformers import Wav2Vec2Config, pipeline

from modeling_audiocap import AudioEncoderForGenreClassification, AudioGenreConfig, resolve_encoder

logger = logging.getLogger("audiocap.demo")

SMALL_ENCODER = Wav2Vec2Config(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)
LABELS = {0: "low tone", 1: "high tone"}


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit PCM mono WAV."""
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="runs/demo")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.output_dir)
    model_dir = out / "model"
    out.mkdir(parents=True, exist_ok=True)

    resolved = resolve_encoder(SMALL_ENCODER)
    config = AudioGenreConfig(
        encoder=resolved.config, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
        sampling_rate=resolved.sampling_rate, window_seconds=2.0,
    )
    model = AudioEncoderForGenreClassification(config)
    model.encoder = resolved.model
    model.save_pretrained(model_dir)
    resolved.feature_extractor.save_pretrained(model_dir)
    logger.info("Saved an untrained %s to %s", type(model).__name__, model_dir)

    clip = out / "clip.wav"
    t = np.arange(3 * 44100) / 44100
    write_wav(clip, 0.5 * np.sin(2 * np.pi * 440 * t), 44100)
    classifier = pipeline("audio-classification", model=str(model_dir))
    for prediction in classifier(str(clip)):
        logger.info("%s: %.3f", prediction["label"], prediction["score"])


if __name__ == "__main__":
    main()
