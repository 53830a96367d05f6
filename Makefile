# The README's two commands: `make demo` (the main job, offline, on the built-in music set) and `make test`.
# Both create .venv and install what is missing first, through constraints.txt (the exact stack the suite last passed
# on); `make test-latest` tries the newest versions setup.py's ranges allow, in a venv of its own.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.audiocap-installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo demo-contrastive demo-tags test test-latest test-hf-common bench ffmpeg install
LATEST_VENV ?= .venv-latest

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

ffmpeg:
	@command -v ffmpeg >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing FFmpeg (apt-get) for audio decoding..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; \
	  else \
	    echo "FFmpeg is missing: audiocap decodes audio through torchcodec, which needs it."; \
	    echo "Install it with your package manager, e.g. 'sudo apt-get install ffmpeg' or 'conda install ffmpeg'."; \
	    exit 1; \
	  fi; }

demo: $(STAMP) ffmpeg
	$(PY) train_genre.py --config configs/demo.yaml
	$(PY) train_caption.py --config configs/demo-caption.yaml
	$(PY) -m modeling_audiocap.demo --model_dir runs/demo-genre --caption_model_dir runs/demo-caption \
	  --data_dir runs/data/music-set

# Beyond one label per clip: a tagger (genre, instrument, drums and mode as 20 tags) and a tempo regressor, trained
# from scratch on the built-in set, then served on held-out clips (a few minutes each on CPU).
demo-tags: $(STAMP) ffmpeg
	$(PY) train_genre.py --config configs/demo-tags.yaml
	$(PY) train_genre.py --config configs/demo-tempo.yaml
	$(PY) -m modeling_audiocap.demo.tasks --tagger_dir runs/demo-tags --regressor_dir runs/demo-tempo \
	  --data_dir runs/data/music-set

# CLMR-style contrastive pre-training on the built-in set, then a linear probe against random init (~4 min on CPU).
demo-contrastive: $(STAMP) ffmpeg
	$(PY) train_contrastive.py --config configs/demo-contrastive.yaml

test: $(STAMP) ffmpeg
	$(PY) -m pytest -q tests

# The newest stack setup.py's ranges allow, from scratch, through the fast tests; its versions are written to
# $(LATEST_VENV)/constraints.txt, ready to replace constraints.txt when it passes.
test-latest: ffmpeg
	rm -rf $(LATEST_VENV) && python3 -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]"
	@{ head -n 3 constraints.txt; $(LATEST_VENV)/bin/python -m pip freeze --exclude-editable | grep -v '^audiocap'; } \
	  > $(LATEST_VENV)/constraints.txt
	@grep -E '^(torch|torchaudio|torchcodec|transformers|datasets)==' $(LATEST_VENV)/constraints.txt
	$(LATEST_VENV)/bin/python -m pytest -q -m "not slow" tests

# transformers' own common model tests (ModelTesterMixin) against both models, with tiny configs, for the installed
# transformers: its source distribution is fetched once into .cache/hf-common (pip download; offline afterwards, never
# copied into the repository). Its generate() and torch.export batteries are not in the sdist and do not run. Every
# skip prints its reason (-rs). Not part of `make test`.
test-hf-common: $(STAMP)
	$(PY) tests/hf_common/fetch_battery.py
	$(PY) -m pytest -q -rs -p no:cacheprovider -W ignore::pytest.PytestUnknownMarkWarning \
	  tests/hf_common/audiocap_common.py

bench: $(STAMP) ffmpeg
	$(PY) -m bench.run_all
