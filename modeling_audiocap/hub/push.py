"""Publishing a finished run to the Hub: once, at the end, without checkpoints or the token."""

import logging
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import HfApi

if TYPE_CHECKING:
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

# Never published: checkpoints (resumable training state: optimizer, RNG, the pickled `training_args.bin`),
# TensorBoard event files, and a catalogue run's work folder (plan, claims, shard markers). Patterns are fnmatch'ed against paths relative to the run directory ("*" spans "/").
NEVER_PUSHED = ("checkpoint-*", "runs/*", "training_args.bin", "*/training_args.bin", ".audiocap-*")


@dataclass
class HubSettings:
    """How a run is published: `private` (None: the owner's default; ignored for an existing repo), `revision` (a
    branch, created from `main` if missing; None: `main`) and `token` (None: the login or `HF_TOKEN`). The token is
    kept in memory only and left out of the repr."""

    private: bool | None = None
    revision: str | None = None
    token: str | None = field(default=None, repr=False)


def take_hub_settings(training_args: "TrainingArguments") -> HubSettings | None:
    """Take publishing out of `training_args` before a Trainer sees them; returns the settings for `push_folder`,
    or None without `--push_to_hub`.

    The Trainer never pushes (the finished run is pushed once, by `push_folder`), and `hub_token` is cleared so that
    no checkpoint's pickled `training_args.bin` carries it.
    """
    token, training_args.hub_token = training_args.hub_token, None
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    if not push_to_hub:
        return None
    strategy = getattr(training_args.hub_strategy, "value", training_args.hub_strategy)
    if strategy in ("checkpoint", "all_checkpoints"):
        logger.warning("--hub_strategy %s: audiocap pushes the finished run once, at the end; checkpoints stay local.",
                       strategy)
    return HubSettings(private=training_args.hub_private_repo, revision=training_args.hub_revision, token=token)


def push_command(output_dir: Path, repo_id: str, settings: HubSettings) -> str:
    """The `audiocap-push` command line that uploads what `push_folder` would (never the token)."""
    command = ["audiocap-push", str(output_dir), "--hub_model_id", repo_id]
    if settings.private:
        command.append("--private")
    if settings.revision:
        command += ["--revision", settings.revision]
    return shlex.join(command)


def push_folder(output_dir: Path, repo_id: str, commit_message: str, settings: HubSettings | None = None,
                repo_type: str = "model") -> bool:
    """Upload the finished run in `output_dir` to `repo_id` (model, processor, code, card, plots, results.json; or,
    for `repo_type="dataset"`, a catalogue run's dataset; never `NEVER_PUSHED`); on failure log what to do and return
    False (the local result stays)."""
    settings = settings or HubSettings()
    revision = settings.revision if settings.revision not in (None, "main") else None
    try:
        api = HfApi(token=settings.token)
        api.create_repo(repo_id, private=settings.private, exist_ok=True, repo_type=repo_type)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type=repo_type)
        # A fresh list: upload_folder extends ignore_patterns in place.
        api.upload_folder(folder_path=str(output_dir), repo_id=repo_id, revision=revision, repo_type=repo_type,
                          commit_message=commit_message, ignore_patterns=list(NEVER_PUSHED))
    except Exception as err:  # network, auth, permissions: report and keep the local result
        logger.error(
            "Could not push %s to the Hub (%s: %s). The trained model is saved in %s. To publish it, log in "
            "(`hf auth login` or set HF_TOKEN) on a machine with network access and run `%s` "
            "(it uploads the model, never the checkpoints).",
            output_dir, type(err).__name__, err, output_dir, push_command(output_dir, repo_id, settings),
        )
        return False
    where = f"https://huggingface.co/{repo_id}" + (f"/tree/{revision}" if revision else "")
    logger.info("Pushed %s to %s", output_dir, where)
    return True
