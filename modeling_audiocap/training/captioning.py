"""What captioning runs share beyond the model: the attribute heads' targets from a dataset's columns, the trainer
that evaluates on the collator's evaluation form, and decoding generated ids to captions."""

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict
from transformers import Seq2SeqTrainer

from ..configuration_audiocap import check_attribute_head
from ..data.sources import take_column

# Attribute columns of the built-in set that the generated captions are checked against.
BUILTIN_ATTRIBUTES = ("genre", "tempo_class", "mode", "instrument", "drums", "tempo_bpm")


def attribute_heads(train: Dataset, columns: str | None, source: str) -> dict | None:
    """`--attribute_columns` as `AudioCaptionConfig.attribute_heads`, from the training clips: the classes of a text
    (or class-label) column, the mean and spread of a numeric one (or of a text one that holds only numbers, as a
    `metadata.csv` column may)."""
    heads = {}
    for name in [c.strip() for c in (columns or "").split(",") if c.strip()]:
        take_column(DatasetDict(train=train), name, name, "attribute", source, "--attribute_columns")
        feature, values = train.features[name], train[name]
        refuse_missing_values(name, values, source)
        if isinstance(feature, ClassLabel):
            heads[name] = {"labels": list(feature.names)}
        elif (numbers := as_numbers(values)) is not None:
            heads[name] = {"mean": float(numbers.mean()), "std": float(numbers.std())}
        else:
            heads[name] = {"labels": sorted(set(map(str, values)))}
        check_attribute_head(name, heads[name])
    return heads or None


def refuse_missing_values(name: str, values: list, source: str) -> None:
    """An attribute head learns from every training clip: a clip without a value (None, NaN or empty text) is
    refused, naming the column, the count and the first such row."""
    missing = [i for i, v in enumerate(values) if v is None or v != v or (isinstance(v, str) and not v.strip())]
    if missing:
        raise ValueError(
            f"--attribute_columns: column {name!r} of {source}'s training clips has no value in {len(missing)} of "
            f"{len(values)} clips (the first is row {missing[0]}); fill them in or filter those clips out first"
        )


def as_numbers(values: list) -> np.ndarray | None:
    """`values` as floats, or None when one of them is not a number."""
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def attribute_references(clips) -> list[dict]:
    """The built-in set's known attributes of `clips`, as the caption_attributes metric takes them."""
    columns = {a: list(clips[a]) for a in BUILTIN_ATTRIBUTES}
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


class CaptionTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer whose evaluation and test loaders batch with its collator's evaluation form (first window and
    caption, no attribute labels) while the training loader, built once, keeps random crops, drawn captions and
    attribute labels through every evaluation; it also keeps the generation settings."""

    def _evaluation_loader(self, make_loader, dataset):
        training_collator = self.data_collator
        self.data_collator = training_collator.for_evaluation()
        try:
            return make_loader(dataset)
        finally:
            self.data_collator = training_collator

    def get_eval_dataloader(self, eval_dataset=None):
        return self._evaluation_loader(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset):
        return self._evaluation_loader(super().get_test_dataloader, test_dataset)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        """As Seq2SeqTrainer's, but the model's generation settings are left as configured: after generating, the
        parent fills the config's unset fields with defaults (`max_length` 20), which then conflict with
        `max_new_tokens` in every later caption, and in the saved model."""
        max_length = self.model.generation_config.max_length
        try:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
        finally:
            self.model.generation_config.max_length = max_length


def decode_captions(tokenizer, ids: np.ndarray) -> list[str]:
    ids = np.where(ids < 0, tokenizer.pad_token_id, ids)
    return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
