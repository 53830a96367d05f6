"""Caption attribute accuracy on the built-in music set: does a generated caption name the clip's genre, tempo, mode,
lead instrument and drums, and nothing else for each?"""

import re
from collections import Counter

import datasets
import evaluate

from modeling_audiocap.data.synthetic import ATTRIBUTE_PHRASES, CAPTION_ATTRIBUTES

_DESCRIPTION = """Per-attribute accuracy of captions of the built-in music set (`modeling_audiocap.data.synthetic`).
Each caption is read back with the phrase table `ATTRIBUTE_PHRASES` of the set's generator: the caption phrases
the generator writes for each attribute value plus short keywords ("organ", "piano", "timpani", "minor", ...).
Matching is on lowercased words (any character other than a letter or digit separates words, so "one-drop" and
"one drop" are the same), longest phrase first, and each matched span counts once, so "a rock backbeat" names the
backbeat drum pattern and not the genre rock. An attribute is right when the caption names the clip's value and no
other value of that attribute; naming none, or the right value and a wrong one, is wrong.

`chance_<attribute>` is the accuracy of always naming the value most common among the references (the majority-class
share), the score of a captioner that writes one caption for every clip, at best.

With `tempo_bpm` in the references, a caption that states a tempo ("... at 118 bpm") is also scored by its error in
bpm: `tempo_bpm_error` is the mean absolute error over the captions that state one (None when none does), and
`tempo_bpm_stated` the share of captions that state one."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): generated captions.
    references (`list[dict]`): each clip's attributes, the set's metadata columns `genre`, `tempo_class`, `mode`,
        `instrument` and `drums`, and optionally `tempo_bpm` (other keys, e.g. `caption`, are ignored).
Returns:
    genre_accuracy, tempo_accuracy, mode_accuracy, instrument_accuracy, drums_accuracy, mean_attribute_accuracy,
    chance_genre, chance_tempo, chance_mode, chance_instrument, chance_drums, chance_mean_attribute_accuracy
    (floats in [0, 1]); with `tempo_bpm` references also tempo_bpm_error (bpm, or None) and tempo_bpm_stated.
"""

# Metadata column -> the short name used in the result keys.
SHORT_NAMES = {"genre": "genre", "tempo_class": "tempo", "mode": "mode", "instrument": "instrument", "drums": "drums"}


STATED_BPM = re.compile(r"(\d+(?:\.\d+)?)\s*bpm", flags=re.IGNORECASE)


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[^\W_]+", text.lower()))


# (phrase as words, attribute, value), longest phrase first.
_PHRASES = sorted(
    {
        (_words(phrase), attr, value)
        for attr, values in ATTRIBUTE_PHRASES.items() for value, phrases in values.items() for phrase in phrases
    },
    key=lambda item: (-len(item[0]), item),
)


def caption_mentions(caption: str) -> dict[str, set[str]]:
    """The attribute values a caption names: {attribute column: set of values}."""
    words = _words(caption)
    used = [False] * len(words)
    found: dict[str, set[str]] = {attr: set() for attr in CAPTION_ATTRIBUTES}
    for phrase, attr, value in _PHRASES:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if words[i:i + n] == phrase and not any(used[i:i + n]):
                used[i:i + n] = [True] * n
                found[attr].add(value)
    return found


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CaptionAttributes(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": {**{attr: datasets.Value("string") for attr in CAPTION_ATTRIBUTES},
                               "tempo_bpm": datasets.Value("float64")},
            }),
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score `predictions` (captions) against `references` (attribute dicts)."""
        # Keep only the attribute columns: metadata rows carry more (caption, tempo_bpm, ...).
        if references is not None:
            missing = [attr for attr in CAPTION_ATTRIBUTES if references and attr not in references[0]]
            if missing:
                raise ValueError(f"caption_attributes references need the keys {CAPTION_ATTRIBUTES}; missing {missing}")
            references = [
                {**{attr: str(ref[attr]) for attr in CAPTION_ATTRIBUTES}, "tempo_bpm": ref.get("tempo_bpm")}
                for ref in references
            ]
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references):
        if not predictions:
            raise ValueError("caption_attributes needs at least one prediction")
        mentions = [caption_mentions(p) for p in predictions]
        scores: dict[str, float] = {}
        chances: dict[str, float] = {}
        for attr in CAPTION_ATTRIBUTES:
            name = SHORT_NAMES[attr]
            truth = [ref[attr] for ref in references]
            right = sum(m[attr] == {value} for m, value in zip(mentions, truth))
            scores[f"{name}_accuracy"] = right / len(truth)
            chances[f"chance_{name}"] = Counter(truth).most_common(1)[0][1] / len(truth)
        scores["mean_attribute_accuracy"] = sum(scores.values()) / len(CAPTION_ATTRIBUTES)
        chances["chance_mean_attribute_accuracy"] = sum(chances.values()) / len(CAPTION_ATTRIBUTES)
        return {**scores, **chances, **_tempo_errors(predictions, references)}


def _tempo_errors(predictions: list[str], references: list[dict]) -> dict:
    """Error in bpm of the captions that state a tempo, against the references' `tempo_bpm` (where given)."""
    pairs = [(STATED_BPM.search(p), ref.get("tempo_bpm")) for p, ref in zip(predictions, references)]
    pairs = [(match, bpm) for match, bpm in pairs if bpm is not None]
    if not pairs:
        return {}
    errors = [abs(float(match.group(1)) - bpm) for match, bpm in pairs if match]
    return {"tempo_bpm_error": sum(errors) / len(errors) if errors else None, "tempo_bpm_stated": len(errors) / len(pairs)}
