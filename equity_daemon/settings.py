"""Configuration: one TOML file, overridable by `EQUITY_DAEMON_*` environment variables.

Nesting in the environment uses `__`: `EQUITY_DAEMON_BOOKS__BASIS__THRESHOLD_PERCENT=0.5`.

Secrets (webhook URLs and signing secrets, the HTTP bearer token) are `SecretStr`. Each can be given
directly or as `<field>_file`: a path, or a bare name looked up in the systemd credentials
directory (`$CREDENTIALS_DIRECTORY`) and then in `/run/secrets` (Docker).

TOML floats are read as `Decimal`, so `threshold_percent = 0.1` is exactly one tenth.

`load_settings` turns every problem into one readable line naming the field path
(`books.basis.venues[2].demo.seed: Input should be a valid integer`) and never echoes a value.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from equity_daemon.errors import ConfigError
from equity_daemon.model import ShareClass
from equity_daemon.validation import describe_errors

# Names end up in metric labels and log fields: keep them short and tame.
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]
Seconds = Annotated[float, Field(gt=0)]
DOCKER_SECRETS = Path("/run/secrets")


class Section(BaseModel):
    """Every section rejects unknown keys (a typo must not silently fall back to a default)."""

    # hide_input_in_errors: a ValidationError's text must never carry a secret's value
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, info in cls.model_fields.items():
            key = f"{name}_file"
            if key in data and "SecretStr" in repr(info.annotation):
                if name in data:  # silently preferring one would hide a mistake
                    raise ValueError(f"give {name} or {key}, not both")
                data[name] = read_secret_file(key, data.pop(key))
        return data


def read_secret_file(field: str, where: object) -> str:
    """A secret's value from a file: an absolute path, or a credential/Docker secret name."""
    if not isinstance(where, str) or not where:
        raise ValueError(f"{field} must be a file path or a credential name")
    path = Path(where)
    candidates = [path] if path.is_absolute() else []
    if not path.is_absolute():
        if credentials := os.environ.get("CREDENTIALS_DIRECTORY"):
            candidates.append(Path(credentials) / path)
        candidates.append(DOCKER_SECRETS / path)
    for candidate in candidates:
        try:
            return candidate.read_text().strip()
        except OSError:
            continue
        except UnicodeDecodeError:  # its message quotes a byte of the secret
            raise ValueError(f"{field}: secret {where!r} is not UTF-8 text") from None
    looked = ", ".join(str(c) for c in candidates)
    raise ValueError(f"{field}: cannot read secret {where!r} (looked in {looked})")


class DemoVenue(Section):
    """A simulated basis book (spot LST, perp short, margin) with a random-walk ETH price."""

    kind: Literal["demo"]
    name: Name
    interval_seconds: Seconds = 5.0
    timeout_seconds: Seconds = 5.0
    max_age_seconds: Seconds | None = None
    keepalive_seconds: Seconds | None = None
    seed: int | None = None
    volatility: Decimal = Field(default=Decimal("0.0005"), ge=0, le=Decimal("0.1"))
    funding_per_step: Decimal = Field(default=Decimal(25), ge=0, le=Decimal(1_000_000))


class ManualVenue(Section):
    """Positions (and optional quotes) from a TOML or JSON file the operator edits."""

    kind: Literal["manual"]
    name: Name
    path: Path
    interval_seconds: Seconds = 2.0
    timeout_seconds: Seconds = 5.0
    max_age_seconds: Seconds | None = None


VenueSettings = Annotated[DemoVenue | ManualVenue, Field(discriminator="kind")]


class EdgeSettings(Section):
    """One conversion-graph edge: 1 `base` = rate `quote`, from `sources` in order, or `fixed`."""

    base: str
    quote: str
    sources: tuple[Name, ...] = ()
    fixed: Decimal | None = Field(default=None, gt=0)
    max_age_seconds: Seconds = 300.0

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> EdgeSettings:
        if bool(self.sources) == (self.fixed is not None):
            raise ValueError("give either sources (venue names) or fixed (a rate), not both")
        return self


