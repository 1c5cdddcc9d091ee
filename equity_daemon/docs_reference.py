"""The configuration reference (`docs/reference.md`), generated from the settings model.

    python -m equity_daemon.docs_reference          # writes docs/reference.md

Every section, key, type, default, bound and description comes from `Settings`' JSON schema
(the field's `Field(description=…)`, the model's docstring), and the table of exchange account
types from the exchange mappings themselves, so the page cannot drift from the code: a test
renders it again and compares. A field without a description is an error, not a blank cell.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from equity_daemon.settings import EXCHANGE_ACCOUNTS, SAME_WALLETS, Settings
from equity_daemon.venues.exchanges import binance, bybit, okx

OUTPUT = Path("docs/reference.md")
COMMAND = "python -m equity_daemon.docs_reference"
MAPPINGS = {"binance": binance, "bybit": bybit, "okx": okx}
# Patterns shared by many fields, said in words
PATTERNS = {
    r"^[a-z0-9][a-z0-9_-]{0,39}$": "a–z, 0–9, `_`, `-`; 1–40 characters, the first a–z or 0–9",
    r"^\S+$": "no spaces",
    r"^0x[0-9a-fA-F]{40}$": "an address: `0x` and 40 hex digits",
}
SPANS = {3600: "an hour", 86_400: "a day", 604_800: "a week"}
POWERS = {2**32: "2³²", 2**63: "2⁶³"}

Schema = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Section:
    """One table of keys: `heading` is how TOML names it (`[[books.<name>.venues]]`)."""

    heading: str
    anchor: str
    model: Schema
    path: str  # the dotted path children are named under
    kinds: tuple[str, ...] = ()  # the venue kinds a section of a tagged union is for


class MissingDescription(Exception):
    """Raised when a settings field has no `Field(description=…)`."""


def render(schema: Schema | None = None) -> str:
    """The whole page, as markdown."""
    schema = Settings.model_json_schema() if schema is None else schema
    definitions = schema["$defs"]
    root = Section("Top level", "top-level", schema, "")
    sections = [root, *_children(root, definitions)]
    parts = [_INTRO.format(command=COMMAND)]
    parts += [_section(section, definitions) for section in sections]
    parts.append(_accounts())
    return "\n".join(parts)


_INTRO = """\
# Configuration reference

<!-- Generated from the settings model by `{command}`: do not edit by hand. -->

