"""The scratch captioner's tokenizer: tempos stay whole numbers, and a vocabulary too small for them says so."""

import logging

import numpy as np

from modeling_audiocap.data.synthetic import GENRES, sample_clip
from modeling_audiocap.training.text import train_caption_tokenizer


def built_in_captions(count: int) -> list[dict]:
    return [sample_clip(genre, np.random.default_rng([i, k])) for i in range(count) for k, genre in enumerate(GENRES)]


def test_every_tempo_is_one_token_and_decodes_back():
    clips = built_in_captions(40)
    tokenizer = train_caption_tokenizer([c["caption"] for c in clips], vocab_size=1000)
    for clip in clips:
        bpm = f"{int(round(clip['tempo_bpm']))}"
        tokens = tokenizer.tokenize(clip["caption"])
        assert f"Ġ{bpm}" in tokens or bpm in tokens, (bpm, tokens)
        ids = tokenizer(clip["caption"])["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True) == clip["caption"].lower()


def test_a_full_vocabulary_warns_and_splits_numbers(caplog):
    clips = built_in_captions(40)
    with caplog.at_level(logging.WARNING):
        tokenizer = train_caption_tokenizer([c["caption"] for c in clips], vocab_size=300)
    assert "vocabulary filled up" in caplog.text
    assert len(tokenizer) == 300
    assert any(len(tokenizer.tokenize(f" {int(round(c['tempo_bpm']))}")) > 1 for c in clips)
