"""The torch / torchaudio / torchcodec trio: checked when `modeling_audiocap` is imported, explained in one line.

torchaudio and torchcodec ship C++ parts built against one torch release; beside another torch they fail to load
with a linker error from deep inside whatever imported them first (transformers imports torchaudio whenever it is
installed). `check_stack()` runs before that happens and raises `IncompatibleStackError` naming the versions found,
the combination the suite passes on (`TESTED_STACK`, the same as the repository's constraints.txt) and the command
that installs it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from packaging.specifiers import SpecifierSet
from packaging.version import Version

# The stack the test suite last passed on (constraints.txt pins the same versions; a test keeps the two equal).
TESTED_STACK = {"python": "3.11", "torch": "2.15.0", "torchaudio": "2.11.1", "torchcodec": "0.17.0", "ffmpeg": "5.1"}
TRIO = ("torch", "torchaudio", "torchcodec")


@dataclass(frozen=True)
class KnownBreak:
    """A release of `package` that does not load beside the torch releases in `torch`."""

    package: str
    versions: str
    torch: str
    reason: str


# Measured: each combination imported and decoded a file in a fresh venv (see the README's "Tested stack").
KNOWN_BREAKS = (
    KnownBreak("torchaudio", "==2.11.1", "<2.13", "torchaudio 2.11.1 needs torch 2.13 or newer (undefined symbol)"),
    KnownBreak("torchaudio", "==2.11.0", ">=2.15", "torchaudio 2.11.0 is built for another CUDA than torch 2.15 and "
               "refuses to load beside it; torchaudio 2.11.1 loads"),
)


class IncompatibleStackError(ImportError):
    """torch, torchaudio and torchcodec are installed in versions that do not load together."""


def installed_versions() -> dict[str, str | None]:
    """The installed versions of the trio, read from package metadata (nothing is imported); None if absent."""
    found: dict[str, str | None] = {}
    for name in TRIO:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def fix_command() -> str:
    pins = " ".join(f'"{name}=={TESTED_STACK[name]}"' for name in TRIO)
    return f"pip install {pins} (in a clone of audiocap: make install, which installs through constraints.txt)"


def mismatch_message(found: dict[str, str | None], reason: str) -> str:
    """One line: what was found, why it fails, what works, how to get it."""
    have = ", ".join(f"{name} {found.get(name) or 'missing'}" for name in TRIO)
    tested = ", ".join(f"{name} {TESTED_STACK[name]}" for name in TRIO)
    return (
        f"audiocap: {have} do not work together ({reason}). Tested together: {tested} on Python "
        f"{TESTED_STACK['python']}. Fix: {fix_command()}"
    )


def known_break(found: dict[str, str | None]) -> str | None:
    """The reason a known-broken combination fails, or None."""
    if found.get("torch") is None:
        return None
    torch_version = Version(found["torch"]).public
    for rule in KNOWN_BREAKS:
        have = found.get(rule.package)
        if have is not None and Version(have) in SpecifierSet(rule.versions) and Version(torch_version) in SpecifierSet(rule.torch):
            return rule.reason
    return None


def _load_torchaudio() -> None:
    importlib.import_module("torchaudio")


def _loader_reason(error: BaseException) -> str:
    """The innermost linker message ("undefined symbol: ...", "libc10_cuda.so: cannot open ...")."""
    while error.__cause__ is not None:
        error = error.__cause__
    return " ".join(str(error).split())


def check_stack() -> None:
    """Raise `IncompatibleStackError` when torch, torchaudio and torchcodec cannot work together.

    Known-broken combinations are refused from their versions alone; otherwise torchaudio is imported (as
    transformers would) and a failure to load its C++ library is reported with the loader's reason. torchcodec is
    loaded only when audio is first decoded, since it also needs FFmpeg.
    """
    found = installed_versions()
    if found["torch"] is None:
        raise IncompatibleStackError(mismatch_message(found, "torch is not installed"))
    reason = known_break(found)
    if reason is None and found["torchaudio"] is not None:
        try:
            _load_torchaudio()
        except (OSError, ImportError, RuntimeError) as error:
            reason = f"torchaudio's C++ library does not load: {_loader_reason(error)}"
    if reason is not None:
        raise IncompatibleStackError(mismatch_message(found, reason))
