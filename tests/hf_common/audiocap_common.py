"""transformers' own common model tests (`ModelTesterMixin`) run against audiocap's two models, with tiny configs.

Run with `make test-hf-common`: it fetches the battery of the installed transformers version from its source
distribution into `.cache/hf-common` (see `fetch_battery.py`; offline once cached) and runs this file, which the
default `make test` does not collect (its name does not start with `test_`). The generation-mixin and torch.export
batteries are not in the sdist and do not run (empty mixins stand in for them, see `fetch_battery.py`).

Each model runs around three encoder families: wav2vec2, MERT (audiocap's own encoder code) and Whisper (log-mel
input). The tests that do not apply are skipped by `not_applicable`, each with its reason (`*_NOT_APPLICABLE`). The
battery skips others itself, with its reason in pytest's report (`-rs`): those needing hardware or libraries absent
here (an accelerator, Flash Attention, kernels, DeepSpeed, MPS; `@slow`), those for features these models do not have
(mixture of experts, RoPE, sliding windows, position-embedding resizing, tensor-parallel plans, fp32-kept modules,
checkpoint key conversions, a cache or `inputs_embeds` as input, decoder-only label shifting, a non-composite model,
vision/text towers named as in transformers' VLMs, an AutoModel base class for the config) and, for the captioner,
the capture of a list of layers, which reads `hidden_states` where a seq2seq output has `encoder_hidden_states`.
"""

import sys
import unittest

import torch
from conftest import tiny_encoder_config, tiny_t5_config
from fetch_battery import PACKAGE, battery_dir

ROOT = battery_dir()
if not (ROOT / PACKAGE / "test_modeling_common.py").exists():
    raise RuntimeError(f"{ROOT} holds no transformers test battery: run `make test-hf-common` (fetches it once)")
sys.path[:0] = [str(ROOT), str(ROOT / "site")]

from transformers.models.auto.modeling_auto import (  # noqa: E402
    MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES,
    MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES,
)
from transformers_tests.generation.test_utils import GenerationTesterMixin  # noqa: E402
from transformers_tests.test_modeling_common import ModelTesterMixin, floats_tensor, ids_tensor  # noqa: E402

from modeling_audiocap import (  # noqa: E402
    AudioCaptionConfig,
    AudioEncoderForGenreClassification,
    AudioEncoderT5ForCaptioning,
    AudioGenreConfig,
)

# `import modeling_audiocap` registers the models with AutoModelForAudioClassification and AutoModelForSpeechSeq2Seq;
# the battery finds a task's heads in transformers' static name tables, so they are entered there too (in this process
# only): the classifier then gets the classification checks (its labels, reloading with another `num_labels`), the
# captioner the seq2seq loss check (no second shift of the labels).
MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES[AudioGenreConfig.model_type] = AudioEncoderForGenreClassification.__name__
MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES[AudioCaptionConfig.model_type] = AudioEncoderT5ForCaptioning.__name__

# Tests of the battery that do not apply, with the reason; skipped by name (a parameterised test with all its cases).
BOTH_NOT_APPLICABLE = {
    "test_correct_missing_keys": (
        "the base model is the audio encoder, whose checkpoint carries the encoder's own config (wav2vec2, ...), not "
        "the model's: it loads into the model with the model's config given, which tests/test_modeling.py checks"
    ),
    "test_can_init_all_missing_weights": (
        "exempt as transformers exempts the sub-models: wav2vec2's, Whisper's and T5's own `_init_weights` (models "
        "from before 2023, which transformers spares this check) re-initialise a few of their weights differently "
        "from the meta device; audiocap's own modules pass it (run with test_can_init_all_missing_weights_before_2023 "
        "= True: the MERT genre classifier passes whole)"
    ),
}
GENRE_NOT_APPLICABLE = {
    **BOTH_NOT_APPLICABLE,
    **dict.fromkeys(
        (
            "test_model_get_set_embeddings",
            "test_resize_tokens_embeddings",
            "test_resize_embeddings_untied",
            "test_enable_input_require_grads_with_gradient_checkpointing",
        ),
        "the genre classifier reads audio only: it has no token embeddings",
    ),
    "test_can_capture_specific_layers_hidden_states": (
        "the layer weighting reads every encoder layer, so the encoder always returns all its hidden states: "
        "`output_hidden_states` is a flag, not a list of the layers to capture"
    ),
}
CAPTION_NOT_APPLICABLE = BOTH_NOT_APPLICABLE


def not_applicable(reasons: dict[str, str]):
    """A class decorator replacing each test named in `reasons` (and its parameterisations) by a skip with its
    reason."""

    def skip_tests(cls: type) -> type:
        for name in dir(cls):
            base = next((key for key in reasons if name == key or name.startswith(f"{key}_")), None)
            if base is not None and callable(getattr(cls, name)):
                setattr(cls, name, unittest.skip(reasons[base])(getattr(cls, name)))
        return cls

    return skip_tests


