"""Captioning speed: captions per second on this machine at t5-small size, greedy and beam 5, side by side.

Random weights at the published t5-small shape (6 + 6 layers, width 512, 32k vocabulary) under the demo's
mel-CNN encoder; every caption is forced to the same length so greedy and beam search do comparable work.
"""

import time

import torch
from transformers import T5Config

from modeling_audiocap import AudioCaptionConfig, AudioEncoderT5ForCaptioning, resolve_encoder

T5_SMALL = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                    num_heads=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def run(clips: int = 8, seconds: float = 10.0, tokens: int = 32, device: str | None = None) -> dict:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    resolved = resolve_encoder("audiocap/melcnn")
    config = AudioCaptionConfig(encoder=resolved.config, text_config=T5_SMALL, sampling_rate=resolved.sampling_rate)
    model = AudioEncoderT5ForCaptioning(config, encoder=resolved.model).to(device).eval()
    audio = torch.randn(clips, int(seconds * resolved.sampling_rate), device=device) * 0.1
    results = {"device": device, "clips": clips, "seconds_per_clip": seconds, "tokens_per_caption": tokens}
    for name, beams in (("greedy", 1), ("beam5", 5)):
        model.generate(input_values=audio[:1], max_new_tokens=2, min_new_tokens=2, num_beams=beams)  # warm-up
        start = time.perf_counter()
        model.generate(input_values=audio, max_new_tokens=tokens, min_new_tokens=tokens, num_beams=beams, do_sample=False)
        elapsed = time.perf_counter() - start
        results[f"{name}_captions_per_s"] = clips / elapsed
    results["beam5_over_greedy_time"] = results["greedy_captions_per_s"] / results["beam5_captions_per_s"]
    return results


if __name__ == "__main__":
    print(run())
