"""The package's layout: its flat modules are exactly the code a saved model carries, and the README's map of the
tree ("### Code layout") lists exactly what `ls` shows."""

import ast
import fnmatch
import re
from pathlib import Path


from conftest import caption_model, genre_model

import modeling_audiocap
from modeling_audiocap import AudioCapFeatureExtractor

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(modeling_audiocap.__file__).parent


def test_the_flat_modules_are_exactly_the_code_a_saved_model_carries(tmp_path):
    """The package's boundary: every flat module of modeling_audiocap/ is model code that a saved model carries (its
    remote code), and nothing else is flat; the toolkit (hub, hear, demo, stack, data, embedding, metrics, training)
    lives in subpackages, which no saved model carries."""
    flat = {path.name for path in PACKAGE.glob("*.py")} - {"__init__.py"}
    model, resolved = genre_model("wav2vec2")
    model.save_pretrained(tmp_path / "genre")
    AudioCapFeatureExtractor(feature_extractor=resolved.feature_extractor).save_pretrained(tmp_path / "genre")
    caption_model("wav2vec2")[0].save_pretrained(tmp_path / "caption")
    for folder in ("genre", "caption"):
        assert {path.name for path in (tmp_path / folder).glob("*.py")} == flat, folder


def readme_layout() -> tuple[list[str], list[str]]:
    """The names the README's code-layout block lists: at the top level, and (indented) inside the package."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("### Code layout", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    top, package = [], []
    for line in block.splitlines():
        (package if line.startswith("  ") else top).append(line.split()[0])
    return top, package


def listed(folder: Path) -> set[str]:
    """What `ls folder` shows of a checkout (directories with a trailing "/"): no hidden, ignored or cached entries."""
    ignored = [line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.strip()]
    return {
        path.name + "/" * path.is_dir()
        for path in folder.iterdir()
        if not path.name.startswith(".") and not any(fnmatch.fnmatch(path.name, pattern) for pattern in ignored)
    }


def test_the_readme_maps_the_tree_as_ls_shows_it():
    top, package = readme_layout()
    for names, folder in ((top, ROOT), (package, PACKAGE)):
        assert set(names) == listed(folder), folder
        assert names == sorted(names, key=lambda name: name.rstrip("/")), f"{folder}: in the order of `LC_ALL=C ls`"


def relative_imports(path: Path) -> set[str]:
    """The package modules a file imports relatively (`from .x import` -> "x", `from ..x.y import` -> "x")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            if node.module:
                names.add(node.module.split(".")[0])
            else:  # `from . import x`
                names.update(alias.name for alias in node.names)
    return names


def test_the_shipped_modules_import_one_way_and_never_the_toolkit():
    """The model code a saved model carries imports downward only: no circle among the flat modules (the encoder
    resolver never imports the models) and no import of a toolkit subpackage."""
    flat = {path.stem: relative_imports(path) for path in PACKAGE.glob("*.py") if path.name != "__init__.py"}
    for module, imports in flat.items():
        assert imports <= set(flat), f"{module}.py imports the toolkit: {sorted(imports - set(flat))}"
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join(path + (module,))}"
        if module not in done:
            for imported in flat[module]:
                visit(imported, path + (module,))
            done.add(module)

    for module in flat:
        visit(module, ())
