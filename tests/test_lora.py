"""LoRA: only adapters and head train; adapters save and load; merging gives a plain model with the same outputs."""

import pytest
import torch
from peft import PeftModel

from conftest import batch_for, caption_model, genre_model

from modeling_audiocap import AudioEncoderForGenreClassification
from modeling_audiocap.training.lora import apply_lora


@pytest.mark.parametrize("family", ["mert", "ast"])
def test_lora_trains_adapters_and_head_only(family):
    model, resolved = genre_model(family)
    peft_model = apply_lora(model, r=4)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or ".head." in n or "layer_weighting" in n for n in trainable)
    assert any("lora_A" in n for n in trainable) and any(".head." in n for n in trainable)
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    batch = batch_for(resolved, n=3)
    for _ in range(2):
        loss = peft_model(**batch, labels=torch.tensor([0, 1, 2])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in peft_model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable
    if family == "mert":  # no graph through the frozen conv feature encoder
        assert not model.encoder.feature_extractor(batch["input_values"]).requires_grad


def test_lora_adapters_round_trip_and_merge(tmp_path):
    model, resolved = genre_model("wav2vec2")
    model.save_pretrained(tmp_path / "base")
    peft_model = apply_lora(model, r=4)
    with torch.no_grad():  # make the adapters non-trivial
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or ".head." in name:
                param.add_(0.1 * torch.randn_like(param))
    peft_model.eval()
    batch = batch_for(resolved)
    with torch.no_grad():
        expected = peft_model(**batch).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    saved = list((tmp_path / "adapter").glob("adapter_model.safetensors"))
    assert saved and saved[0].stat().st_size < (tmp_path / "base" / "model.safetensors").stat().st_size

    base = AudioEncoderForGenreClassification.from_pretrained(tmp_path / "base")
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected)
        merged = reloaded.merge_and_unload()
        assert type(merged) is AudioEncoderForGenreClassification
        assert not any("lora_" in k for k in merged.state_dict())
        torch.testing.assert_close(merged(**batch).logits, expected, rtol=1e-4, atol=1e-5)


def test_lora_on_captioner_can_target_t5():
    model, _ = caption_model("wav2vec2")
    with_t5 = apply_lora(model, r=2, include_text_model=True)
    names = [n for n, p in with_t5.named_parameters() if p.requires_grad]
    assert any(n.startswith("base_model.model.t5.") and "lora_A" in n for n in names)
    assert any("encoder.encoder.layers" in n and "lora_A" in n for n in names)
    model, _ = caption_model("wav2vec2")
    encoder_only = apply_lora(model, r=2)
    t5_trainable = [n for n, p in encoder_only.named_parameters() if p.requires_grad and ".t5." in n]
    assert t5_trainable and not any("lora_" in n for n in t5_trainable)


def test_lora_on_a_wav2vec2_captioner_trains_only_its_own_modules_fully_and_round_trips(tmp_path):
    """The encoder's `feature_projection` stays frozen (peft's name-suffix match once caught it with the
    captioner's projection), and the adapters with the fully trained modules reload into a fresh captioner."""
    model, resolved = caption_model("wav2vec2")
    model.save_pretrained(tmp_path / "base")
    peft_model = apply_lora(model, r=2)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert not any("feature_projection" in n for n in trainable)
    assert any(".audio_projection." in n for n in trainable) and any(".layer_weighting." in n for n in trainable)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or ".audio_projection." in name:
                param.add_(0.1 * torch.randn_like(param))
    peft_model.eval()
    batch = batch_for(resolved)
    labels = torch.tensor([[3, 4, 5, 1], [6, 7, 1, -100]])
    with torch.no_grad():
        expected = peft_model(**batch, labels=labels).loss
    peft_model.save_pretrained(tmp_path / "adapter")
    base = type(model).from_pretrained(tmp_path / "base")
    reloaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch, labels=labels).loss, expected)
