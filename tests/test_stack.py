"""The torch / torchaudio / torchcodec check that runs when the package is imported."""

import re
from pathlib import Path

import pytest

from modeling_audiocap import stack

ROOT = Path(__file__).resolve().parents[1]


def _found(monkeypatch, **versions):
    monkeypatch.setattr(stack, "installed_versions", lambda: {"torchcodec": "0.17.0", **versions})


def test_known_broken_combination_is_refused_before_any_import(monkeypatch):
    _found(monkeypatch, torch="2.11.0", torchaudio="2.11.1")
    monkeypatch.setattr(stack, "_load_torchaudio", lambda: pytest.fail("a known break must not import torchaudio"))
    with pytest.raises(stack.IncompatibleStackError) as info:
        stack.check_stack()
    message = str(info.value)
    assert "\n" not in message
    assert "torch 2.11.0, torchaudio 2.11.1, torchcodec 0.17.0 do not work together" in message
    assert "torchaudio 2.11.1 needs torch 2.13 or newer" in message
    tested = stack.TESTED_STACK
    assert f'pip install "torch=={tested["torch"]}" "torchaudio=={tested["torchaudio"]}"' in message


def test_torch_2_15_beside_the_torchaudio_of_older_torch_is_refused(monkeypatch):
    _found(monkeypatch, torch="2.15.0+cu132", torchaudio="2.11.0")
    monkeypatch.setattr(stack, "_load_torchaudio", lambda: pytest.fail("a known break must not import torchaudio"))
    with pytest.raises(stack.IncompatibleStackError, match="torchaudio 2.11.1 loads"):
        stack.check_stack()


def test_cuda_local_version_of_a_working_torch_passes(monkeypatch):
    _found(monkeypatch, torch="2.13.0+cu130", torchaudio="2.11.1")
    monkeypatch.setattr(stack, "_load_torchaudio", lambda: None)
    stack.check_stack()


def test_linker_failure_is_explained_with_the_loaders_reason(monkeypatch):
    _found(monkeypatch, torch="2.13.0+cpu", torchaudio="2.11.0")

    def fail():
        try:
            raise OSError("libc10_cuda.so: cannot open shared object file: No such file or directory")
        except OSError as cause:
            raise OSError("Could not load this library: .../torchaudio/lib/_torchaudio.abi3.so") from cause

    monkeypatch.setattr(stack, "_load_torchaudio", fail)
    with pytest.raises(stack.IncompatibleStackError, match="torch 2.13.0\\+cpu, torchaudio 2.11.0") as info:
        stack.check_stack()
    assert "libc10_cuda.so: cannot open shared object file" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_missing_torch_is_named(monkeypatch):
    _found(monkeypatch, torch=None, torchaudio=None)
    with pytest.raises(stack.IncompatibleStackError, match="torch missing, torchaudio missing"):
        stack.check_stack()


def test_the_installed_stack_passes():
    stack.check_stack()


def test_tested_stack_matches_constraints_and_setup_ranges():
    """constraints.txt pins exactly TESTED_STACK, and setup.py's ranges admit it."""
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), flags=re.M))
    for name in stack.TRIO:
        assert pins[name] == stack.TESTED_STACK[name]
    from packaging.requirements import Requirement
    from packaging.version import Version

    setup_text = (ROOT / "setup.py").read_text()
    for name in stack.TRIO:
        spec = re.search(rf'"({name}[<>=!~][^"]*)"', setup_text).group(1)
        assert Version(stack.TESTED_STACK[name]) in Requirement(spec).specifier, spec
        assert stack.known_break({"torch": stack.TESTED_STACK["torch"], name: stack.TESTED_STACK[name]}) is None
