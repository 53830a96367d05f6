"""Model cards rendered from what a run actually did: its results, metrics, data and library versions."""

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    EvalResultEntry,
    ModelCard,
    ModelCardData,
    eval_result_entries_to_yaml,
)
from huggingface_hub.constants import EVAL_RESULTS_FOLDER

# setup.py installs the repository's top-level model_cards/ inside the package (modeling_audiocap/model_cards/): an
# installed wheel reads the templates there, a source checkout (editable install) reads the folder itself.
_PACKAGE = Path(__file__).resolve().parents[1]
TEMPLATES = _PACKAGE / "model_cards" if (_PACKAGE / "model_cards").is_dir() else _PACKAGE.parent / "model_cards"
TRACKED_PACKAGES = (
    "audiocap", "torch", "torchaudio", "torchcodec", "transformers", "tokenizers", "datasets", "accelerate", "peft",
    "evaluate", "huggingface_hub", "numpy",
)


def package_versions() -> dict[str, str]:
    """Python's and the installed versions of the libraries a result depends on."""
    found = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _hub_dataset(dataset: str) -> bool:
    """Whether a run's `dataset` names a Hub dataset (not a local folder or the built-in set)."""
    return "/" in dataset and not Path(dataset).exists()


def _card_data(results: dict, repo_id: str, pipeline_tag: str, task_name: str, tags: list[str], metrics) -> ModelCardData:
    """Hub metadata with a model-index built from the test split's `metrics` ((type, name, key) triples)."""
    dataset, encoder = results["dataset"], results["encoder"]
    eval_results = [
        EvalResult(
            task_type=pipeline_tag,
            task_name=task_name,
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=metric,
            metric_name=name,
            metric_value=round(results["test"][key], 4),
        )
        for metric, name, key in metrics
        if results["test"].get(key) is not None  # a score undefined on these clips is no result
    ]
    return ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=["audiocap", "music", *tags, results["encoder_mode"]],
        base_model=encoder if "/" in encoder and not encoder.startswith("audiocap/") and not Path(encoder).exists() else None,
        datasets=[dataset] if _hub_dataset(dataset) else None,
        metrics=[metric for metric, _, _ in metrics],
        eval_results=eval_results or None,
    )


def _render(template: str, card_data: ModelCardData, output_dir: Path, results: dict, repo_id: str) -> Path:
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATES / template), **{**results, "repo_id": repo_id, "model_name": repo_id.split("/")[-1]}
    )
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


def write_eval_results(output_dir: Path, results: dict, metric: tuple[str, str]) -> Path | None:
    """The test score in the Hub's evaluation-results form (`.eval_results/<dataset>.yaml`, shown on the model page
    and the benchmark's leaderboard) beside the card's model-index: one entry, the task's headline `metric`
    `(key in results["test"], its name)`, at the dataset commit the run used. Only for a Hub dataset (a local folder
    is no benchmark on the Hub); returns the file written, or None."""
    source = (results.get("sources") or {}).get("dataset") or {}
    dataset = results["dataset"]
    if "path" in source or not _hub_dataset(dataset):
        return None
    key, name = metric
    if results["test"].get(key) is None:
        return None
    entry = EvalResultEntry(
        dataset_id=dataset, task_id=source.get("config") or "default", value=round(results["test"][key], 4),
        dataset_revision=source.get("commit"),
        notes=f"{name} on the test split, split protocol {results['split_protocol']}, seed {results['seed']}",
    )
    path = Path(output_dir) / EVAL_RESULTS_FOLDER / f"{dataset.split('/')[-1]}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False))
    return path


# per problem type: task name, Hub tags, model-index metrics ((type, name, key) triples) and headline
CLIP_CARDS = {
    "single_label_classification": ("Genre classification", ["genre-classification"],
                                    (("accuracy", "Accuracy", "accuracy"), ("f1", "Macro F1", "macro_f1")),
                                    ("accuracy", "accuracy")),
    "multi_label_classification": ("Music tagging", ["music-tagging", "multi-label-classification"],
                                   (("roc_auc", "ROC-AUC (macro)", "roc_auc"), ("pr_auc", "PR-AUC (macro)", "pr_auc")),
                                   ("roc_auc", "ROC-AUC")),
    "regression": ("Music attribute regression", ["regression"],
                   (("r_squared", "R²", "r2"), ("mae", "MAE", "mae")), ("r2", "R²")),
}


def render_genre_card(output_dir: Path, results: dict, repo_id: str) -> Path:
    """Write `README.md` for a clip model's run (a genre or other classifier, a tagger or a regressor, by the run's
    `problem_type`) from its `results.json` content (Hub metadata includes a model-index), and its evaluation
    results (`write_eval_results`)."""
    problem_type = results.get("problem_type") or "single_label_classification"
    task_name, tags, metrics, headline = CLIP_CARDS[problem_type]
    card_data = _card_data(results, repo_id, "audio-classification", task_name, tags, metrics)
    write_eval_results(output_dir, results, headline)
    return _render("genre.md", card_data, output_dir, results | {"problem_type": problem_type}, repo_id)


def render_catalogue_card(output_dir: Path, config: dict, repo_id: str) -> Path:
    """Write `README.md` for an `audiocap-predict` dataset from its `predict_config.json` content: the models, their
    columns and windows, the counts, how to load it."""
    card_data = DatasetCardData(
        pretty_name=repo_id.split("/")[-1], tags=["audiocap", "music", "audio"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}],
    )
    values = {**config, "repo_id": repo_id, "name": repo_id.split("/")[-1], "versions": package_versions()}
    card = DatasetCard.from_template(card_data, template_path=str(TEMPLATES / "catalogue.md"), **values)
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


def render_caption_card(output_dir: Path, results: dict, repo_id: str) -> Path:
    """Write `README.md` for a captioning run from its `results.json` content, and its evaluation results."""
    metrics = (("cosine_similarity", "BERT similarity", "bert_similarity"), ("bleu", "BLEU-4", "bleu_4"),
               ("rouge", "ROUGE-L", "rouge_l"))
    card_data = _card_data(results, repo_id, "audio-text-to-text", "Music captioning", ["music-captioning"], metrics)
    write_eval_results(output_dir, results, ("bert_similarity", "BERT similarity"))
    return _render("caption.md", card_data, output_dir, results, repo_id)
