"""The HEAR API (Holistic Evaluation of Audio Representations) over any audiocap model or encoder.

    from modeling_audiocap import hear
    model = hear.load_model("runs/demo-genre")            # or "m-a-p/MERT-v1-95M", "audiocap/melcnn", a dir
    scene = hear.get_scene_embeddings(audio, model)        # (n_sounds, scene_embedding_size)
    frames, times_ms = hear.get_timestamp_embeddings(audio, model)

`audio` is `(n_sounds, n_samples)` at `model.sample_rate`, in [-1, 1]. The embedding is the audiocap model's
learned layer weighting of its encoder's layers (a plain encoder: the mean of its layers). Audio is cut into
windows of `window_seconds`; waveform encoders and Whisper give one embedding per encoder frame. AST and CLAP (whose
outputs are not a time sequence) give one embedding per window, so for them a window of `timestamp_window_seconds`
is centred on every timestamp, `HOP_MS` (50 ms, the most the HEAR rules allow) apart, zero-padded beyond the sound.
Scene embeddings are the mean of the timestamp embeddings. Each sound goes through the model's `AudioCapFeatureExtractor`
as in training (checked, and peak-normalised when the model was trained so): NaN / Inf samples or an empty sound
raise `AudioDecodingError` naming the sound.
"""


import torch
from torch import nn

from ..audio import window_starts
from ..encoders import resolve_encoder
from ..modeling_audiocap import mean_pool
from ..encoder_families import EncoderFamily, encoder_family
from ..processing_audiocap import AudioCapFeatureExtractor
from ..saved import audiocap_model_type, load_audiocap_model

HOP_MS = 50.0  # timestamp hop of frameless encoders


class HearModel(nn.Module):
    """An encoder with its layer weighting and feature extractor, exposing the HEAR attributes."""

    def __init__(self, encoder, encoder_config, processor: AudioCapFeatureExtractor, layer_weighting=None,
                 family: EncoderFamily | None = None, window_seconds: float = 10.0,
                 timestamp_window_seconds: float = 1.0):
        super().__init__()
        self.encoder = encoder.eval()
        self.encoder_config = encoder_config
        self.processor = processor
        self.layer_weighting = layer_weighting
        self.window_seconds = window_seconds
        self.timestamp_window_seconds = timestamp_window_seconds
        self.sample_rate = processor.sampling_rate
        self.family = family or encoder_family(encoder_config)
        self.scene_embedding_size = self.family.layer_width(encoder_config)
        self.timestamp_embedding_size = self.scene_embedding_size
        self.frame_level = self.family.frames

    def weigh(self, hidden: torch.Tensor) -> torch.Tensor:
        """`(B, L, T, D)` -> `(B, T, D)`."""
        if self.layer_weighting is None:
            return hidden.mean(dim=1)
        return self.layer_weighting(hidden)

    @torch.inference_mode()
    def embed_window(self, wave: torch.Tensor) -> torch.Tensor:
        """One window `(samples,)` -> frame embeddings `(T, D)` of its valid frames (one row for AST / CLAP)."""
        frames, frame_mask = self._weighted_frames([wave])
        frames = frames[0]
        if not self.frame_level:
            return mean_pool(frames[None], None)
        if frame_mask is not None:  # e.g. Whisper's 30 s of features: only the frames that cover the audio
            frames = frames[frame_mask[0].bool()]
        return frames

    @torch.inference_mode()
    def embed_windows(self, waves: list[torch.Tensor]) -> torch.Tensor:
        """Equal-length windows of a frameless encoder -> one embedding each `(len(waves), D)`."""
        frames, _ = self._weighted_frames(waves)
        return frames.mean(dim=1)

    def _weighted_frames(self, waves: list[torch.Tensor]):
        """Windows -> layer-weighted frames `(B, T, D)` and the frame mask (None when every frame is valid)."""
        features = self.processor.featurize(waves)
        inputs = features.pop(self.family.input_name)
        mask = features.pop("attention_mask", None)
        hidden, frame_mask, _ = self.family.encode_layers(self.encoder, inputs, mask, **features)
        return self.weigh(hidden), frame_mask


