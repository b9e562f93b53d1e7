"""The docs stay in step with the code: the configuration page is what the settings'
own descriptions render, every setting has one, every page is in the site's nav, and
the README stays a front door whose links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from delivery import settings_doc
from delivery.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 150


def test_every_setting_has_a_description_and_a_group() -> None:
    # Given the settings, When the page's completeness is checked, Then nothing is missing.
    assert settings_doc.missing() == []
    for name, info in Settings.model_fields.items():
        assert (info.description or "").strip(), f"{name} has no description"


def test_the_configuration_page_is_what_the_settings_render() -> None:
    # Given the committed page, When the generator renders the settings, Then they agree.
    committed = (ROOT / settings_doc.PAGE).read_text(encoding="utf-8")
    assert committed == settings_doc.render(), (
        "docs/configuration.md differs from the settings: run python -m delivery.settings_doc"
    )


def test_the_page_names_every_variable_once() -> None:
    page = settings_doc.render()
    for name in Settings.model_fields:
        assert page.count(f"| `{settings_doc.env_name(name)}` |") == 1, name


def test_a_setting_without_a_description_fails_the_render(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a setting whose description went missing
    field = Settings.model_fields["metrics_port"]
    monkeypatch.setattr(field, "description", None)
    # Then the generator names it and refuses to render
    assert settings_doc.missing() == ["DELIVERY_METRICS_PORT has no description"]
    with pytest.raises(ValueError, match="DELIVERY_METRICS_PORT has no description"):
        settings_doc.render()


def test_check_mode_says_whether_the_page_is_current(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    assert settings_doc.main(["--output", str(page), "--check"]) == 1
    assert settings_doc.main(["--output", str(page)]) == 0
    assert settings_doc.main(["--output", str(page), "--check"]) == 0


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", config, flags=re.MULTILINE))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav


def test_the_readme_is_a_front_door() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < README_MAX_LINES
    for command in ("scripts/demo", "scripts/check"):
        assert command in readme
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).is_file(), target