class AudioModelTester:
    """Tiny configs and inputs for the battery: `batch_size` clips through a tiny encoder of `family`
    (`conftest.tiny_encoder_config`), `encoder_seq_length` frames of width `hidden_size` each. A waveform clip is
    `seq_length` samples (the tiny waveform encoders' convolutions, stride 5, 4, 4, make 12 frames of 1024); a Whisper
    clip `seq_length` log-mel frames, its encoder's positions cut to match (its second convolution halves them)."""

    batch_size = 3
    is_training = True

    def __init__(self, parent: unittest.TestCase, family: str):
        self.parent = parent
        self.encoder_config = tiny_encoder_config(family)
        self.seq_length, self.encoder_seq_length = 1024, 12
        if family == "whisper":
            self.seq_length, self.encoder_seq_length = 32, 16
            self.encoder_config.max_source_positions = self.encoder_seq_length
        self.hidden_size = self.encoder_config.hidden_size
        self.num_hidden_layers = self.encoder_config.num_hidden_layers
        self.num_attention_heads = self.encoder_config.num_attention_heads

    def audio_inputs(self) -> dict[str, torch.Tensor]:
        """`input_values` `(B, samples)` or `(B, mel bins, frames)`, and a mask `(B, seq_length)` padding the last."""
        shape = [self.batch_size, self.seq_length]
        if self.encoder_config.model_type == "whisper":
            shape.insert(1, self.encoder_config.num_mel_bins)
        attention_mask = torch.ones(self.batch_size, self.seq_length, dtype=torch.long)
        attention_mask[-1, -self.seq_length // 4 :] = 0
        return {"input_values": floats_tensor(shape), "attention_mask": attention_mask}


class GenreModelTester(AudioModelTester):
    num_labels = 3

    def get_config(self) -> AudioGenreConfig:
        return AudioGenreConfig(
            encoder=self.encoder_config, head_hidden_size=16, id2label={i: f"genre{i}" for i in range(self.num_labels)}
        )

    def prepare_config_and_inputs_for_common(self) -> tuple[AudioGenreConfig, dict]:
        return self.get_config(), self.audio_inputs()


class CaptionModelTester(AudioModelTester):
    """The encoder side ends in T5's encoder (`connector="t5_encoder"`, stride 1): T5's tiny config has one encoder and
    one decoder layer of width 32, so `encoder_hidden_states` and `decoder_hidden_states` both hold 2 states."""

    decoder_seq_length = 5
    vocab_size = 64

    def __init__(self, parent: unittest.TestCase, family: str):
        super().__init__(parent, family)
        self.text_config = tiny_t5_config(self.vocab_size)
        self.hidden_size = self.text_config.d_model
        self.num_hidden_layers = self.text_config.num_layers
        self.num_attention_heads = self.text_config.num_heads

    def get_config(self) -> AudioCaptionConfig:
        return AudioCaptionConfig(encoder=self.encoder_config, text_config=self.text_config, time_reduction_stride=1)

    def prepare_config_and_inputs_for_common(self) -> tuple[AudioCaptionConfig, dict]:
        """The caption tokens are `decoder_input_ids`, also under the battery's name for a model's token input,
        `input_ids` (the same tensor: the embedding-resize tests write new token ids into it)."""
        inputs = self.audio_inputs()
        inputs["decoder_input_ids"] = ids_tensor([self.batch_size, self.decoder_seq_length], self.vocab_size)
        inputs["input_ids"] = inputs["decoder_input_ids"]
        return self.get_config(), inputs


@not_applicable(GENRE_NOT_APPLICABLE)
class GenreClassifierTest(ModelTesterMixin, unittest.TestCase):
    """The genre classifier around a tiny wav2vec2."""

    all_model_classes = (AudioEncoderForGenreClassification,)
    _is_composite = True
    family = "wav2vec2"

    def setUp(self):
        self.model_tester = GenreModelTester(self, self.family)


class GenreClassifierMERTTest(GenreClassifierTest):
    """The genre classifier around a tiny MERT (audiocap's own encoder code)."""

    family = "mert"


@not_applicable(CAPTION_NOT_APPLICABLE)
class CaptionerTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    """The captioner around a tiny wav2vec2 and a tiny T5."""

    all_model_classes = (AudioEncoderT5ForCaptioning,)
    is_encoder_decoder = True
    _is_composite = True
    family = "wav2vec2"

    def setUp(self):
        self.model_tester = CaptionModelTester(self, self.family)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        """The labels are caption token ids `(B, decoder_seq_length)`, the decoder inputs themselves; the `input_ids`
        alias of the caption tokens is no input of the model."""
        inputs = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        inputs.pop("input_ids", None)
        if return_labels:
            inputs["labels"] = inputs["decoder_input_ids"].clone()
        return inputs


class CaptionerMERTTest(CaptionerTest):
    """The captioner around a tiny MERT and a tiny T5."""

    family = "mert"



class GenreClassifierWhisperTest(GenreClassifierTest):
    """The genre classifier around a tiny Whisper encoder (log-mel input)."""

    family = "whisper"


class CaptionerWhisperTest(CaptionerTest):
    """The captioner around a tiny Whisper encoder and a tiny T5."""

    family = "whisper"