Every key of the configuration file, as the code checks it. How the file, the environment and
secret files combine is in [Configuration](configuration.md); `config/example.toml` uses most
keys. A key marked *secret* is also accepted as `<key>_file` (a file holding it), never both.
A *decimal* is read exactly (TOML `0.1` is one tenth, not a float). Durations are seconds.
"""


def _children(parent: Section, definitions: Schema) -> Iterator[Section]:
    """The sections under `parent`, depth first, in the order the fields are declared."""
    for key, field in parent.model.get("properties", {}).items():
        for shape, target, tagged in _models(field, definitions):
            path = f"{parent.path}.{key}".lstrip(".")
            heading = {"dict": f"[{path}.<name>]", "list": f"[[{path}]]", "one": f"[{path}]"}
            child_path = f"{path}.<name>" if shape == "dict" else path
            model = definitions[target]
            kinds: tuple[str, ...] = ()
            anchor = _slug(child_path)
            if tagged:  # `ExchangeVenue` is `books-name-venues-exchange`
                kind = model["properties"]["kind"]
                kinds = (kind["const"],) if "const" in kind else tuple(kind["enum"])
                anchor += "-" + _slug(target.removesuffix("Venue"))
            section = Section(heading[shape], anchor, model, child_path, kinds)
            yield section
            yield from _children(section, definitions)


def _models(field: Schema, definitions: Schema) -> list[tuple[str, str, bool]]:
    """The models a field holds: (shape: one, dict or list; model name; of a tagged union)."""
    if "$ref" in field:
        name = _ref(field)
        return [("one", name, False)] if "properties" in definitions[name] else []
    if "patternProperties" in field:
        (value,) = field["patternProperties"].values()
        return [("dict", name, tagged) for _, name, tagged in _models(value, definitions)]
    if field.get("type") == "array":
        items = field["items"]
        if "oneOf" in items:  # a tagged union: one section per member
            return [("list", _ref(member), True) for member in items["oneOf"]]
        return [("list", name, tagged) for _, name, tagged in _models(items, definitions)]
    return []


def _section(section: Section, definitions: Schema) -> str:
    title = section.heading if section.anchor == "top-level" else f"`{section.heading}`"
    if section.kinds:
        title += " kind = " + " | ".join(f'`"{kind}"`' for kind in section.kinds)
    lines = [f"## {title} {{#{section.anchor}}}", ""]
    if section.anchor != "top-level":
        lines += [_paragraphs(section.model.get("description", "")), ""]
    lines += ["| key | type | default | bounds | description |", "|---|---|---|---|---|"]
    required = set(section.model.get("required", ()))
    for key, field in section.model["properties"].items():
        where = f"{section.path}.{key}".lstrip(".")
        if not field.get("description"):
            raise MissingDescription(f"{where}: no Field(description=…) in settings.py")
        kind, bounds = _type(field, definitions, section, key)
        default = "required" if key in required else _default(field, kind)
        cells = (f"`{key}`", kind, default, bounds, field["description"])
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _type(field: Schema, definitions: Schema, section: Section, key: str) -> tuple[str, str]:
    """The field's type in words and its bounds."""
    node, bounds = _unwrap(field), _bounds(_unwrap(field))
    if "$ref" in node:
        target = definitions[_ref(node)]
        if "enum" in target:
            return " | ".join(f'`"{value}"`' for value in target["enum"]), ""
        path = f"{section.path}.{key}".lstrip(".")
        return f"table ([below](#{_slug(path)}))", bounds
    if node.get("type") == "array":
        items = node["items"]
        if "oneOf" in items or "$ref" in items:
            return "list of tables (below)", bounds
        item, item_bounds = _type(items, definitions, section, key)
        each = f"each: {item_bounds}" if item_bounds else ""
        plural = {"string": "strings", "integer": "integers"}.get(item, item)
        return f"list of {plural}", "; ".join(filter(None, (bounds, each)))
    if "patternProperties" in node:
        ((pattern, value),) = node["patternProperties"].items()
        if "$ref" in value:
            path = f"{section.path}.{key}.<name>".lstrip(".")
            return f"tables by name ([below](#{_slug(path)}))", f"names: {PATTERNS[pattern]}"
        item, item_bounds = _type(value, definitions, section, key)
        keys = _bounds({**node.get("propertyNames", {}), "pattern": pattern})
        values = f"; values: {item_bounds}" if item_bounds else ""
        return f"table of {item}", f"keys: {keys}{values}"
    return _scalar(node, field), bounds


def _scalar(node: Schema, field: Schema) -> str:
    if "const" in node:
        return f'`"{node["const"]}"`'
    if "enum" in node:
        return " | ".join(f'`"{value}"`' for value in node["enum"])
    if node.get("format") == "password":
        return "string, *secret*"
    if _is_decimal(field):
        return "decimal"
    words = {"path": "path", "uri": "URL"}
    if node.get("format") in words:
        return words[node["format"]]
    return {"integer": "integer", "number": "number", "boolean": "boolean"}.get(
        node.get("type", ""), "string"
    )


# pydantic puts the bound of an `Annotated` union (a decimal's own `gt`) beside its `anyOf`
QUIRKS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum"}
LOWER, UPPER = {"minimum", "exclusiveMinimum"}, {"maximum", "exclusiveMaximum"}


def _unwrap(field: Schema) -> Schema:
    """The field's own schema: no `null` branch (optional), no decimal's string branch, and
    the bounds pydantic left on the union replacing the branch's on the same side."""
    branches = _branches(field)
    node = dict(next((b for b in branches if b.get("type") != "string"), branches[0]))
    for holder in _unions(field):
        for key, value in holder.items():
            if key in QUIRKS:
                side = LOWER if QUIRKS[key] in LOWER else UPPER
                node = {k: v for k, v in node.items() if k not in side}
                node[QUIRKS[key]] = value
    if node.get("format") == "uri":  # pydantic's URL length limits say nothing useful
        node = {k: v for k, v in node.items() if k not in ("minLength", "maxLength")}
    return node


