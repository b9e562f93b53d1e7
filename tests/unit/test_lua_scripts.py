"""The Redis scripts: each ``.lua`` file states its contract at the top, and every
script the code loads is there, in the package, where a wheel carries it."""

from __future__ import annotations

import ast
import re
from itertools import takewhile
from pathlib import Path

import pytest

import delivery
from delivery import leases
from delivery.sessions import trials

PACKAGE = Path(delivery.__file__).parent
SCRIPTS = sorted(PACKAGE.rglob("*.lua"))
# A prelude is prepended to the scripts of its folder; it states their KEYS, and
# returns nothing of its own.
PRELUDES = {PACKAGE / "ratelimit" / "lua" / "line.lua"}
INDEXED = re.compile(r"\b(KEYS|ARGV)\[(\d+)\]")
SHARED_KEYS = re.compile(r"^-- KEYS: as (\w+\.lua)\.$", re.MULTILINE)


def header(script: Path) -> str:
    """The comment block a script starts with."""
    lines = script.read_text("utf-8").splitlines()
    return "\n".join(takewhile(lambda line: line.startswith("--"), lines))


def body(script: Path) -> str:
    text = script.read_text("utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def named(text: str) -> set[tuple[str, int]]:
    return {(kind, int(i)) for kind, i in INDEXED.findall(text)}


def test_there_are_scripts() -> None:
    assert {p.name for p in SCRIPTS} >= {"acquire.lua", "lease_hold.lua", "trial_take.lua"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_script_starts_with_its_contract(script: Path) -> None:
    # Given the comment block the script starts with
    top = header(script)

    # Then it names the script and says what it does
    assert top.startswith(f"-- {script.name}: "), top[:80]

    # And every KEYS[i] and ARGV[i] the code uses is named there, or in the prelude
    # its KEYS are shared with ("-- KEYS: as line.lua.")
    stated = named(top)
    for prelude in SHARED_KEYS.findall(top):
        stated |= named(header(script.with_name(prelude)))
    ranged = {m.group(1) for m in re.finditer(r"\b(ARGV)\[\d+\.\.\]", top)}
    unstated = {(kind, i) for kind, i in named(body(script)) - stated if kind not in ranged}
    assert not unstated, f"used but not in the contract: {sorted(unstated)}"

    # And a script (not a prelude) says what it returns
    if script not in PRELUDES:
        assert "Returns" in top


def loaded_names() -> list[tuple[Path, str]]:
    """Each ``"*.lua"`` literal in the package's code, with the module that names it."""
    found = []
    for module in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and str(node.value).endswith(".lua"):
                found.append((module, str(node.value)))
    return found


def test_every_script_the_code_loads_is_in_the_lua_folder_beside_it() -> None:
    loaded = loaded_names()
    missing = [
        f"{m.relative_to(PACKAGE)}: {name}"
        for m, name in loaded
        if not (m.parent / "lua" / name).is_file()
    ]
    assert loaded and not missing


def test_every_script_is_loaded_by_the_code_beside_it() -> None:
    loaded = {m.parent / "lua" / name for m, name in loaded_names()}
    assert [str(p.relative_to(PACKAGE)) for p in SCRIPTS if p not in loaded] == []


@pytest.mark.parametrize(
    ("loaded", "path"),
    [
        (leases.HOLD, "lua/lease_hold.lua"),
        (leases.RELEASE, "lua/lease_release.lua"),
        (trials.TAKE, "sessions/lua/trial_take.lua"),
    ],
)
def test_the_scripts_held_as_module_constants_are_the_files(loaded: str, path: str) -> None:
    assert loaded == (PACKAGE / path).read_text("utf-8")
