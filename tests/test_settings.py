"""Configuration: every kind of bad input exits 2 with the field path; good input is exact."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from equity_daemon import settings as settings_module
from equity_daemon.cli import EXIT_OK, EXIT_USAGE, main
from equity_daemon.settings import load_settings

DEMO = Path(__file__).parents[1] / "config" / "demo.toml"

BOOK = """
[books.basis]
share_class = "USDT"
threshold_percent = 0.1
venues = [{kind = "demo", name = "demo"}]
"""
WEBHOOK = BOOK + "[[books.basis.webhooks]]\nname = 'pager'\nurl = 'http://127.0.0.1/h'\n"
EDGE = BOOK + "[[books.basis.prices]]\nbase = 'ETH'\nquote = 'USDT'\n"


def with_venue(extra: str) -> str:
    return BOOK.replace(
        '{kind = "demo", name = "demo"}', '{kind = "demo", name = "demo"}, ' + extra
    )


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No stray `EQUITY_DAEMON_*` variable, credentials directory or Docker secret leaks in."""
    for name in list(os.environ):
        if name.startswith("EQUITY_DAEMON_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    docker = tmp_path / "run-secrets"
    docker.mkdir()
    monkeypatch.setattr(settings_module, "DOCKER_SECRETS", docker)
    return docker


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "equity.toml"
    path.write_text(text)
    return path


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`check-config` on `text`: the exit code and stderr; stdout must stay empty on errors."""
    code = main(["check-config", "--config", str(write(tmp_path, text))])
    captured = capsys.readouterr()
    if code != EXIT_OK:
        assert captured.out == ""
    return code, captured.err


# Each case holds exactly one problem: the whole of stderr is one line, starting with its path.
@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            "[books.basis\n", "invalid TOML: Expected ']' at the end of a table", id="bad-toml"
        ),
        pytest.param(
            "colour = 1\n" + BOOK, "colour: Extra inputs are not permitted", id="unknown-top"
        ),
        pytest.param(
            BOOK + "colour = 'red'\n",
            "books.basis.colour: Extra inputs are not permitted",
            id="unknown-in-book",
        ),
        pytest.param(
            BOOK.replace('name = "demo"}', 'name = "demo", colour = "red"}'),
            "books.basis.venues[0].demo.colour: Extra inputs are not permitted",
            id="unknown-in-venue",
        ),
        pytest.param(
            BOOK + "[http]\nport = 'eighty'\n",
            "http.port: Input should be a valid integer, unable to parse string as an integer",
            id="wrong-type",
        ),
        pytest.param(
            "interval_seconds = -1\n" + BOOK,
            "interval_seconds: Input should be greater than 0",
            id="out-of-range",
        ),
        pytest.param(
            BOOK.replace('"USDT"', '"BTC"'),
            "books.basis.share_class: Input should be 'USDT' or",
            id="unknown-share-class",
        ),
        pytest.param(
            with_venue("{kind = 'manual', name = 'ops'}"),
            "books.basis.venues[1].manual.path: Field required",
            id="missing-manual-path",
        ),
        pytest.param(
            WEBHOOK.replace("url = 'http://127.0.0.1/h'\n", ""),
            "books.basis.webhooks[0].url: Field required",
            id="missing-webhook-url",
        ),
        pytest.param("interval_seconds = 60\n", "books: Field required", id="missing-books"),
        pytest.param(
            with_venue("{kind = 'ftx', name = 'gone'}"),
            "books.basis.venues[1]: Input tag 'ftx' found using 'kind' does not match",
            id="unknown-venue-kind",
        ),
        pytest.param(
            "[books.basis]\nshare_class = 'USDT'\nvenues = []\n",
            "books.basis.venues: a book needs at least one venue",
            id="no-venues",
        ),
        pytest.param(
            BOOK.replace('name = "demo"', 'name = "Demo Venue"'),
            "books.basis.venues[0].demo.name: String should match pattern",
            id="bad-name",
        ),
        pytest.param(
            WEBHOOK + "secret_file = 'nope'\n",
            "books.basis.webhooks[0]: secret_file: cannot read secret 'nope' (looked in ",
            id="missing-secret-file",
        ),
        pytest.param(
            WEBHOOK + "secret_file = ''\n",
            "books.basis.webhooks[0]: secret_file must be a file path or a credential name",
            id="empty-secret-file",
        ),
        pytest.param(
            BOOK + "[books.other]\nshare_class = 'ETH'\n[[books.other.venues]]\nkind = 'demo'\n"
            "name = 'demo'\n",
            "books.other.venues[0].name: venue 'demo' is already used in book 'basis'; "
            "venue names must be unique",
            id="venue-in-two-books",
        ),
        pytest.param(
            WEBHOOK + "[[books.basis.webhooks]]\nname = 'pager'\nurl = 'https://example.org/'\n",
            "books.basis.webhooks[1].name: webhook 'pager' is already used in book 'basis'; "
            "webhook names must be unique",
            id="webhook-twice",
        ),
        pytest.param(
            EDGE + "sources = ['binance']\n",
            "books.basis.prices[0].sources: ETH/USDT names unknown source(s) binance (a venue of "
            "this book, a markets entry or a price_sources entry)",
            id="unknown-source-venue",
        ),
        pytest.param(
            EDGE + "sources = ['demo']\nfixed = 3000\n",
            "books.basis.prices[0]: give either sources (venue names) or fixed (a rate), not both",
            id="sources-and-fixed",
        ),
        pytest.param(
            EDGE,
            "books.basis.prices[0]: give either sources (venue names) or fixed (a rate), not both",
            id="neither-sources-nor-fixed",
        ),
        pytest.param(
            WEBHOOK.replace("http://127.0.0.1/h", "gopher://127.0.0.1/h"),
            "books.basis.webhooks[0].url: must be an http:// or https:// URL",
            id="webhook-not-http",
        ),
    ],
)
def test_each_problem_is_one_line_naming_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    code, err = check(tmp_path, text, capsys)
    assert code == EXIT_USAGE
    (only,) = err.splitlines()
    path_prefix = f"{tmp_path / 'equity.toml'}: " if "TOML" in line else ""
    assert only.startswith(f"config error: {path_prefix}{line}"), only


def test_several_problems_give_several_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BOOK + "a = 1\n[http]\nport = 'x'\n"
    code, err = check(tmp_path, text, capsys)
    assert code == EXIT_USAGE
    assert err.splitlines() == [
        "config error: books.basis.a: Extra inputs are not permitted",
        "config error: http.port: Input should be a valid integer, "
        "unable to parse string as an integer",
    ]


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["check-config", "--config", str(missing)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"config error: {missing}: no such file\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, BOOK)
    path.chmod(0)
    try:
        assert main(["check-config", "--config", str(path)]) == EXIT_USAGE
    finally:
        path.chmod(0o600)
    assert capsys.readouterr().err == f"config error: {path}: cannot read (Permission denied)\n"


def test_a_directory_is_not_a_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "--config", str(tmp_path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"config error: {tmp_path}: cannot read (Is a directory)\n"


def test_a_bad_environment_value_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EQUITY_DAEMON_INTERVAL_SECONDS", "soon")
    code, err = check(tmp_path, BOOK, capsys)
    assert code == EXIT_USAGE
    assert err == (
        "config error: interval_seconds: Input should be a valid number, "
        "unable to parse string as a number\n"
    )


def test_malformed_json_in_the_environment_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # pydantic-settings raises its own SettingsError here, not a ValidationError
    monkeypatch.setenv("EQUITY_DAEMON_HTTP", '{"port": 1,')
    code, err = check(tmp_path, BOOK, capsys)
    assert code == EXIT_USAGE
    assert err == (
        'config error: environment: error parsing value for field "http" '
        'from source "EnvSettingsSource"\n'
    )


@pytest.mark.parametrize(
    ("text", "env"),
    [
        pytest.param("[books.basis\n", {}, id="bad-toml"),
        pytest.param(WEBHOOK + "secret_file = 'nope'\n", {}, id="missing-secret"),
        pytest.param(BOOK, {"EQUITY_DAEMON_BOOKS": "{"}, id="bad-env-json"),
        pytest.param("interval_seconds = inf\n" + BOOK, {}, id="infinite-interval"),
        pytest.param("keep_all_days = 1e9\n" + BOOK, {}, id="keep-all-days-overflow"),
        pytest.param('history_path = ""\n' + BOOK, {}, id="empty-history-path"),
        pytest.param(BOOK, {"EQUITY_DAEMON_HISTORY_PATH": ""}, id="empty-history-path-env"),
    ],
)
def test_a_real_process_exits_2_without_a_traceback(
    tmp_path: Path, text: str, env: dict[str, str]
) -> None:
    path = write(tmp_path, text)
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EQUITY_DAEMON_") and k != "CREDENTIALS_DIRECTORY"
    }
    environment |= env
    for command in ("check-config", "run"):
        done = subprocess.run(
            [sys.executable, "-m", "equity_daemon", command, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            env=environment,
            check=False,
        )
        assert done.returncode == EXIT_USAGE, done.stderr
        (line,) = done.stderr.splitlines()
        assert line.startswith("config error: ")
        assert "Traceback" not in done.stderr
        assert done.stdout == ""


@pytest.mark.parametrize("value", ['""', '" "', '"."', '".."', '"/var/lib/equity-daemon/"'])
def test_a_history_path_that_names_no_file_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    # `""` passed check-config, and `run` then died with a traceback ("PosixPath('.') has an
    # empty name")
    code, err = check(tmp_path, f"history_path = {value}\n" + BOOK, capsys)
    assert (code, err) == (
        EXIT_USAGE,
        'config error: history_path: must name the database file (e.g. "equity-daemon.sqlite3")\n',
    )


def test_the_demo_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(DEMO)]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out == "config ok: 1 book(s), 1 venue(s)\n"
    assert captured.err == ""


def test_toml_floats_are_exact_decimals(tmp_path: Path) -> None:
    text = with_venue("{kind = 'demo', name = 'walk', volatility = 0.0003}")
    text += "threshold_floor = 0.3\n"
    text += "[[books.basis.prices]]\nbase = 'ETH'\nquote = 'USDT'\nfixed = 3000.1\n"
    book = load_settings(write(tmp_path, text)).books["basis"]
    # a float detour would give Decimal(0.1) == 0.1000000000000000055511151231257827...
    assert book.threshold_percent == Decimal("0.1")
    assert book.threshold_floor == Decimal("0.3")
    assert book.prices[0].fixed == Decimal("3000.1")
    assert book.venues[1].volatility == Decimal("0.0003")  # type: ignore[union-attr]


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, BOOK + "[http]\nport = 8000\nhost = '127.0.0.2'\n")
    monkeypatch.setenv("EQUITY_DAEMON_BOOKS__BASIS__THRESHOLD_PERCENT", "0.5")
    monkeypatch.setenv("EQUITY_DAEMON_HTTP__PORT", "9999")
    settings = load_settings(path)
    assert settings.books["basis"].threshold_percent == Decimal("0.5")
    assert settings.http.port == 9999
    # the rest of each section still comes from the file
    assert settings.books["basis"].share_class.value == "USDT"
    assert settings.books["basis"].venues[0].name == "demo"
    assert settings.http.host == "127.0.0.2"


def test_the_config_path_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from_env = write(tmp_path, with_venue("{kind = 'demo', name = 'second'}"))
    monkeypatch.setenv("EQUITY_DAEMON_CONFIG", str(from_env))
    assert main(["check-config"]) == EXIT_OK
    assert capsys.readouterr().out == "config ok: 1 book(s), 2 venue(s)\n"
    # --config wins over the variable
    assert main(["check-config", "--config", str(DEMO)]) == EXIT_OK
    assert capsys.readouterr().out == "config ok: 1 book(s), 1 venue(s)\n"
    monkeypatch.setenv("EQUITY_DAEMON_CONFIG", str(tmp_path / "gone.toml"))
    assert main(["check-config"]) == EXIT_USAGE
    assert capsys.readouterr().err == f"config error: {tmp_path / 'gone.toml'}: no such file\n"


def test_secrets_come_from_systemd_credentials_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "hook_secret").write_text("from-systemd\n")
    (clean_environment / "hook_secret").write_text("from-docker\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    path = write(tmp_path, WEBHOOK + "secret_file = 'hook_secret'\n")
    (hook,) = load_settings(path).books["basis"].webhooks
    assert hook.secret is not None
    assert hook.secret.get_secret_value() == "from-systemd"


def test_secrets_come_from_docker_secrets_and_absolute_paths(
    tmp_path: Path, clean_environment: Path
) -> None:
    (clean_environment / "http_token").write_text("from-docker\n")
    (tmp_path / "hook").write_text("from-a-path")
    path = write(
        tmp_path,
        WEBHOOK
        + f"secret_file = '{tmp_path / 'hook'}'\n"
        + "[http]\nbearer_token_file = 'http_token'\n",
    )
    settings = load_settings(path)
    assert settings.http.bearer_token is not None
    assert settings.http.bearer_token.get_secret_value() == "from-docker"
    secret = settings.books["basis"].webhooks[0].secret
    assert secret is not None
    assert secret.get_secret_value() == "from-a-path"


def test_a_secret_file_can_be_named_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / "http_token").write_text("from-docker")
    monkeypatch.setenv("EQUITY_DAEMON_HTTP__BEARER_TOKEN_FILE", "http_token")
    token = load_settings(write(tmp_path, BOOK)).http.bearer_token
    assert token is not None
    assert token.get_secret_value() == "from-docker"


def test_a_webhook_url_that_is_not_http_is_rejected_unechoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = WEBHOOK.replace("http://127.0.0.1/h", "ftp://ops:hunter2@files.example.org/drop")
    code, err = check(tmp_path, text, capsys)
    assert code == EXIT_USAGE
    assert err == "config error: books.basis.webhooks[0].url: must be an http:// or https:// URL\n"
    assert "hunter2" not in err
    assert "example.org" not in err


def test_a_secret_given_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "hook_url").write_text("http://127.0.0.1/from-file\n")
    path = tmp_path / "equity.toml"
    path.write_text(
        '[books.basis]\nshare_class = "USDT"\nvenues = [{kind = "demo", name = "demo"}]\n'
        "[[books.basis.webhooks]]\nname = 'pager'\nurl = 'http://127.0.0.1/inline'\n"
        f"url_file = '{tmp_path / 'hook_url'}'\n"
    )
    assert main(["check-config", "--config", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "config error: books.basis.webhooks[0]: give url or url_file, not both\n"


FIXED_EDGE = "[[books.basis.prices]]\nbase = 'X'\nquote = 'USDT'\nfixed = 1\n"


def expect_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    """`text` fails `check-config` with exit 2 and exactly the one error `line`."""
    code, err = check(tmp_path, text, capsys)
    assert (code, err) == (EXIT_USAGE, f"config error: {line}\n")


def test_config_file_in_utf16_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "equity.toml"
    path.write_text(BOOK, encoding="utf-16")  # what a Windows editor may save
    assert main(["check-config", "--config", str(path)]) == EXIT_USAGE
    assert capsys.readouterr().err == f"config error: {path}: not UTF-8 text (save it as UTF-8)\n"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "Input should be a finite number"),
        ("nan", "Input should be a finite number"),
        ("1e15", "Input should be less than or equal to 86400"),
    ],
)
def test_interval_seconds_that_would_overflow_a_timedelta_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    # accepted before, then /healthz and /readyz answered 500 forever
    text = f"interval_seconds = {value}\n" + BOOK
    expect_one_error(tmp_path, capsys, text, f"interval_seconds: {message}")


def test_keep_all_days_beyond_ten_years_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # accepted by check-config before, then `run` died with a traceback
    text = "keep_all_days = 1e9\n" + BOOK
    expect_one_error(
        tmp_path, capsys, text, "keep_all_days: Input should be less than or equal to 3650"
    )


@pytest.mark.parametrize("field", ["base = 'X'", "quote = 'USDT'"])
def test_an_empty_price_symbol_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    side = field.split(" = ")[0]
    text = BOOK + FIXED_EDGE.replace(field, f"{side} = ''")
    line = f"books.basis.prices[0].{side}: String should have at least 1 character"
    expect_one_error(tmp_path, capsys, text, line)


TOKEN_ERROR = (
    "http.bearer_token: must be one or more visible ASCII characters, no spaces "
    "(omit it for no token)"
)


@pytest.mark.parametrize(
    "http",
    [
        pytest.param("bearer_token = ''", id="empty"),
        pytest.param("bearer_token = 'two words'", id="a-space"),
        pytest.param("bearer_token = 'jeton-\u00e9t\u00e9'", id="not-ascii"),
        pytest.param("bearer_token_file = '{blank}'", id="blank-file"),
    ],
)
def test_an_empty_or_unsendable_bearer_token_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], http: str
) -> None:
    # accepted before, and then nobody could authenticate
    blank = tmp_path / "blank"
    blank.write_text("\n")
    text = BOOK + "[http]\n" + http.format(blank=blank) + "\n"
    expect_one_error(tmp_path, capsys, text, TOKEN_ERROR)  # exactly: the token is not echoed


def in_top(line: str) -> str:
    return line + "\n" + BOOK


def in_book(line: str) -> str:
    return BOOK.replace("threshold_percent = 0.1\n", "") + line + "\n"


def in_venue(field: str) -> str:
    return BOOK.replace('name = "demo"}', f'name = "demo", {field}}}')


def in_edge(line: str) -> str:
    return BOOK + FIXED_EDGE + line + "\n"


def in_webhook(line: str) -> str:
    return WEBHOOK + line + "\n"


LE = "Input should be less than or equal to"
VENUE = "books.basis.venues[0].demo"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (in_top("interval_seconds = 86401"), f"interval_seconds: {LE} 86400"),
        (in_top("debounce_seconds = 61"), f"debounce_seconds: {LE} 60"),
        (in_top("keep_all_days = 3651"), f"keep_all_days: {LE} 3650"),
        (in_top("callback_timeout_seconds = 3601"), f"callback_timeout_seconds: {LE} 3600"),
        (in_top("stale_after_seconds = 604801"), f"stale_after_seconds: {LE} 604800"),
        (in_book("threshold_percent = 100.1"), f"books.basis.threshold_percent: {LE} 100"),
        (
            in_book("threshold_floor = 1e30"),
            "books.basis.threshold_floor: Input should be less than 1E+30",
        ),
        (
            in_book("venue_max_age_seconds = 604801"),
            f"books.basis.venue_max_age_seconds: {LE} 604800",
        ),
        (in_book("max_deviation_bps = 10001"), f"books.basis.max_deviation_bps: {LE} 10000"),
        (in_book("quote_cache_seconds = 86401"), f"books.basis.quote_cache_seconds: {LE} 86400"),
        (
            in_book("record_interval_seconds = 86401"),
            f"books.basis.record_interval_seconds: {LE} 86400",
        ),
        (in_venue("interval_seconds = 86401"), f"{VENUE}.interval_seconds: {LE} 86400"),
        (in_venue("timeout_seconds = 3601"), f"{VENUE}.timeout_seconds: {LE} 3600"),
        (in_venue("max_age_seconds = 604801"), f"{VENUE}.max_age_seconds: {LE} 604800"),
        (in_venue("keepalive_seconds = 86401"), f"{VENUE}.keepalive_seconds: {LE} 86400"),
        (
            in_edge("max_age_seconds = 604801"),
            f"books.basis.prices[0].max_age_seconds: {LE} 604800",
        ),
        (
            in_edge("fixed = 1e30").replace("fixed = 1\n", ""),
            "books.basis.prices[0].fixed: Input should be less than 1E+30",
        ),
        (
            in_webhook("timeout_seconds = 3601"),
            f"books.basis.webhooks[0].timeout_seconds: {LE} 3600",
        ),
        (
            in_webhook("max_backoff_seconds = 86401"),
            f"books.basis.webhooks[0].max_backoff_seconds: {LE} 86400",
        ),
    ],
)
def test_every_number_has_an_upper_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    expect_one_error(tmp_path, capsys, text, line)


def test_every_upper_bound_itself_is_accepted(tmp_path: Path) -> None:
    text = in_top(
        "interval_seconds = 86400\ndebounce_seconds = 60\nkeep_all_days = 3650\n"
        "callback_timeout_seconds = 3600\nstale_after_seconds = 604800"
    )
    text = text.replace(
        '{kind = "demo", name = "demo"}',
        "{kind = 'demo', name = 'demo', interval_seconds = 86400, timeout_seconds = 3600, "
        "max_age_seconds = 604800, keepalive_seconds = 86400}",
    )
    text = text.replace("threshold_percent = 0.1\n", "") + (
        "threshold_percent = 100\nthreshold_floor = 999999999999999999999999999999.99\n"
        "venue_max_age_seconds = 604800\nmax_deviation_bps = 10000\n"
        "quote_cache_seconds = 86400\nrecord_interval_seconds = 86400\n"
        "[[books.basis.prices]]\nbase = 'ETH'\nquote = 'USDT'\nsources = ['demo']\n"
        "max_age_seconds = 604800\n"
    )
    settings = load_settings(write(tmp_path, text))
    assert settings.keep_all_days == 3650
    book = settings.books["basis"]
    assert book.threshold_floor == Decimal("999999999999999999999999999999.99")
    assert book.venues[0].interval_seconds == 86400


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (in_top("debounce_seconds = nan"), "debounce_seconds"),
        (in_top("keep_all_days = inf"), "keep_all_days"),
        (in_book("threshold_percent = nan"), "books.basis.threshold_percent"),
        (in_book("threshold_floor = inf"), "books.basis.threshold_floor"),
        (in_book("quote_cache_seconds = inf"), "books.basis.quote_cache_seconds"),
        (in_venue("keepalive_seconds = inf"), f"{VENUE}.keepalive_seconds"),
        (in_edge("max_age_seconds = -inf"), "books.basis.prices[0].max_age_seconds"),
    ],
)
def test_non_finite_numbers_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    expect_one_error(tmp_path, capsys, text, f"{line}: Input should be a finite number")


@pytest.mark.parametrize(
    ("value", "line"),
    [
        (-1, "books.basis.quote_cache_seconds: Input should be greater than or equal to 0"),
        (86401, f"books.basis.quote_cache_seconds: {LE} 86400"),
    ],
)
def test_quote_cache_seconds_is_unset_or_between_zero_and_a_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: int, line: str
) -> None:
    assert load_settings(write(tmp_path, BOOK)).books["basis"].quote_cache_seconds is None
    zero = load_settings(write(tmp_path, in_book("quote_cache_seconds = 0")))
    assert zero.books["basis"].quote_cache_seconds == 0
    expect_one_error(tmp_path, capsys, in_book(f"quote_cache_seconds = {value}"), line)


@pytest.mark.parametrize(
    ("assets", "line"),
    [
        ("['']", "books.basis.ignore_assets[0]: String should have at least 1 character"),
        ("['PEPE', ' ']", "books.basis.ignore_assets[1]: String should match pattern '^\\S+$'"),
        ("['PEPE', 'SHIB', 'PEPE']", "books.basis.ignore_assets: lists PEPE more than once"),
    ],
)
def test_ignore_assets_must_be_non_empty_unique_symbols(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], assets: str, line: str
) -> None:
    good = load_settings(write(tmp_path, in_book("ignore_assets = ['PEPE', 'SHIB']")))
    assert good.books["basis"].ignore_assets == ("PEPE", "SHIB")
    expect_one_error(tmp_path, capsys, in_book(f"ignore_assets = {assets}"), line)


STALE = "or the data goes stale between two refreshes"


def test_a_quote_cache_at_or_above_an_edge_max_age_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edge = "[[books.basis.prices]]\nbase = 'ETH'\nquote = 'USDT'\nsources = ['demo']\n"
    below = in_book("quote_cache_seconds = 29.5") + edge + "max_age_seconds = 30\n"
    assert load_settings(write(tmp_path, below)).books["basis"].quote_cache_seconds == 29.5
    text = in_book("quote_cache_seconds = 30") + FIXED_EDGE + edge + "max_age_seconds = 30\n"
    expect_one_error(
        tmp_path,
        capsys,
        text,
        "books.basis.quote_cache_seconds: 30 must be below "
        f"books.basis.prices[1].max_age_seconds (30), {STALE}",
    )


def test_a_fixed_rate_edge_is_not_held_to_the_quote_cache(tmp_path: Path) -> None:
    text = in_book("quote_cache_seconds = 600") + FIXED_EDGE + "max_age_seconds = 60\n"
    assert load_settings(write(tmp_path, text)).books["basis"].prices[0].max_age_seconds == 60


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            in_book("venue_max_age_seconds = 5"),  # the demo venue polls every 5 s by default
            "books.basis.venues[0].interval_seconds: 5 must be below "
            f"books.basis.venue_max_age_seconds (5), {STALE}",
            id="the-book's-max-age",
        ),
        pytest.param(
            with_venue(
                "{kind = 'manual', name = 'ops', path = 'ops.toml', interval_seconds = 90,"
                " max_age_seconds = 60}"
            ),
            "books.basis.venues[1].interval_seconds: 90 must be below "
            f"books.basis.venues[1].max_age_seconds (60), {STALE}",
            id="the-venue's-own-max-age",
        ),
    ],
)
def test_a_venue_interval_at_or_above_its_max_age_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: str
) -> None:
    expect_one_error(tmp_path, capsys, text, line)


def test_a_venue_max_age_overrides_the_book_s_for_the_interval_check(tmp_path: Path) -> None:
    venue = "{kind = 'manual', name = 'ops', path = 'ops.toml', interval_seconds = 600, "
    text = with_venue(venue + "max_age_seconds = 3600}") + "venue_max_age_seconds = 300\n"
    assert load_settings(write(tmp_path, text)).books["basis"].venues[1].interval_seconds == 600


def test_a_config_file_saved_with_a_utf8_byte_order_mark_is_read(tmp_path: Path) -> None:
    config = tmp_path / "bom.toml"
    text = '[books.b]\nshare_class = "USDT"\n[[books.b.venues]]\nkind = "demo"\nname = "d"\n'
    config.write_bytes(codecs.BOM_UTF8 + text.encode())
    assert load_settings(config).books["b"].share_class.value == "USDT"
