"""Fetch transformers' own common model tests, for the installed transformers version, into a cache folder.

`ModelTesterMixin` (`tests/test_modeling_common.py`) ships in transformers' source distribution, not in its wheel.
The sdist of the installed version is downloaded once with pip (`--no-binary :all:`), its `tests/` folder extracted
as the package `transformers_tests` under `<cache>/transformers-<version>/`, and the battery's test-only dependency
installed beside it (`<cache>/transformers-<version>/site`). Later runs find everything there and work offline.

The sdist does not ship two modules `test_modeling_common` imports: `tests/generation/test_utils.py`
(`GenerationTesterMixin`, the `generate()` battery) and `tests/exporters/test_export.py` (`ExportTesterMixin`, the
`torch.export` battery `ModelTesterMixin` derives from). Both are written here as empty mixins, so neither battery
runs: the generation and export tests are not part of this check (the captioner's `generate()` is covered by
`tests/test_modeling.py`).

Usage: `python tests/hf_common/fetch_battery.py [CACHE_DIR]` prints the folder to put on `sys.path`.
"""

import importlib.metadata
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "transformers_tests"
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "hf-common"
# The battery imports `parameterized`, which is no dependency of audiocap; installed into the cache, not the venv.
TEST_REQUIREMENTS = ("parameterized==0.9.0",)
MISSING_MODULES = {
    "generation/test_utils.py": (
        '"""Written by audiocap\'s fetch_battery.py: the sdist lacks this module; no generation tests run."""\n\n\n'
        "class GenerationTesterMixin:\n"
        '    """Empty: transformers\' generate() battery is not in its source distribution."""\n'
    ),
    "exporters/test_export.py": (
        '"""Written by audiocap\'s fetch_battery.py: the sdist lacks this module; no export tests run."""\n\n\n'
        "class ExportTesterMixin:\n"
        '    """Empty: transformers\' torch.export battery is not in its source distribution."""\n'
    ),
}


def battery_dir(cache: Path = DEFAULT_CACHE) -> Path:
    """The folder holding the installed transformers version's battery (`transformers_tests/`) and `site/`."""
    return cache / f"transformers-{importlib.metadata.version('transformers')}"


def fetch(cache: Path = DEFAULT_CACHE) -> Path:
    """Download and unpack the battery and install its dependency, each once; return `battery_dir(cache)`. Each part
    is built in a staging folder beside its place and moved there whole, so an interrupted run leaves no half of it."""
    root = battery_dir(cache)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / PACKAGE).exists():
        with tempfile.TemporaryDirectory(dir=root) as staging:
            unpack_tests(Path(staging)).rename(root / PACKAGE)
    if not (root / "site").exists():
        with tempfile.TemporaryDirectory(dir=root) as staging:
            site = Path(staging, "site")
            pip_install = [sys.executable, "-m", "pip", "-q", "install", "--no-deps", "--target", str(site)]
            subprocess.run([*pip_install, *TEST_REQUIREMENTS], check=True)
            site.rename(root / "site")
    return root


def unpack_tests(staging: Path) -> Path:
    """Download the installed transformers version's sdist into `staging` and unpack its `tests/` there as a package,
    with the two modules it lacks (`MISSING_MODULES`); return that package's folder."""
    version = importlib.metadata.version("transformers")
    pip_download = [sys.executable, "-m", "pip", "-q", "download", "--no-binary", ":all:", "--no-deps", "-d", staging]
    subprocess.run([*pip_download, f"transformers=={version}"], check=True)
    (archive,) = staging.glob("transformers-*.tar.gz")
    with tarfile.open(archive) as sdist:
        tests = [m for m in sdist.getmembers() if m.name.startswith(f"transformers-{version}/tests/")]
        if not any(m.name.endswith("/tests/test_modeling_common.py") for m in tests):
            raise FileNotFoundError(f"{archive.name} has no tests/test_modeling_common.py")
        sdist.extractall(staging, members=tests, filter="data")
    package = staging / f"transformers-{version}" / "tests"
    packages = {"__init__.py": "", "generation/__init__.py": "", "exporters/__init__.py": ""}
    for path, text in {**packages, **MISSING_MODULES}.items():
        (package / path).parent.mkdir(exist_ok=True)
        (package / path).write_text(text)
    return package

if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE))