class WebhookSettings(Section):
    """An HTTP endpoint that receives every event as JSON, signed when `secret` is set."""

    name: Name
    url: SecretStr
    secret: SecretStr | None = None
    timeout_seconds: Seconds = 10.0
    max_backoff_seconds: Seconds = 300.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: SecretStr) -> SecretStr:
        try:
            parsed = urlsplit(url.get_secret_value())
            host = parsed.hostname
        except ValueError:
            host = None
        if host is None or parsed.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")  # never echo it: it is secret
        return url


class BookSettings(Section):
    """A strategy book: its share class, venues, prices, threshold rule and notifications."""

    share_class: ShareClass
    venues: tuple[VenueSettings, ...]
    prices: tuple[EdgeSettings, ...] = ()
    threshold_percent: Decimal = Field(default=Decimal("0.1"), gt=0)
    threshold_floor: Decimal = Field(default=Decimal(0), ge=0)
    venue_max_age_seconds: Seconds = 300.0
    max_deviation_bps: Decimal = Field(default=Decimal(50), gt=0)
    quote_cache_seconds: float | None = Field(default=None, ge=0)
    record_interval_seconds: Seconds | None = None
    ignore_assets: tuple[str, ...] = ()
    webhooks: tuple[WebhookSettings, ...] = ()

    @field_validator("venues")
    @classmethod
    def _some_venue(cls, venues: tuple[VenueSettings, ...]) -> tuple[VenueSettings, ...]:
        # not Field(min_length=1): on a tuple, pydantic then reports one invalid venue twice,
        # the second time as "at least 1 item after validation, not 0"
        if not venues:
            raise ValueError("a book needs at least one venue")
        return venues


class HttpSettings(Section):
    """The HTTP API. Binds loopback unless told otherwise."""

    host: str = "127.0.0.1"
    port: int = Field(default=9731, ge=0, le=65535)
    bearer_token: SecretStr | None = None


class Settings(BaseSettings, Section):
    """The whole daemon configuration."""

    model_config = SettingsConfigDict(
        env_prefix="EQUITY_DAEMON_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    books: dict[Name, BookSettings] = Field(min_length=1)
    http: HttpSettings = HttpSettings()
    interval_seconds: Seconds = 60.0
    debounce_seconds: Seconds = 0.25
    history_path: Path = Path("equity-daemon.sqlite3")
    keep_all_days: Seconds = 7.0
    callback_timeout_seconds: Seconds = 5.0
    stale_after_seconds: Seconds | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init data; the environment overrides it.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _names_are_unique_and_known(self) -> Settings:
        """Venue and webhook names identify them in metrics, logs and the outbox."""
        # these problems span fields, so their messages carry the field path themselves
        for kind, section in (("venue", "venues"), ("webhook", "webhooks")):
            owners: dict[str, str] = {}
            for book_name, book in self.books.items():
                for index, item in enumerate(getattr(book, section)):
                    if item.name in owners:
                        raise ValueError(
                            f"books.{book_name}.{section}[{index}].name: {kind} {item.name!r} "
                            f"is already used in book {owners[item.name]!r}; "
                            f"{kind} names must be unique"
                        )
                    owners[item.name] = book_name
        for book_name, book in self.books.items():
            names = {venue.name for venue in book.venues}
            for index, edge in enumerate(book.prices):
                unknown = [s for s in edge.sources if s not in names]
                if unknown:
                    raise ValueError(
                        f"books.{book_name}.prices[{index}].sources: {edge.base}/{edge.quote} "
                        f"names unknown source venue(s) {', '.join(unknown)}"
                    )
        return self


def load_settings(path: Path | None) -> Settings:
    """Read the TOML file (if any) and the environment.

    Raises:
        ConfigError: with one line per problem, each naming its field path.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                data = tomllib.load(handle, parse_float=Decimal)
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file"]) from None
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    except SettingsError as exc:  # an EQUITY_DAEMON_* variable holding malformed JSON
        raise ConfigError([f"environment: {exc}"]) from None
