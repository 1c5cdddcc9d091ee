"""The documentation: the configuration reference is the one the settings model renders, and
the README's links into docs/ lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from equity_daemon import docs_reference
from equity_daemon.settings import Settings
from equity_daemon.venues.exchanges import binance

REPO = Path(__file__).parents[1]


def test_the_configuration_reference_is_the_one_the_settings_model_renders() -> None:
    committed = (REPO / docs_reference.OUTPUT).read_text()
    assert docs_reference.render() == committed, (
        f"{docs_reference.OUTPUT} is out of date: run `{docs_reference.COMMAND}`"
    )


def test_the_reference_names_every_binance_account_type_the_venue_streams() -> None:
    page = docs_reference.render()
    rows = re.findall(r"^\| binance \| `(\w+)` \| (yes|no \(polled\)) \|", page, re.MULTILINE)
    assert {account for account, streamed in rows if streamed == "yes"} == binance.STREAMED
    assert len(rows) == len(binance.ACCOUNTS)


def test_a_settings_field_without_a_description_fails_the_reference() -> None:
    schema = Settings.model_json_schema()
    del schema["$defs"]["EdgeSettings"]["properties"]["peg"]["description"]
    with pytest.raises(docs_reference.MissingDescription, match=r"books\.<name>\.prices\.peg"):
        docs_reference.render(schema)


def test_the_reference_command_writes_the_page(tmp_path: Path) -> None:
    assert docs_reference.main(["--output", str(tmp_path / "reference.md")]) == 0
    assert (tmp_path / "reference.md").read_text() == docs_reference.render()


def test_every_link_of_the_readme_leads_to_a_file_and_heading_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs|config)/[^)#]*)(?:#([^)]*))?\)", readme)
    assert len(links) > 10
    for target, anchor in links:
        path = REPO / target
        assert path.exists(), f"README links to {target}, which does not exist"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(), re.MULTILINE)
            assert anchor in {_slug(heading) for heading in headings}, f"{target}#{anchor}"


def _slug(heading: str) -> str:
    """The anchor GitHub and MkDocs give a heading: lowercase, no punctuation, `-` for spaces."""
    words = re.sub(r"[^\w\- ]", "", heading.lower())
    return words.replace(" ", "-")


@pytest.mark.parametrize(
    ("exchange", "heading"),
    [("binance", "## Binance"), ("bybit", "## Bybit"), ("okx", "## OKX")],
)
def test_the_exchanges_page_names_the_account_types_each_exchange_streams(
    exchange: str, heading: str
) -> None:
    page = (REPO / "docs" / "exchanges.md").read_text()
    mapping = docs_reference.MAPPINGS[exchange]
    section = page[page.index(f"\n{heading}") :]
    assert _named(section, "streamed: ") == mapping.STREAMED  # the exchange's own section
    overview = page[page.index("\n## Streaming") :]
    assert _named(overview, f"{heading[3:]}'s ") == mapping.STREAMED  # and the overview


def _named(text: str, after: str) -> set[str]:
    """The `names` in `text` from `after` to the next `;` or `(`."""
    said = re.split(r"[;(]", text[text.index(after) :], maxsplit=1)[0]
    return set(re.findall(r"`(\w+)`", said))
