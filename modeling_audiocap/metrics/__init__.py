"""audiocap's metrics as local `evaluate` modules (no Hub needed): `load_metric("genre_classification")`."""

from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).parent


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """Load one of the evaluate modules shipped in this folder by name."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        available = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"Unknown audiocap metric {name!r}; available: {', '.join(available)}")
    return evaluate.load(str(path), **kwargs)
