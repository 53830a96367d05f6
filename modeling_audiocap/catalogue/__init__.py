"""Catalogues: `predict_catalogue(inputs, models, output_dir, ...)` and the `audiocap-predict` command run saved
audiocap models (genre classifiers, captioners) over many tracks in one pass, into one Hugging Face dataset.

- `heads`: a saved model as a head of the run (how it reads a track, what it computes, its columns);
- `predict`: the run, on the extraction engine's machinery (shards, resumption, processes, decoding workers);
- `cli`: `audiocap-predict`.
"""

from .heads import CaptionHead, GenreHead, Head, load_heads
from .predict import PREDICT, predict_catalogue

__all__ = ["CaptionHead", "GenreHead", "Head", "PREDICT", "load_heads", "predict_catalogue"]
