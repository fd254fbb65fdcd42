"""Every setting's parse, good values and bad, with the exact message a bad one gets.

tests/test_settings.py covers FLASH_METRICS' spellings, several bad values reported at once and a
few defaults; this file goes through the rest one variable at a time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.settings import PLATFORM_ARTIFACT, ServerKind, Settings, SettingsError


def _error(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    return str(caught.value)


NOT_INT, NOT_NUMBER = "not an integer", "not a number"
POSITIVE, NON_NEGATIVE, PORT = (
    "must be greater than 0",
    "must be 0 or greater",
    "not a TCP port (1-65535)",
)

# variable, attribute, a good value, what it parses to, bad values with their problems
NUMBERS = [
    ("PORT", "port", "9000", 9000, [("x", NOT_INT), ("0", PORT), ("65536", PORT)]),
    ("PORT_HEALTH", "health_port", "9001", 9001, [("80.5", NOT_INT), ("70000", PORT)]),
    (
        "FLASH_ARTIFACT_MAX_BYTES",
        "artifact_max_bytes",
        "1024",
        1024,
        [("1e9", NOT_INT), ("0", POSITIVE)],
    ),
    ("FLASH_ARTIFACT_MAX_MEMBERS", "artifact_max_members", "10", 10, [("-1", POSITIVE)]),
    ("FLASH_MAX_CONCURRENCY", "max_concurrency", "0", 0, [("-1", NON_NEGATIVE), ("two", NOT_INT)]),
    ("FLASH_MAX_PENDING", "max_pending", "0", 0, [("-5", NON_NEGATIVE)]),
    ("FLASH_SYNC_THREADS", "sync_threads", "4", 4, [("0", POSITIVE), ("4.0", NOT_INT)]),
    (
        "FLASH_REQUEST_TIMEOUT",
        "request_timeout",
        "0",
        0.0,
        [("-1", NON_NEGATIVE), ("1m", NOT_NUMBER)],
    ),
    ("FLASH_MAX_QUEUE_WAIT", "max_queue_wait", "2.5", 2.5, [("-0.1", NON_NEGATIVE)]),
    ("FLASH_MAX_BODY_BYTES", "max_body_bytes", "100", 100, [("0", POSITIVE), ("30MB", NOT_INT)]),
    ("FLASH_MAX_FORM_FIELDS", "max_form_fields", "5", 5, [("0", POSITIVE)]),
    ("FLASH_MAX_FORM_FILES", "max_form_files", "5", 5, [("0", POSITIVE)]),
    ("FLASH_MAX_FORM_PART_BYTES", "max_form_part_bytes", "5", 5, [("0", POSITIVE)]),
    ("FLASH_GRACEFUL_TIMEOUT", "graceful_timeout", "0", 0.0, [("-1", NON_NEGATIVE)]),
    ("FLASH_DRAIN_QUIET", "drain_quiet", "0.2", 0.2, [("soon", NOT_NUMBER)]),
    ("FLASH_KEEP_ALIVE_TIMEOUT", "keep_alive_timeout", "5", 5.0, [("0", POSITIVE)]),
    ("FLASH_MAX_HEADER_BYTES", "max_header_bytes", "1024", 1024, [("0", POSITIVE)]),
    ("FLASH_MAX_HEADERS", "max_headers", "10", 10, [("0", POSITIVE)]),
    ("FLASH_HEADER_TIMEOUT", "header_timeout", "1.5", 1.5, [("0", POSITIVE)]),
    ("FLASH_BODY_TIMEOUT", "body_timeout", "1", 1.0, [("0", POSITIVE)]),
]


@pytest.mark.parametrize(
    "name, attribute, good, parsed", [n[:4] for n in NUMBERS], ids=[n[0] for n in NUMBERS]
)
def test_a_number_setting_parses_a_good_value(name, attribute, good, parsed):
    value = getattr(Settings.from_env({name: f" {good} "}), attribute)  # surrounding blanks ignored
    assert value == parsed and type(value) is type(parsed)


@pytest.mark.parametrize(
    "name, bad, problem",
    [(n[0], bad, problem) for n in NUMBERS for bad, problem in n[4]],
    ids=[f"{n[0]}={bad}" for n in NUMBERS for bad, _ in n[4]],
)
def test_a_number_setting_refuses_a_bad_value(name, bad, problem):
    assert _error({name: bad}) == f"invalid settings: {name}={bad!r}: {problem}"


def test_an_empty_value_is_the_default():
    settings = Settings.from_env(
        {"PORT": "", "FLASH_SYNC_THREADS": "  ", "LOG_LEVEL": "", "FLASH_OPENAPI": ""}
    )
    assert (settings.port, settings.sync_threads, settings.log_level, settings.openapi) == (
        8000,
        40,
        "INFO",
        True,
    )


def test_the_health_port_defaults_to_the_port():
    settings = Settings.from_env({"PORT": "9000"})
    assert (settings.health_port, settings.separate_health_port) == (9000, False)
    assert Settings.from_env({"PORT": "9000", "PORT_HEALTH": "9001"}).separate_health_port


FLAGS = [
    ("FLASH_ENABLE_EXECUTE", "enable_execute"),
    ("FLASH_FAST_CPUINFO", "fast_cpuinfo"),
    ("FLASH_OPENAPI", "openapi"),
]
TRUE_SPELLINGS = ["1", "true", "yes", "on", "TRUE", "Yes", " on "]
FALSE_SPELLINGS = ["0", "false", "no", "off", "False", "NO", " off "]


@pytest.mark.parametrize("name, attribute", FLAGS)
def test_a_flag_takes_every_spelling(name, attribute):
    assert [getattr(Settings.from_env({name: v}), attribute) for v in TRUE_SPELLINGS] == [
        True
    ] * len(TRUE_SPELLINGS)
    assert [getattr(Settings.from_env({name: v}), attribute) for v in FALSE_SPELLINGS] == [
        False
    ] * len(FALSE_SPELLINGS)


@pytest.mark.parametrize("name", [name for name, _ in FLAGS] + ["FLASH_DISABLE_UNPACK"])
@pytest.mark.parametrize("bad", ["maybe", "2", "y", "enabled"])
def test_a_flag_refuses_anything_else(name, bad):
    assert (
        _error({name: bad})
        == f"invalid settings: {name}={bad!r}: expected one of 1/0, true/false, yes/no, on/off"
    )


@pytest.mark.parametrize(
    "name, attribute, good, parsed, bad, shown, allowed",
    [
        (
            "LOG_LEVEL",
            "log_level",
            "debug",
            "DEBUG",
            "verbose",
            "VERBOSE",
            "DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        ("LOG_FORMAT", "log_format", "Console", "console", "XML", "xml", "json, console"),
        (
            "FLASH_SERVER",
            "server",
            "UVICORN",
            ServerKind.UVICORN,
            "gunicorn",
            "gunicorn",
            "hypercorn, uvicorn",
        ),
    ],
)
def test_a_choice_is_case_insensitive_and_names_the_choices_when_refused(
    name, attribute, good, parsed, bad, shown, allowed
):
    assert getattr(Settings.from_env({name: good}), attribute) == parsed
    # The refused value is shown as it was compared (upper- or lower-cased).
    assert _error({name: bad}) == f"invalid settings: {name}={shown!r}: expected one of {allowed}"


def test_the_startup_hook_is_module_colon_callable():
    assert (
        Settings.from_env({"FLASH_STARTUP_HOOK": "app.hooks:load"}).startup_hook == "app.hooks:load"
    )
    for bad in ("app.hooks", ":load", "app:"):
        assert (
            _error({"FLASH_STARTUP_HOOK": bad})
            == f"invalid settings: FLASH_STARTUP_HOOK={bad!r}: expected module:callable"
        )


def test_the_execute_endpoint_is_refused_on_a_deployed_worker():
    assert _error(
        {"FLASH_ENABLE_EXECUTE": "1", "RUNPOD_ENDPOINT_ID": "e1", "FLASH_USER": "10001"}
    ) == (
        "invalid settings: FLASH_ENABLE_EXECUTE: /execute runs arbitrary code and is refused on a deployed "
        "worker (RUNPOD_ENDPOINT_ID set)"
    )
    assert Settings.from_env({"FLASH_ENABLE_EXECUTE": "1"}).enable_execute


def test_the_user_setting():
    default, given = (
        Settings.from_env({}).run_as,
        Settings.from_env({"FLASH_USER": "1234:99"}).run_as,
    )
    assert (default.uid, default.gid, given.uid, given.gid) == (10001, 10001, 1234, 99)
    assert Settings.from_env({"FLASH_USER": "root"}).run_as.is_root
    assert _error({"FLASH_USER": "root", "RUNPOD_POD_ID": "p1"}) == (
        "invalid settings: FLASH_USER='root': application code never runs as root on a deployed worker"
    )
    assert _error({"FLASH_USER": "1234:staff"}) == (
        "invalid settings: FLASH_USER='1234:staff': the group must be a number (uid:gid)"
    )
    assert _error({"FLASH_USER": "no-such-user-here"}) == (
        "invalid settings: FLASH_USER='no-such-user-here': no user named 'no-such-user-here'"
    )


def test_the_module_path_is_a_folder_or_a_dotted_module(tmp_path, monkeypatch):
    settings = Settings.from_env({"FLASH_MODULE_PATH": str(tmp_path)})
    assert (settings.module_path, settings.module_name) == (tmp_path.resolve(), None)
    assert settings.manifest_path == tmp_path.resolve() / "flash_manifest.json"
    monkeypatch.chdir(tmp_path)
    dotted = Settings.from_env({"FLASH_MODULE_PATH": "pkg.api"})
    assert dotted.module_name == "pkg.api"
    assert dotted.module_path == (Path("/app") if Path("/app").is_dir() else tmp_path).resolve()
    (tmp_path / "lb_worker").mkdir()  # a name that is also a folder is the folder
    folder = Settings.from_env({"FLASH_MODULE_PATH": "lb_worker"})
    assert (folder.module_path, folder.module_name) == ((tmp_path / "lb_worker").resolve(), None)
    manifest = Settings.from_env(
        {"FLASH_MODULE_PATH": str(tmp_path), "FLASH_MANIFEST_PATH": "m.json"}
    )
    assert manifest.manifest_path == (tmp_path / "m.json").resolve()


def test_which_artifact_is_unpacked(tmp_path):
    explicit = Settings.from_env(
        {"FLASH_ARTIFACT_PATH": str(tmp_path / "a.tar.gz"), "FLASH_ARTIFACT_WAIT": "5"}
    )
    assert (explicit.artifact_path, explicit.artifact_setting, explicit.artifact_wait) == (
        (tmp_path / "a.tar.gz").resolve(),
        "FLASH_ARTIFACT_PATH",
        0.0,
    )
    assert Settings.from_env({}).artifact_path is None  # not a deployed worker
    deployed = {"RUNPOD_ENDPOINT_ID": "e1", "FLASH_ENDPOINT_TYPE": " LB ", "FLASH_USER": "10001"}
    platform = Settings.from_env(deployed)
    assert (platform.artifact_path, platform.artifact_setting, platform.artifact_wait) == (
        Path(PLATFORM_ARTIFACT),
        "FLASH_BUILD_ARTIFACT_PATH",
        90.0,
    )
    assert Settings.from_env(
        {**deployed, "FLASH_ENDPOINT_TYPE": "", "FLASH_RESOURCE_NAME": "api"}
    ).artifact_path == Path(PLATFORM_ARTIFACT)
    assert Settings.from_env({**deployed, "FLASH_ENDPOINT_TYPE": "other"}).artifact_path is None
    assert Settings.from_env({**deployed, "FLASH_DISABLE_UNPACK": "yes"}).artifact_path is None
    moved = Settings.from_env(
        {
            **deployed,
            "FLASH_BUILD_ARTIFACT_PATH": str(tmp_path / "b.tgz"),
            "FLASH_ARTIFACT_WAIT": "3",
        }
    )
    assert (moved.artifact_path, moved.artifact_wait) == ((tmp_path / "b.tgz").resolve(), 3.0)
    assert (
        _error({"FLASH_ARTIFACT_WAIT": "-1"})
        == "invalid settings: FLASH_ARTIFACT_WAIT='-1': must be 0 or greater"
    )


def test_errors_are_joined_in_the_order_the_variables_are_read():
    assert _error({"FLASH_SYNC_THREADS": "0", "PORT": "x"}) == (
        "invalid settings: PORT='x': not an integer; FLASH_SYNC_THREADS='0': must be greater than 0"
    )
