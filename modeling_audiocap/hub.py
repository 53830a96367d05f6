"""Model cards rendered from what a run actually did, and publishing to the Hub."""

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "model_cards"
TRACKED_PACKAGES = ("audiocap", "torch", "torchaudio", "transformers", "datasets", "accelerate", "peft", "evaluate")


def package_versions() -> dict[str, str]:
    """Installed versions of the libraries a result depends on."""
    found = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


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
    ]
    return ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=["audiocap", "music", *tags, results["encoder_mode"]],
        base_model=encoder if "/" in encoder and not encoder.startswith("audiocap/") and not Path(encoder).exists() else None,
        datasets=[dataset] if "/" in dataset and not Path(dataset).exists() else None,
        metrics=[metric for metric, _, _ in metrics],
        eval_results=eval_results,
    )


def _render(template: str, card_data: ModelCardData, output_dir: Path, results: dict, repo_id: str) -> Path:
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATES / template), **{**results, "repo_id": repo_id, "model_name": repo_id.split("/")[-1]}
    )
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


def render_genre_card(output_dir: Path, results: dict, repo_id: str) -> Path:
    """Write `README.md` for a genre run from its `results.json` content; Hub metadata includes a model-index."""
    metrics = (("accuracy", "Accuracy", "accuracy"), ("f1", "Macro F1", "macro_f1"))
    card_data = _card_data(results, repo_id, "audio-classification", "Genre classification", ["genre-classification"], metrics)
    return _render("genre.md", card_data, output_dir, results, repo_id)


def render_caption_card(output_dir: Path, results: dict, repo_id: str) -> Path:
    """Write `README.md` for a captioning run from its `results.json` content."""
    metrics = (("cosine_similarity", "BERT similarity", "bert_similarity"), ("bleu", "BLEU-4", "bleu_4"),
               ("rouge", "ROUGE-L", "rouge_l"))
    card_data = _card_data(results, repo_id, "audio-text-to-text", "Music captioning", ["music-captioning"], metrics)
    return _render("caption.md", card_data, output_dir, results, repo_id)


def push_folder(output_dir: Path, repo_id: str, commit_message: str) -> bool:
    """Upload `output_dir` to `repo_id`; on failure log what to do and return False (the local result stays)."""
    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=str(output_dir), repo_id=repo_id, commit_message=commit_message,
                          ignore_patterns=["checkpoint-*", "checkpoint-*/**"])
    except Exception as err:  # network, auth, permissions: report and keep the local result
        logger.error(
            "Could not push %s to the Hub (%s: %s). The trained model is saved in %s. To publish it, log in "
            "(`hf auth login` or set HF_TOKEN) on a machine with network access and run "
            "`hf upload %s %s`.",
            output_dir, type(err).__name__, err, output_dir, repo_id, output_dir,
        )
        return False
    logger.info("Pushed %s to https://huggingface.co/%s", output_dir, repo_id)
    return True
