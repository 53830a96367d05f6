"""`problem_type` as transformers defines it, on the clip classifier: tags (sigmoid, binary cross-entropy) and
regression (values, squared error) beside one genre per clip; the loss, the pipeline's scores and the catalogue's
columns follow it."""

import numpy as np
import pytest
import torch
from conftest import LABELS, batch_for, genre_model, tone, write_wav
from transformers import pipeline

from modeling_audiocap import AudioCapFeatureExtractor, AudioGenreClassificationPipeline
from modeling_audiocap.catalogue import predict_catalogue

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_loss_follows_the_problem_type():
    torch.manual_seed(0)
    tagger, resolved = genre_model("wav2vec2-layernorm", problem_type="multi_label_classification")
    batch = batch_for(resolved)
    tags = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = tagger(**batch, labels=tags)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, tags))
    regressor, _ = genre_model("wav2vec2-layernorm", problem_type="regression")
    targets = torch.tensor([[120.0, 0.2, -0.5], [90.0, 0.7, 0.1]])
    out = regressor(**batch, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits, targets))
    single, _ = genre_model("wav2vec2-layernorm")  # unset: inferred as transformers does, class indices
    out = single(**batch, labels=torch.tensor([0, 2]))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])))


@pytest.mark.parametrize("problem_type,function", [("multi_label_classification", torch.sigmoid),
                                                   ("regression", lambda x: x)])
def test_pipeline_and_catalogue_give_a_taggers_sigmoids_and_a_regressors_values(tmp_path, problem_type, function):
    torch.manual_seed(0)
    model, resolved = genre_model("wav2vec2-layernorm", problem_type=problem_type)
    model.save_pretrained(tmp_path / "model")
    extractor = AudioCapFeatureExtractor(resolved.feature_extractor, window_seconds=0.5)
    extractor.save_pretrained(tmp_path / "model")
    (tmp_path / "music").mkdir()
    paths = [tmp_path / "music" / f"clip{i}.wav" for i in range(3)]
    for i, path in enumerate(paths):
        write_wav(path, tone(1.2, 16000, 200.0 + 150 * i, seed=i), 16000)
    classify = pipeline("audio-classification", model=str(tmp_path / "model"),
                        pipeline_class=AudioGenreClassificationPipeline)
    rows = predict_catalogue(tmp_path / "music", [tmp_path / "model"], tmp_path / "out", num_workers=0, device="cpu",
                             progress=False)
    column = "model_scores" if problem_type.startswith("multi") else "model_values"
    for path, row in zip(paths, rows):
        features = extractor(str(path))
        window_clip_index = features.pop("window_clip_index")
        with torch.no_grad():
            logits = model(**features).logits.mean(0)
        assert window_clip_index.tolist() == [0, 0, 0]
        expected = function(logits)
        served = {item["label"]: item["score"] for item in classify(str(path), top_k=None)}
        np.testing.assert_allclose([served[LABELS[i]] for i in range(3)], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(row[column], expected, rtol=1e-5, atol=1e-6)
        if problem_type.startswith("multi"):  # every tag scored on its own: not a distribution over the labels
            assert row["model_tags"] == [i for i in range(3) if expected[i] >= 0.5]
    assert "model_label" not in rows.column_names