def load_model(
    model_file_path: str = "m-a-p/MERT-v1-95M", window_seconds: float = 10.0, timestamp_window_seconds: float = 1.0
) -> HearModel:
    """A HEAR model from a saved audiocap model dir, or anything `resolve_encoder` takes (Hub id, dir, short name).
    `timestamp_window_seconds`: the window centred on each timestamp of a frameless encoder (AST, CLAP)."""
    if audiocap_model_type(model_file_path):
        model, processor = load_audiocap_model(model_file_path)
        model.eval()
        return HearModel(model.encoder, model.config.encoder, processor, model.layer_weighting,
                         model.family, model.config.window_seconds or window_seconds,
                         timestamp_window_seconds)
    resolved = resolve_encoder(model_file_path)
    if resolved.num_layers < 1:
        raise ValueError(f"{model_file_path} has no hidden-state layers to embed")
    return HearModel(resolved.model, resolved.config, AudioCapFeatureExtractor(resolved.feature_extractor),
                     family=resolved.family, window_seconds=window_seconds,
                     timestamp_window_seconds=timestamp_window_seconds)


def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """`(n_sounds, n_samples)` -> embeddings `(n_sounds, n_timestamps, D)` and their centres in ms."""
    if audio.dim() != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    all_embeddings, all_times = [], []
    for index, sound in enumerate(audio.float().cpu()):
        source = {"array": sound.numpy(), "sampling_rate": model.sample_rate, "path": f"sound {index} of the batch"}
        wave = model.processor.load(source)[0]  # checked (and peak-normalised, if the model was) as in training
        embeddings, times = _frame_timestamps(wave, model) if model.frame_level else _window_timestamps(wave, model)
        all_embeddings.append(embeddings)
        all_times.append(times)
    length = min(e.shape[0] for e in all_embeddings)  # equal-length sounds give equal counts; trim otherwise
    return torch.stack([e[:length] for e in all_embeddings]), torch.stack([t[:length] for t in all_times])


def _frame_timestamps(wave: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-level encoders: the frames of back-to-back windows, each stamped at its centre."""
    rate = model.sample_rate
    window = max(1, int(round(model.window_seconds * rate)))
    embeddings, times = [], []
    for start in window_starts(wave.shape[0], window):
        chunk = wave[start : start + window]
        frames = model.embed_window(chunk)
        span_ms = 1000.0 * chunk.shape[0] / rate
        centres = (torch.arange(frames.shape[0]) + 0.5) * span_ms / frames.shape[0] + 1000.0 * start / rate
        keep = centres > (times[-1][-1] if times else -1.0)  # the end-aligned last window overlaps: no repeats
        embeddings.append(frames[keep])
        times.append(centres[keep])
    return torch.cat(embeddings), torch.cat(times)


def _window_timestamps(wave: torch.Tensor, model: HearModel, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Frameless encoders (AST, CLAP): one window of `timestamp_window_seconds` centred on each timestamp, `HOP_MS`
    apart from 0 to the sound's end; the sound is zero-padded by half a window on each side."""
    rate = model.sample_rate
    window = max(1, int(round(model.timestamp_window_seconds * rate)))
    half = window // 2
    padded = torch.nn.functional.pad(wave, (half, window - half))
    times = torch.arange(0.0, 1000.0 * wave.shape[0] / rate, HOP_MS)
    centres = [int(round(t * rate / 1000.0)) for t in times.tolist()]
    embeddings = [
        model.embed_windows([padded[c : c + window] for c in centres[i : i + batch_size]])
        for i in range(0, len(centres), batch_size)
    ]
    return torch.cat(embeddings), times


def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """`(n_sounds, n_samples)` -> `(n_sounds, scene_embedding_size)`: the mean over timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
