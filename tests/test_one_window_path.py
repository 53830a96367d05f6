"""One file, every path: serving, training's evaluation rows and frozen cache, training crops, the captioner's
evaluation window, the extraction engine, the contrastive probe and HEAR cut the same windows (the processor's) and
featurise them identically."""

import datasets
import numpy as np
import torch
from conftest import tiny_encoder_config, tone, write_wav

from modeling_audiocap import AudioCapFeatureExtractor, AudioCapProcessor, extract_embeddings, hear, resolve_encoder
from modeling_audiocap.training.collators import CaptionCollator, WaveformCollator
from modeling_audiocap.training.contrastive import clip_embeddings
from modeling_audiocap.training.crops import EpochCrops
from modeling_audiocap.training.genre_data import decode_dataset, window_dataset
from modeling_audiocap.training.text import train_caption_tokenizer

RATE = 16000


def test_every_path_cuts_the_processors_windows_and_featurises_them_alike(tmp_path):
    resolved = resolve_encoder(tiny_encoder_config("wav2vec2-layernorm"))  # normalises each window, masks padding
    processor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5, hop_seconds=0.3)
    path = tmp_path / "clip.wav"
    write_wav(path, 0.1 + 0.5 * tone(1.3, RATE, 330.0), RATE)

    # serving and evaluation: the processor itself, and its streamed windows (pipeline, engine, probe)
    served = processor(str(path))
    wave = processor.load(str(path))[0]
    starts = processor.window_starts(wave.shape[0])
    assert starts == [0, 4800, 9600, wave.shape[0] - 8000]
    assert [start for start, _ in processor.iter_windows(str(path))] == starts
    expected = processor.featurize([wave[s : s + 8000] for s in starts])
    torch.testing.assert_close(served["input_values"], expected["input_values"], rtol=0, atol=0)

    # training's evaluation rows (and the frozen cache, which featurises them) and its collator
    table = datasets.Dataset.from_dict({"audio": [str(path)], "label": [0]})
    table = table.cast_column("audio", datasets.Audio(decode=False))
    decoded, _ = decode_dataset(table, RATE)
    rows = window_dataset(decoded, processor)
    crops = EpochCrops(processor, seed=0)
    batch = WaveformCollator(processor, crops)([dict(row) for row in rows])
    torch.testing.assert_close(batch["input_values"], served["input_values"], rtol=0, atol=0)

    # training crops: one window-long slice of the clip, featurised as that slice is everywhere
    crop = crops.crop(decoded[0]["waveform"], 0)
    start = next(s for s in range(wave.shape[0] - 7999) if torch.equal(wave[s : s + 8000], crop))
    training = WaveformCollator(processor, crops)([{"waveform": decoded[0]["waveform"], "clip_index": 0, "label": 0}])
    torch.testing.assert_close(training["input_values"], processor.featurize([wave[start : start + 8000]])["input_values"])

    # the captioner evaluates on the first of the same windows
    captions = {"caption": "a rock clip", "captions": ["a rock clip"]}
    tokenizer = train_caption_tokenizer(["a rock clip"], 64)
    caption_processor = AudioCapProcessor(resolved.feature_extractor, tokenizer=tokenizer, window_seconds=0.5)
    evaluation = CaptionCollator(caption_processor, crops, 8, training=False)
    first = evaluation([{"waveform": decoded[0]["waveform"], "clip_index": 0, **captions}])
    torch.testing.assert_close(first["input_values"][0], expected["input_values"][0])

    # the extraction engine and the contrastive probe: the same windows, the same embeddings
    engine = extract_embeddings([str(path)], resolved, tmp_path / "engine", window_seconds=0.5, hop_seconds=0.3,
                                batch_size=4, dtype="float32", device="cpu", progress=False).with_format("numpy")
    np.testing.assert_allclose(np.asarray(engine["window_starts"][0]) * RATE, starts, atol=0.5)
    probe = clip_embeddings(resolved.model, [wave.numpy()], processor, layers="all")
    np.testing.assert_allclose(probe[0], np.asarray(engine["embeddings"][0]).mean(axis=0).reshape(-1), rtol=1e-4,
                               atol=1e-5)

    # HEAR: back-to-back windows by the same rule, featurised by the processor
    model = hear.load_model(str(_saved_encoder(resolved, tmp_path / "encoder")), window_seconds=0.5)
    frames, _ = hear.get_timestamp_embeddings(wave[None], model)
    features = AudioCapFeatureExtractor(resolved.feature_extractor).featurize([wave[:8000]])
    with torch.no_grad():
        hidden, _, _ = model.family.encode_layers(model.encoder, features["input_values"], features.get("attention_mask"))
    first_window = hidden.mean(dim=1)[0]  # a plain encoder's HEAR embedding: the mean of its layers, (frames, width)
    torch.testing.assert_close(frames[0, : first_window.shape[0]], first_window, rtol=1e-4, atol=1e-5)


def _saved_encoder(resolved, folder):
    resolved.model.save_pretrained(folder)
    resolved.feature_extractor.save_pretrained(folder)
    return folder
