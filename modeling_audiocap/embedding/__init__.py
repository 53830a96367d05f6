"""Embeddings at scale: `extract_embeddings(inputs, encoder, output_dir, ...)` and the `audiocap-embed` command.

- `engine`: the pipeline (shards, resumption, bucketing by length, DataLoader decoding workers, several processes
  through `accelerate launch`);
- `stream`: block-by-block decoding and windowing of long tracks in bounded memory;
- `runtime`: loading the encoder, choosing the dtype, weight-norm folding, layer truncation, pooling;
- `sources`: folders, file lists and `datasets` inputs;
- `cli`: `audiocap-embed`.
"""

from .engine import ExtractionInterrupted, extract_embeddings, output_features
from .runtime import (
    LayerEmbedder,
    LoadedEncoder,
    choose_dtype,
    cpu_has_fast_bf16,
    fold_weight_norm,
    inference_ready,
    load_encoder,
    pool_frames,
    resolve_layers,
)
from .sources import AUDIO_EXTENSIONS, Clip, list_clips
from ..audio_stream import StreamingResampler, iter_windows

__all__ = [
    "AUDIO_EXTENSIONS",
    "Clip",
    "ExtractionInterrupted",
    "LayerEmbedder",
    "LoadedEncoder",
    "StreamingResampler",
    "choose_dtype",
    "cpu_has_fast_bf16",
    "extract_embeddings",
    "fold_weight_norm",
    "inference_ready",
    "iter_windows",
    "list_clips",
    "load_encoder",
    "output_features",
    "pool_frames",
    "resolve_layers",
]
