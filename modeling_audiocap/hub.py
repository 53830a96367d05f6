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


def render_genre_card(output_dir: Path, results: dict, repo_id: str) -> Path:
    """Write `README.md` for a genre run from its `results.json` content; Hub metadata includes a model-index."""
    dataset = results["dataset"]
    eval_results = [
        EvalResult(
            task_type="audio-classification",
            task_name="Genre classification",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=metric,
            metric_name=name,
            metric_value=round(results["test"][key], 4),
        )
        for metric, name, key in (("accuracy", "Accuracy", "accuracy"), ("f1", "Macro F1", "macro_f1"))
    ]
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag="audio-classification",
        tags=["audiocap", "music", "genre-classification", results["encoder_mode"]],
        base_model=results["encoder"] if not results["encoder"].startswith("audiocap/") and "/" in results["encoder"] else None,
        datasets=[dataset] if "/" in dataset and not Path(dataset).exists() else None,
        metrics=["accuracy", "f1"],
        eval_results=eval_results,
    )
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATES / "genre.md"), repo_id=repo_id, **{**results, "model_name": repo_id.split("/")[-1]}
    )
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path


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
