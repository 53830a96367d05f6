"""A T5 and tokenizer built from scratch, for captioning where no pretrained text model is available offline."""

import logging
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, T5Config

logger = logging.getLogger(__name__)
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: T5's pad (= decoder start), end and unknown


def train_caption_tokenizer(captions: Iterable[str], vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """A lower-casing byte-level BPE tokenizer trained on `captions`, appending `</s>` like T5's.

    A number is a pre-token of its own and merges like a word, so with room in the vocabulary every number the
    captions hold is one token and a tempo comes out whole ("118 bpm"). Spelled digit by digit, a small decoder loses
    count of repeated digits ("1111110 bpm"); with too small a vocabulary, numbers and words stay split into pieces
    (a warning says so)."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(captions, trainer=trainer)
    if tokenizer.get_vocab_size() >= vocab_size:
        logger.warning("The caption vocabulary filled up (%d tokens): words and numbers it had no room for are split "
                       "into pieces; a larger --scratch_vocab_size keeps them whole", vocab_size)
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512
    )


def small_t5_config(vocab_size: int, d_model: int = 128, layers: int = 2, heads: int = 4) -> T5Config:
    """A small T5 that trains on a CPU; pad = decoder start = 0, end = 1, like every T5."""
    return T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_model // heads,
        d_ff=4 * d_model,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        dropout_rate=0.1,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
