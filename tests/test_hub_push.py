"""Publishing a run: what reaches huggingface_hub (HfApi methods recorded, nothing sent), `audiocap-push`, and a real
training run whose output_dir holds the `--hub_token` nowhere."""

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.utils import filter_repo_objects
from transformers import TrainingArguments

from modeling_audiocap.hub import HubSettings, push_folder, take_hub_settings
from modeling_audiocap.hub.cli import main as push_main

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_SECRETtest123"
PUBLISHED = {"config.json", "model.safetensors", "modeling_audiocap.py", "preprocessor_config.json", "README.md",
             "results.json", "confusion_matrix.png"}
TRAINING_STATE = {"training_args.bin", "checkpoint-4/model.safetensors", "checkpoint-4/optimizer.pt",
                  "checkpoint-4/training_args.bin", "checkpoint-4/trainer_state.json",
                  "runs/May01_12-00-00/events.out.tfevents.1.host"}


@pytest.fixture
def run_dir(tmp_path):
    """A finished run as the train scripts leave it: the model repo files beside checkpoints and logs."""
    path = tmp_path / "run-genre"
    for name in PUBLISHED | TRAINING_STATE:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(b"{}" if name.endswith(".json") else b"data")
    return path


@pytest.fixture
def hub_calls(monkeypatch):
    """Replaces the HfApi methods push_folder uses; records (method, token of the HfApi, arguments)."""
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", self.token, {"repo_id": repo_id, **kwargs}))

    def create_branch(self, repo_id, **kwargs):
        calls.append(("create_branch", self.token, {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        # The files huggingface_hub would upload: its own filter over the folder, with the patterns it was given.
        folder = Path(kwargs["folder_path"])
        files = [p.relative_to(folder).as_posix() for p in folder.glob("**/*") if p.is_file()]
        uploaded = set(filter_repo_objects(files, allow_patterns=kwargs.get("allow_patterns"),
                                           ignore_patterns=kwargs.get("ignore_patterns")))
        calls.append(("upload_folder", self.token, {**kwargs, "uploaded": uploaded}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


def test_push_creates_a_private_repo_and_uploads_the_model_to_the_branch(run_dir, hub_calls):
    settings = HubSettings(private=True, revision="experiment", token=TOKEN)
    assert push_folder(run_dir, "someone/audiocap-genre", "audiocap genre model: test accuracy 0.9000", settings)
    assert [name for name, _, _ in hub_calls] == ["create_repo", "create_branch", "upload_folder"]
    assert all(token == TOKEN for _, token, _ in hub_calls)
    repo, branch, upload = (kwargs for _, _, kwargs in hub_calls)
    assert repo["repo_id"] == "someone/audiocap-genre" and repo["private"] is True and repo["exist_ok"]
    assert branch == {"repo_id": "someone/audiocap-genre", "branch": "experiment", "exist_ok": True, "repo_type": "model"}
    assert upload["repo_id"] == "someone/audiocap-genre" and upload["revision"] == "experiment"
    assert upload["commit_message"] == "audiocap genre model: test accuracy 0.9000"
    assert upload["uploaded"] == PUBLISHED  # never checkpoint-*, runs/ or training_args.bin
    assert TOKEN not in repr(settings)


def test_push_defaults_leave_visibility_branch_and_token_to_the_hub(run_dir, hub_calls):
    assert push_folder(run_dir, "someone/audiocap-genre", "message")
    assert [name for name, _, _ in hub_calls] == ["create_repo", "upload_folder"]  # main: no branch to create
    (_, token, repo), (_, _, upload) = hub_calls
    assert token is None and repo["private"] is None and upload["revision"] is None
    assert upload["uploaded"] == PUBLISHED


def test_failed_push_suggests_audiocap_push_without_the_token(run_dir, monkeypatch, caplog):
    def offline(self, repo_id, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    settings = HubSettings(private=True, revision="experiment", token=TOKEN)
    with caplog.at_level(logging.ERROR, logger="modeling_audiocap.hub.push"):
        assert not push_folder(run_dir, "someone/audiocap-genre", "message", settings)
    assert f"audiocap-push {run_dir} --hub_model_id someone/audiocap-genre --private --revision experiment" in caplog.text
    assert "hf upload" not in caplog.text and TOKEN not in caplog.text


def test_take_hub_settings_keeps_the_token_out_of_the_saved_training_arguments(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), push_to_hub=True, hub_token=TOKEN, hub_private_repo=True,
                             hub_revision="experiment", hub_model_id="someone/audiocap-genre", report_to="none")
    settings = take_hub_settings(args)
    assert settings == HubSettings(private=True, revision="experiment", token=TOKEN)
    assert args.hub_token is None and not args.push_to_hub  # the Trainer neither pushes nor pickles the token
    assert TOKEN.encode() not in pickle.dumps(args)
    without_push = TrainingArguments(output_dir=str(tmp_path), hub_token=TOKEN, report_to="none")
    assert take_hub_settings(without_push) is None and without_push.hub_token is None


def test_audiocap_push_main_pushes_what_push_folder_would(run_dir, hub_calls):
    argv = [str(run_dir), "--hub_model_id", "someone/audiocap-genre", "--private", "--revision", "v1",
            "--token", TOKEN, "--commit_message", "first release"]
    assert push_main(argv) == 0
    (_, token, repo), (_, _, branch), (_, _, upload) = hub_calls
    assert token == TOKEN and repo["private"] is True and branch["branch"] == "v1"
    assert upload["revision"] == "v1" and upload["commit_message"] == "first release"
    assert upload["uploaded"] == PUBLISHED


def test_audiocap_push_refuses_a_folder_that_is_not_a_run(tmp_path, hub_calls, capsys):
    with pytest.raises(SystemExit) as exit_info:
        push_main([str(tmp_path), "--hub_model_id", "someone/audiocap-genre"])
    assert exit_info.value.code == 2 and "config.json" in capsys.readouterr().err and not hub_calls


@pytest.mark.slow
def test_training_run_writes_the_hub_token_nowhere(tmp_path, encoder_dir):
    out = tmp_path / "run"
    args = [
        sys.executable, str(ROOT / "train_genre.py"),
        "--encoder_name_or_path", str(encoder_dir), "--encoder_mode", "frozen",
        "--dataset_name", "builtin", "--builtin_dir", str(tmp_path / "set"),
        "--builtin_clips_per_genre", "6", "--builtin_seconds", "1.5", "--max_length_seconds", "1.0",
        "--embedding_cache_dir", str(tmp_path / "cache"), "--head_hidden_size", "16",
        "--output_dir", str(out), "--num_train_epochs", "2", "--learning_rate", "1e-3",
        "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
        "--eval_strategy", "epoch", "--save_strategy", "epoch", "--logging_strategy", "epoch", "--report_to", "none",
        "--seed", "1", "--push_to_hub", "true", "--hub_model_id", "someone/audiocap-test", "--hub_token", TOKEN,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the push fails: the local result must stay and hold no token
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Could not push" in proc.stderr and f"audiocap-push {out} --hub_model_id someone/audiocap-test" in proc.stderr
    assert list(out.glob("checkpoint-*/training_args.bin")), "checkpoints keep their pickled TrainingArguments"
    files = [path for path in out.rglob("*") if path.is_file()]
    assert {"results.json", "README.md", "model.safetensors"} <= {path.name for path in files}
    holding = [str(path.relative_to(out)) for path in files if TOKEN.encode() in path.read_bytes()]
    assert holding == [], f"the Hub token was written to {holding}"
    assert TOKEN not in proc.stdout and TOKEN not in proc.stderr


def test_a_hub_dataset_run_publishes_its_score_in_the_hubs_evaluation_results_form(run_dir, hub_calls):
    import yaml

    from modeling_audiocap.hub.cards import write_eval_results

    results = {"dataset": "acme/gtzan", "split_protocol": "filtered", "seed": 3, "test": {"accuracy": 0.812345},
               "sources": {"dataset": {"name": "acme/gtzan", "config": None, "commit": "a" * 40}}}
    path = write_eval_results(run_dir, results, ("accuracy", "accuracy"))
    (entry,) = yaml.safe_load(path.read_text())
    assert entry["dataset"] == {"id": "acme/gtzan", "task_id": "default", "revision": "a" * 40}
    assert entry["value"] == 0.8123 and "filtered" in entry["notes"]
    push_folder(run_dir, "me/genre", "msg")
    assert ".eval_results/gtzan.yaml" in hub_calls[-1][2]["uploaded"]
    local = {**results, "dataset": "runs/data/music-set", "sources": {"dataset": {"path": "/data/music-set"}}}
    assert write_eval_results(run_dir / "local", local, ("accuracy", "accuracy")) is None  # no benchmark on the Hub
