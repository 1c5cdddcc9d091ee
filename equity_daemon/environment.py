"""`EQUITY_DAEMON_*` environment variables, laid over the configuration file one value at a time.

    EQUITY_DAEMON_HTTP__PORT=9800                           http.port
    EQUITY_DAEMON_BOOKS__BASIS__THRESHOLD_PERCENT=0.2       books.basis.threshold_percent
    EQUITY_DAEMON_BOOKS__BASIS__VENUES__0__API_KEY=…        books.basis.venues[0].api_key
    EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC='["https://…"]'   a whole list, as JSON
    EQUITY_DAEMON_BOOKS__BASIS__VENUES__1__RPC__0=https://…     its first item only

`__` nests; a number after a list's name is the index of its item (one past the last adds an
item). Names are case-insensitive. A value is text, except where the setting is a list, a
table or a section: there it is JSON (numbers in it are read as exact decimals), and a JSON
table merges into the file's. Giving a secret replaces the file's `<field>_file`, and giving
`<field>_file` replaces the file's inline value: the environment wins, never "both given".

pydantic-settings' own environment source cannot do this: it replaces a list from the file by a
table keyed "0" ("Input should be a valid tuple"), and it reads JSON numbers as floats.
`EQUITY_DAEMON_CONFIG` names the file itself and is no setting.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError

PREFIX = "EQUITY_DAEMON_"
NESTING = "__"
CONFIG_VARIABLE = "EQUITY_DAEMON_CONFIG"


class EnvironmentOverFile(PydanticBaseSettingsSource):
    """The file's values (the `file` source: the TOML, passed as init data) with the
    environment's laid over them."""

    def __init__(self, settings_cls: type[BaseSettings], file: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._file = file

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # the whole mapping comes from __call__

    def __call__(self) -> dict[str, Any]:
        return overlay(self._file(), os.environ, self.settings_cls)


def overlay(data: Mapping[str, Any], environ: Mapping[str, str], model: type) -> dict[str, Any]:
    """`data` with every `EQUITY_DAEMON_*` variable of `environ` set in it; `data` is unchanged.

    Raises:
        SettingsError: a variable's JSON does not parse, or its index is past the list's end;
            the message names the variable, never its value.
    """
    merged: dict[str, Any] = _copy(data)
    found = [
        (name, name[len(PREFIX) :].lower().split(NESTING), value)
        for name, value in environ.items()
        if name.upper().startswith(PREFIX) and name.upper() != CONFIG_VARIABLE
    ]
    # a whole section first, then single values inside it
    for name, path, value in sorted(found, key=lambda item: (len(item[1]), item[1])):
        _set(merged, path, value, model, name)
    return merged


def _set(node: Any, path: list[str], raw: str, annotation: Any, variable: str) -> None:
    *parents, leaf = path
    for key in parents:
        annotation = _child(annotation, key)
        node = _step(node, key, variable, _is_list(annotation))
    annotation = _child(annotation, leaf)
    value: Any = raw
    if _is_structured(annotation):
        try:
            value = json.loads(raw, parse_float=Decimal)
        except json.JSONDecodeError as exc:  # its text quotes no part of the value
            raise SettingsError(f"{variable}: not valid JSON ({exc.msg})") from None
    if isinstance(node, list):
        index = _index(node, leaf, variable)
        if index == len(node):
            node.append(value)
        else:
            node[index] = _merged(node[index], value)
        return
    if leaf.endswith("_file"):  # the environment's way of giving a secret wins over the file's
        node.pop(leaf.removesuffix("_file"), None)
    else:
        node.pop(f"{leaf}_file", None)
    node[leaf] = _merged(node.get(leaf), value)


def _step(node: Any, key: str, variable: str, list_below: bool) -> Any:
    """The container at `key` inside `node`, made when missing."""
    if isinstance(node, list):
        index = _index(node, key, variable)
        if index == len(node):
            node.append({})
        if not isinstance(node[index], dict | list):
            node[index] = {}
        return node[index]
    if not isinstance(node.get(key), dict | list):
        node[key] = [] if list_below else {}
    return node[key]


def _index(items: list[Any], key: str, variable: str) -> int:
    if not key.isdigit() or int(key) > len(items):
        last = f"0 to {len(items) - 1}, or " if items else ""
        raise SettingsError(
            f"{variable}: {key!r} is no item of a list of {len(items)} (use {last}{len(items)} "
            "to add one)"
        )
    return int(key)


def _merged(old: Any, new: Any) -> Any:
    """A JSON table merges into the file's table; anything else replaces what was there."""
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = _merged(old.get(key), value)
        return merged
    return new


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(item) for item in value]
    return value


# --- what the settings model says a name is ---------------------------------------------------


def _bare(annotation: Any) -> Any:
    """`annotation` without `Annotated[...]` and without `| None`."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return _bare(members[0])
    return annotation


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models `annotation` may be: one, or each member of a union (the venue kinds)."""
    annotation = _bare(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        return [model for arg in get_args(annotation) for model in _models(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _child(annotation: Any, key: str) -> Any:
    """What `key` inside a value of type `annotation` is; None when nobody knows (pydantic then
    names the mistake)."""
    annotation = _bare(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (tuple, list):
        return _bare(args[0]) if key.isdigit() else None
    if origin is dict:
        return _bare(args[1])
    for model in _models(annotation):
        fields = model.model_fields
        if key in fields:
            return _bare(fields[key].annotation)
        if key.endswith("_file") and key.removesuffix("_file") in fields:
            return str  # a file name
    return None


def _is_list(annotation: Any) -> bool:
    return get_origin(_bare(annotation)) in (tuple, list)


def _is_structured(annotation: Any) -> bool:
    """A list, a table or a section: given as JSON."""
    return get_origin(_bare(annotation)) in (tuple, list, dict) or bool(_models(annotation))