def _unions(field: Schema) -> list[Schema]:
    """`field` and its nested unions, innermost last."""
    found = [field]
    for branch in field.get("anyOf", ()):
        if "anyOf" in branch:
            found += _unions(branch)
    return found


def _branches(field: Schema) -> list[Schema]:
    """The leaf schemas of a (nested) union, `null` left out."""
    if "anyOf" not in field:
        return [field]
    found = [leaf for branch in field["anyOf"] for leaf in _branches(branch)]
    return [leaf for leaf in found if leaf.get("type") != "null"] or found


def _is_decimal(field: Schema) -> bool:
    return {"number", "string"} <= {branch.get("type") for branch in _branches(field)}


def _bounds(node: Schema) -> str:
    said = [
        f"{sign} {_number(node[key])}"
        for key, sign in (
            ("exclusiveMinimum", ">"),
            ("minimum", "≥"),
            ("exclusiveMaximum", "<"),
            ("maximum", "≤"),
        )
        if key in node
    ]
    if "pattern" in node:
        said.append(PATTERNS.get(node["pattern"], f"`{node['pattern']}`"))
    for low, high, unit in (
        ("minLength", "maxLength", "characters"),
        ("minItems", "maxItems", "items"),
    ):
        if low in node or high in node:
            said.append(_range(node.get(low), node.get(high), unit))
    if "minProperties" in node:
        said.append(f"at least {node['minProperties']}")
    return ", ".join(said)


def _range(low: int | None, high: int | None, unit: str) -> str:
    if high is None:
        return f"at least {low} {unit}"
    return f"{low}–{high} {unit}" if low else f"at most {high} {unit}"


def _number(value: float) -> str:
    if value in POWERS:
        return POWERS[int(value)]
    if abs(value) >= 1e15:
        return f"{value:.0e}".replace("e+", "e")
    text = str(int(value)) if value == int(value) else f"{value:g}"
    return f"{text} ({SPANS[int(value)]})" if value in SPANS else text


def _default(field: Schema, kind: str) -> str:
    if "default" not in field:
        return "required"
    value = field["default"]
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "`{}`" if not value else "its defaults"
    if isinstance(value, list):
        return "`[]`"
    if isinstance(value, float | int):
        return f"`{value:g}`"
    if kind == "decimal":
        return f"`{value}`"
    return f'`"{value}"`'


def _accounts() -> str:
    """What each exchange's account types are, from the mappings the venues use."""
    lines = [
        "## Exchange account types {#exchange-account-types}",
        "",
        "The values of an exchange venue's `accounts`. *Streamed*: followed over the exchange's "
        "private websocket when the venue's `stream` is true (the others are polled every "
        "`interval_seconds`). *Own total*: the currency of the total the exchange reports for "
        "the account, which it is reconciled with (the book needs a price path from it). "
        "[Exchanges](exchanges.md) maps each one's requests and fields.",
        "",
        "| exchange | account type | streamed | own total |",
        "|---|---|---|---|",
    ]
    for exchange, accounts in EXCHANGE_ACCOUNTS.items():
        mapping = MAPPINGS[exchange]
        for account in accounts:
            streamed = "yes" if account in mapping.STREAMED else "no (polled)"
            totals = " or ".join(mapping.TOTAL_CURRENCIES.get(account, ())) or "—"
            lines.append(f"| {exchange} | `{account}` | {streamed} | {totals} |")
    lines.append("")
    for (exchange, account), (others, why) in SAME_WALLETS.items():
        listed = ", ".join(f"`{other}`" for other in others)
        lines.append(f"{exchange} `{account}` is never listed beside {listed}: {why}.")
    return "\n".join(lines) + "\n"


def _ref(node: Schema) -> str:
    return str(node["$ref"]).rsplit("/", 1)[-1]


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def _paragraphs(text: str) -> str:
    """A docstring as markdown: its paragraphs with their lines joined."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    args.output.write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
