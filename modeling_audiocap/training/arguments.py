"""Argument dataclasses shared by the training scripts, and parsing from a YAML file plus command-line overrides."""

import sys
from dataclasses import asdict, dataclass, field

import torch
import yaml
from transformers import HfArgumentParser, TrainingArguments


@dataclass
class EncoderArguments:
    """Which encoder, and how it trains."""

    encoder_name_or_path: str = field(
        default="m-a-p/MERT-v1-95M",
        metadata={"help": "Hub id, local dir, or a short audiocap name (audiocap/melcnn, audiocap/samplecnn, ...)."},
    )
    encoder_config_overrides: str | None = field(
        default=None,
        metadata={"help": "Short names only: a YAML/JSON mapping of config fields, e.g. '{n_fft: 2048, n_mels: 96}'."},
    )
    model_revision: str = field(
        default="main", metadata={"help": "The encoder's Hub revision: a branch, a tag or a commit (a commit pins it)."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where models from the Hub are cached (default: the Hub's own cache)."}
    )
    token: str | None = field(
        default=None,
        metadata={"help": "Hub token for private or gated models (default: the one `hf auth login` saved); never "
                  "written to a run's results."},
    )
    encoder_mode: str = field(default="frozen", metadata={"help": "frozen | unfrozen | lora"})
    encoder_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the encoder (unfrozen / lora); defaults to --learning_rate."}
    )
    freeze_feature_encoder: bool = field(
        default=False, metadata={"help": "Unfrozen mode: keep the convolutional feature encoder fixed."}
    )
    use_layer_weighting: bool = field(default=True, metadata={"help": "Learn a weighting of all encoder layers."})
    clap_output: str = field(default="projected", metadata={"help": "CLAP encoders: projected | last_hidden_state"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})

    def __post_init__(self):
        if self.encoder_mode not in ("frozen", "unfrozen", "lora"):
            raise ValueError(f"--encoder_mode must be frozen, unfrozen or lora, got {self.encoder_mode!r}")

    def config_overrides(self) -> dict | None:
        return parse_config_overrides(self.encoder_config_overrides)

    def hub_kwargs(self, revision: str | None = None) -> dict:
        """`from_pretrained`'s Hub arguments: the encoder's revision (or `revision`, another model's), the cache and
        the token."""
        kwargs = {"revision": revision or self.model_revision, "cache_dir": self.cache_dir, "token": self.token}
        return {name: value for name, value in kwargs.items() if value is not None}


def public_settings(args) -> dict:
    """An argument dataclass as a run's results record it: every field, a token replaced by `<TOKEN>`."""
    return {name: "<TOKEN>" if name.endswith("token") and value else value for name, value in asdict(args).items()}


def parse_config_overrides(text: str | None) -> dict | None:
    """`--encoder_config_overrides` (a YAML/JSON mapping) as a dict; None when not given."""
    if not text:
        return None
    overrides = yaml.safe_load(text)
    if not isinstance(overrides, dict):
        raise ValueError(f"--encoder_config_overrides must be a mapping, got {text!r}")
    return overrides


@dataclass
class GenreArguments:
    """The head and what it predicts."""

    label_column_name: str | None = field(
        default=None,
        metadata={"help": "Column(s) holding the targets, comma-separated (default: label; on the built-in set genre). "
                          "One column of classes: a classifier; a tag list, several 0/1 or categorical columns: a "
                          "tagger; number columns: a regressor. Built-in set: genre, mode, instrument, drums, "
                          "tempo_class (classes), tempo_bpm (a number)."},
    )
    problem_type: str | None = field(
        default=None,
        metadata={"help": "single_label_classification | multi_label_classification | regression (default: what "
                          "the label column holds; a delimited tag string such as 'rock|guitar' needs "
                          "multi_label_classification)."},
    )
    pooling: str = field(default="mean", metadata={"help": "mean | attention"})
    head_hidden_size: int = field(default=512, metadata={"help": "Hidden units of the MLP head; 0: a linear probe."})
    head_dropout: float = field(default=0.2, metadata={"help": "Dropout in the head."})
    early_stopping_patience: int | None = field(default=None, metadata={"help": "Epochs without improvement."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Start afresh instead of resuming from the last checkpoint in output_dir."}
    )
    probe_layers: str | None = field(
        default=None, metadata={"help": "Frozen mode: 'all' or '0,4,8' trains a probe per layer instead of the head."}
    )
    seeds: str | None = field(default=None, metadata={"help": "Probe sweep: comma-separated seeds (e.g. 0,1,2)."})


@dataclass
class AudioDataArguments:
    """Where the audio comes from and how it is cut."""

    dataset_name: str = field(
        default="builtin", metadata={"help": "Hub id, local folder, or 'builtin' (the built-in music set)."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    dataset_revision: str | None = field(
        default=None,
        metadata={"help": "Hub dataset revision (branch, tag, commit); 'refs/convert/parquet' for a script dataset."},
    )
    audio_column_name: str = field(default="audio", metadata={"help": "Column holding the audio."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep this many training clips (a seeded shuffle, after splitting)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep this many validation and test clips each (after splitting)."}
    )
    split_protocol: str = field(default="predefined", metadata={"help": "predefined | random | filtered (GTZAN)."})
    validation_fraction: float | None = field(
        default=None,
        metadata={
            "help": "0: no validation split (its clips train; the last epoch is kept and evaluated on test, as the "
            "reference's 800 / 200 GTZAN split). Default: the split protocol's own validation split."
        },
    )
    max_length_seconds: float = field(default=10.0, metadata={"help": "Window length for training and inference."})
    window_overlap: float = field(
        default=0.0,
        metadata={
            "help": "Overlap of consecutive windows cut from a clip, a fraction in [0, 1) (music2vec's 20 segments of "
            "a 30 s track: 0.52 for 3 s windows)."
        },
    )
    builtin_dir: str = field(default="runs/data/music-set", metadata={"help": "Where the built-in set is written."})
    builtin_clips_per_genre: int = field(default=40, metadata={"help": "Built-in set: clips per genre."})
    builtin_seconds: float = field(default=4.0, metadata={"help": "Built-in set: clip length."})
    embedding_cache_dir: str = field(
        default="runs/cache/embeddings", metadata={"help": "Frozen mode: where layer-wise embeddings are cached."}
    )
    decoded_cache_dir: str | None = field(
        default="runs/cache/decoded", metadata={"help": "Where decoded, resampled audio is kept for later runs."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})

    def __post_init__(self):
        if not 0.0 <= self.window_overlap < 1.0:
            raise ValueError(f"--window_overlap must be in [0, 1), got {self.window_overlap}")
        if self.validation_fraction not in (None, 0):
            raise ValueError(
                f"--validation_fraction takes 0 (no validation split), got {self.validation_fraction}; the size of a "
                "validation split is the split protocol's (random: 10 % of the set)"
            )
        for flag in ("max_train_samples", "max_eval_samples"):
            if getattr(self, flag) is not None and getattr(self, flag) < 1:
                raise ValueError(f"--{flag} must be at least 1, got {getattr(self, flag)}")

    @property
    def hop_seconds(self) -> float | None:
        """Hop between evaluation windows from `--window_overlap` (`None`: back to back). The processor built from
        it owns the windows in samples, for training, evaluation and serving alike."""
        return None if self.window_overlap == 0 else self.max_length_seconds * (1.0 - self.window_overlap)


def parse_with_config(dataclass_types: tuple, argv: list[str] | None = None) -> tuple:
    """Parse dataclasses from `--config run.yaml` (optional) and the command line; the command line wins."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_args: list[str] = []
    if "--config" in argv:
        at = argv.index("--config")
        path = argv[at + 1]
        del argv[at : at + 2]
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
        for key, value in values.items():
            if isinstance(value, list):
                config_args += [f"--{key}", *map(str, value)]
            else:
                config_args += [f"--{key}", str(value)]
    parser = HfArgumentParser(dataclass_types)
    parsed = parser.parse_args_into_dataclasses(args=config_args + argv, look_for_args_file=False)
    for args in parsed:
        if isinstance(args, TrainingArguments) and not torch.accelerator.is_available():
            args.dataloader_pin_memory = False  # nothing to pin for: torch would warn at every epoch's loader
    return parsed
