"""Settings: defaults, flags, HEARTBEAT_<NAME> environment, and which one wins."""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from pathlib import Path

import pytest

from heartbeat_operator.settings import (
    Settings,
    SettingsError,
    add_arguments,
    build_settings,
    flag_names,
)


@pytest.fixture
def no_file(tmp_path: Path) -> Path:
    return tmp_path / "absent"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run")
    add_arguments(parser)
    return parser.parse_args(argv)


def build(argv: list[str], environ: dict[str, str] | None = None, **kwargs: Path) -> Settings:
    return build_settings(parse(argv), environ or {}, **kwargs)


def test_defaults_match_the_design(no_file: Path) -> None:
    settings = build([], namespace_file=no_file)
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8080
    assert settings.server.metrics_port == 8081
    assert settings.server.external_url == "http://127.0.0.1:8080"
    assert settings.server.internal_url is None
    assert settings.server.drain_delay == 10.0  # DESIGN 10.6
    assert settings.watching.namespaces == ()
    assert settings.watching.lease_namespace == "default"
    # DESIGN 10.8.10: the Pod name (hostname) plus a random epoch, a DNS-1123 label.
    host, _, epoch = settings.watching.identity.rpartition("-")
    assert host == socket.gethostname().lower().replace("_", "-").replace(".", "-")
    assert len(epoch) == 8 and len(settings.watching.identity) <= 63
    assert settings.watching.identity != build([], {}, namespace_file=no_file).watching.identity
    assert settings.receiver.body_limit == 10_000
    assert settings.receiver.max_body == 1024 * 1024
    assert settings.receiver.read_timeout == 10.0
    assert settings.receiver.max_connections == 1000
    assert settings.receiver.index_miss_wait == 2.0
    assert settings.receiver.max_index_waits == 64
    assert settings.receiver.write_timeout == 5.0
    assert settings.writer.writes_per_second == 5.0
    assert settings.writer.write_burst == 10
    assert settings.writer.max_waiting_pings == 50
    assert settings.writer.max_writes_in_flight == 64
    assert settings.writer.deadline_delay == 0.5
    assert settings.leadership.lease_name == "heartbeat-operator"
    assert settings.leadership.lease_duration == 8.0
    assert settings.leadership.renew_interval == 2.0
    assert settings.leadership.renew_deadline == 6.0
    assert settings.metrics.monitor_metrics == "full"
    assert settings.metrics.label_allowlist == ()
    assert settings.jobs.exit_codes is True


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.server.port = 1  # type: ignore[misc]


def test_external_url_default_follows_the_port(no_file: Path) -> None:
    settings = build(["--port", "9090"], namespace_file=no_file)
    assert settings.server.external_url == "http://127.0.0.1:9090"
    assert settings.server.internal_url is None
    assert secret_urls(settings, "tok") == {"url": "http://127.0.0.1:9090/ping/tok"}


def test_urls_lose_a_trailing_slash(no_file: Path) -> None:
    settings = build(
        ["--external-url", "https://hb.example.com/", "--internal-url", "http://svc.ns:8080/"],
        namespace_file=no_file,
    )
    assert secret_urls(settings, "t") == {
        "url": "https://hb.example.com/ping/t",
        "internal-url": "http://svc.ns:8080/ping/t",
    }


def secret_urls(settings: Settings, token: str) -> dict[str, str]:
    """The URL keys of a token Secret made with these settings (engine.secrets)."""
    from heartbeat_operator.engine.secrets import ping_urls

    return ping_urls(token, settings.server.external_url, settings.server.internal_url)


def test_every_flag_reads_its_environment_variable(no_file: Path) -> None:
    environ = {
        "HEARTBEAT_HOST": "127.0.0.1",
        "HEARTBEAT_PORT": "18080",
        "HEARTBEAT_METRICS_PORT": "18081",
        "HEARTBEAT_EXTERNAL_URL": "https://ping.example.org",
        "HEARTBEAT_INTERNAL_URL": "http://hb.ops.svc:8080",
        "HEARTBEAT_DRAIN_DELAY": "0",
        "HEARTBEAT_NAMESPACE": "ops, batch,ops",
        "HEARTBEAT_LEASE_NAMESPACE": "hb-system",
        "HEARTBEAT_IDENTITY": "replica-a",
        "HEARTBEAT_BODY_LIMIT": "2048",
        "HEARTBEAT_MAX_BODY": "4096",
        "HEARTBEAT_READ_TIMEOUT": "3.5",
        "HEARTBEAT_MAX_CONNECTIONS": "10",
        "HEARTBEAT_WRITE_TIMEOUT": "1",
        "HEARTBEAT_WRITES_PER_SECOND": "2",
        "HEARTBEAT_WRITE_BURST": "4",
        "HEARTBEAT_MAX_WAITING_PINGS": "7",
        "HEARTBEAT_MAX_WRITES_IN_FLIGHT": "8",
        "HEARTBEAT_LEASE_NAME": "hb-lease",
        "HEARTBEAT_MONITOR_METRICS": "minimal",
        "HEARTBEAT_METRICS_LABEL": "team,tier",
        "HEARTBEAT_EXIT_CODES": "false",
    }
    settings = build([], environ, namespace_file=no_file)
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 18080
    assert settings.server.metrics_port == 18081
    assert settings.server.external_url == "https://ping.example.org"
    assert settings.server.internal_url == "http://hb.ops.svc:8080"
    assert settings.server.drain_delay == 0.0  # 0 is allowed: unready at once, no wait
    assert settings.watching.namespaces == ("ops", "batch")
    assert settings.watching.lease_namespace == "hb-system"
    assert settings.watching.identity == "replica-a"
    assert settings.receiver.body_limit == 2048
    assert settings.receiver.max_body == 4096
    assert settings.receiver.read_timeout == 3.5
    assert settings.receiver.max_connections == 10
    assert settings.receiver.write_timeout == 1.0
    assert settings.writer.writes_per_second == 2.0
    assert settings.writer.write_burst == 4
    assert settings.writer.max_waiting_pings == 7
    assert settings.writer.max_writes_in_flight == 8
    assert settings.leadership.lease_name == "hb-lease"
    assert settings.metrics.monitor_metrics == "minimal"
    assert settings.metrics.label_allowlist == ("team", "tier")
    assert settings.jobs.exit_codes is False


def test_flag_wins_over_environment(no_file: Path) -> None:
    environ = {
        "HEARTBEAT_PORT": "18080",
        "HEARTBEAT_NAMESPACE": "from-env",
        "HEARTBEAT_EXIT_CODES": "false",
    }
    settings = build(
        ["--port", "9000", "--namespace", "a", "--namespace", "b", "--exit-codes"],
        environ,
        namespace_file=no_file,
    )
    assert settings.server.port == 9000
    assert settings.server.external_url == "http://127.0.0.1:9000"
    assert settings.watching.namespaces == ("a", "b")
    assert settings.jobs.exit_codes is True


def test_empty_environment_value_means_unset(no_file: Path) -> None:
    settings = build([], {"HEARTBEAT_PORT": "", "HEARTBEAT_NAMESPACE": " "}, namespace_file=no_file)
    assert settings.server.port == 8080
    assert settings.watching.namespaces == ()


def test_lease_namespace_from_pod_namespace_env(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("from-file\n")
    settings = build([], {"POD_NAMESPACE": "from-env"}, namespace_file=namespace_file)
    assert settings.watching.lease_namespace == "from-env"


def test_lease_namespace_from_serviceaccount_file(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("from-file\n")
    settings = build([], {}, namespace_file=namespace_file)
    assert settings.watching.lease_namespace == "from-file"


def test_lease_namespace_flag_wins_over_pod_namespace(tmp_path: Path) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("from-file\n")
    settings = build(
        ["--lease-namespace", "chosen"],
        {"POD_NAMESPACE": "from-env"},
        namespace_file=namespace_file,
    )
    assert settings.watching.lease_namespace == "chosen"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEARTBEAT_PORT", "http"),
        ("HEARTBEAT_PORT", "70000"),
        ("HEARTBEAT_BODY_LIMIT", "-1"),
        ("HEARTBEAT_READ_TIMEOUT", "0"),
        ("HEARTBEAT_EXTERNAL_URL", "ftp://x"),
        ("HEARTBEAT_EXTERNAL_URL", "not a url"),
        ("HEARTBEAT_MONITOR_METRICS", "some"),
        ("HEARTBEAT_EXIT_CODES", "maybe"),
        ("HEARTBEAT_DRAIN_DELAY", "-1"),
    ],
)
def test_bad_environment_value_names_the_variable(no_file: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        build([], {name: value}, namespace_file=no_file)


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "x"],
        ["--metrics-port", "-5"],
        ["--monitor-metrics", "everything"],
        ["--external-url", "127.0.0.1:8080"],
        ["--write-timeout", "nan"],
        ["--drain-delay", "nan"],
    ],
)
def test_bad_flag_value_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_body_limit_above_hard_cap_is_refused(no_file: Path) -> None:
    with pytest.raises(SettingsError, match="body limit"):
        build(["--body-limit", "2000", "--max-body", "1000"], namespace_file=no_file)


def test_same_port_twice_is_refused(no_file: Path) -> None:
    with pytest.raises(SettingsError, match="metrics-port"):
        build(["--port", "9000", "--metrics-port", "9000"], namespace_file=no_file)


def test_design_flags_exist() -> None:
    for flag in (
        "--host",
        "--port",
        "--metrics-port",
        "--external-url",
        "--internal-url",
        "--namespace",
        "--lease-namespace",
        "--monitor-metrics",
        "--metrics-label",
        "--body-limit",
    ):
        assert flag in flag_names()


def test_build_settings_without_args_uses_environment_only(no_file: Path) -> None:
    settings = build_settings(None, {"HEARTBEAT_PORT": "1234"}, namespace_file=no_file)
    assert settings.server.port == 1234


# --- CronJob auto-wiring (issue 12, items 4 and 5) ----------------------------------------


def test_coverage_by_policy_and_log_capture_are_off_by_default(no_file: Path) -> None:
    settings = build([], namespace_file=no_file)
    assert settings.jobs.namespace_selector is None
    assert settings.jobs.capture_logs is False


def test_namespace_selector_from_flag_and_environment(no_file: Path) -> None:
    flag = build(
        ["--auto-wire-namespace-selector", "team in (a,b),!legacy"], namespace_file=no_file
    )
    selector = flag.jobs.namespace_selector
    assert selector is not None
    assert selector.matches({"team": "a"})
    assert not selector.matches({"team": "a", "legacy": "1"})
    assert not selector.matches({"team": "c"})
    env = build(
        [],
        {"HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR": "heartbeat.dev/monitor-cronjobs=true"},
        namespace_file=no_file,
    )
    assert str(env.jobs.namespace_selector) == "heartbeat.dev/monitor-cronjobs=true"
    # the flag wins over the environment
    both = build(
        ["--auto-wire-namespace-selector", "team=a"],
        {"HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR": "team=b"},
        namespace_file=no_file,
    )
    assert str(both.jobs.namespace_selector) == "team=a"


def test_empty_namespace_selector_means_off(no_file: Path) -> None:
    assert (
        build(
            ["--auto-wire-namespace-selector", ""], namespace_file=no_file
        ).jobs.namespace_selector
        is None
    )
    environ = {"HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR": "  "}
    assert build([], environ, namespace_file=no_file).jobs.namespace_selector is None


def test_invalid_namespace_selector_in_environment_is_one_sentence(no_file: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        build([], {"HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR": "team in (a"}, namespace_file=no_file)
    assert str(caught.value) == (
        "HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR='team in (a': not a label selector: "
        "the list after 'team in' lacks its closing ')'"
    )


def test_invalid_namespace_selector_flag_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["--auto-wire-namespace-selector", "team is a"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --auto-wire-namespace-selector: 'team is a': not a label selector" in err


def test_capture_logs_from_flag_and_environment(no_file: Path) -> None:
    assert build(["--capture-logs"], namespace_file=no_file).jobs.capture_logs is True
    on = build([], {"HEARTBEAT_CAPTURE_LOGS": "true"}, namespace_file=no_file)
    assert on.jobs.capture_logs is True
    off = build(["--no-capture-logs"], {"HEARTBEAT_CAPTURE_LOGS": "true"}, namespace_file=no_file)
    assert off.jobs.capture_logs is False
    with pytest.raises(SettingsError, match="HEARTBEAT_CAPTURE_LOGS"):
        build([], {"HEARTBEAT_CAPTURE_LOGS": "sometimes"}, namespace_file=no_file)


@pytest.mark.parametrize("given", ["debug", "DEBUG", "Debug", "warning"])
def test_log_level_in_any_case(given: str, no_file: Path) -> None:
    # Issue 13 item 10: the chart's own example `extraArgs: ["--log-level=debug"]` exited 2.
    assert build([f"--log-level={given}"], namespace_file=no_file).server.log_level == given.upper()
    # Like every flag, also HEARTBEAT_<NAME> (DESIGN 9.2); the flag wins.
    from_env = build([], {"HEARTBEAT_LOG_LEVEL": given}, namespace_file=no_file)
    assert from_env.server.log_level == given.upper()
    both = build(["--log-level=error"], {"HEARTBEAT_LOG_LEVEL": given}, namespace_file=no_file)
    assert both.server.log_level == "ERROR"


def test_an_unknown_log_level_is_refused(capsys: pytest.CaptureFixture[str], no_file: Path) -> None:
    from heartbeat_operator import running

    parser = argparse.ArgumentParser()
    running.configure(parser)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--log-level=loud"])
    assert exit_info.value.code == 2
    assert "--log-level" in capsys.readouterr().err
    with pytest.raises(SettingsError, match="HEARTBEAT_LOG_LEVEL='loud': must be one of"):
        build([], {"HEARTBEAT_LOG_LEVEL": "loud"}, namespace_file=no_file)


def test_webhook_is_off_until_given_a_certificate(no_file: Path) -> None:
    settings = build([], namespace_file=no_file)
    assert settings.webhook.port == 9443
    assert not settings.webhook.enabled


def test_webhook_flags_and_environment(no_file: Path) -> None:
    environ = {
        "HEARTBEAT_WEBHOOK_PORT": "10443",
        "HEARTBEAT_WEBHOOK_CERT_FILE": "/tls/tls.crt",
        "HEARTBEAT_WEBHOOK_KEY_FILE": "/tls/tls.key",
    }
    settings = build(["--webhook-port", "11443"], environ, namespace_file=no_file)
    assert settings.webhook.port == 11443
    assert settings.webhook.cert_file == Path("/tls/tls.crt")
    assert settings.webhook.key_file == Path("/tls/tls.key")
    assert settings.webhook.enabled


def test_webhook_certificate_without_key_is_refused(no_file: Path) -> None:
    with pytest.raises(SettingsError, match="go together"):
        build(["--webhook-cert-file", "/tls/tls.crt"], namespace_file=no_file)


def test_webhook_port_must_differ_from_the_others(no_file: Path) -> None:
    pair = ["--webhook-cert-file", "/c", "--webhook-key-file", "/k"]
    with pytest.raises(SettingsError, match="webhook-port 8081"):
        build([*pair, "--webhook-port", "8081"], namespace_file=no_file)


def test_the_identity_is_a_lease_name_suffix_of_at_most_63_characters() -> None:
    """DESIGN 10.8.10: heartbeat-replica-<identity> must be a valid Lease name."""
    from heartbeat_operator.settings import default_identity

    long = default_identity("My_Very.Long-Pod-Name-" + "x" * 80)
    assert len(long) <= 63 and long.startswith("my-very-long-pod-name-xx")
    assert long == long.lower() and long[0].isalnum() and long[-1].isalnum()
    with pytest.raises(SettingsError, match="DNS-1123"):
        build([], {"HEARTBEAT_IDENTITY": "Replica_A"})


def test_pause_api_on_and_badges_off_by_default(no_file: Path) -> None:
    # Issue 16: the pause API asks the API server for every decision, so it grants
    # nothing by being on; badges are public to whoever reaches the metrics port.
    settings = build([], namespace_file=no_file)
    assert settings.receiver.pause_api is True
    assert settings.receiver.pause_api_audience == "heartbeat-operator"
    assert settings.metrics.badges is False
    flipped = build(["--no-pause-api", "--badges"], namespace_file=no_file)
    assert (flipped.receiver.pause_api, flipped.metrics.badges) == (False, True)


# --- settings once (issue 14 item 5) ---------------------------------------------------


def test_the_writer_and_lease_configs_are_the_settings(no_file: Path) -> None:
    from heartbeat_operator.engine.writing import WriterConfig
    from heartbeat_operator.kube.leasing import LeaseConfig

    argv = ["--writes-per-second", "7", "--write-burst", "3", "--max-waiting-pings", "9"]
    argv += ["--max-writes-in-flight", "11", "--write-timeout", "1.5", "--index-miss-wait", "0.5"]
    argv += ["--max-index-waits", "13", "--lease-name", "hb", "--lease-namespace", "ops"]
    argv += ["--identity", "replica-1"]
    settings = build(argv, namespace_file=no_file)
    writer = WriterConfig.from_settings(settings)
    assert (writer.writes_per_second, writer.write_burst, writer.max_waiting_pings) == (7, 3, 9)
    assert (writer.max_writes_in_flight, writer.write_timeout, writer.index_miss_wait) == (
        11,
        1.5,
        0.5,
    )
    assert (writer.max_index_waits, writer.instance) == (13, "replica-1")
    lease = LeaseConfig.from_settings(settings)
    assert (lease.namespace, lease.name) == ("ops", "hb")
    # DESIGN 9.1: the leadership Lease's holder is <hostname>_<pid>, whatever --identity
    # (10.8.10's replica identity names the replica's own Lease and journal).
    assert lease.identity == f"{socket.gethostname()}_{os.getpid()}"
    # the engine's own defaults are the settings' defaults, not copies of them
    defaults = Settings()
    assert WriterConfig() == dataclasses.replace(WriterConfig.from_settings(defaults), instance="")
    assert LeaseConfig("ns", "name", "me").renew_deadline == defaults.leadership.renew_deadline


def test_help_shows_each_fields_own_default(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="run")
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "status writes per second per monitor (5) [env HEARTBEAT_WRITES_PER_SECOND]" in text
    assert "bytes: larger bodies get 413 (1048576)" in text
    assert "list a failed Job's Pods for its exit code (on)" in text
    assert "index-miss waits at once (64)" in text


def test_the_journal_is_on_by_default_and_set_by_flag_or_environment(no_file: Path) -> None:
    # DESIGN 10.7 (issue 15): a 200 means stored in a journal Secret, unless turned off.
    default = build([], {}, namespace_file=no_file).journal
    assert default.enabled is True
    assert default.max_bytes < 512 * 1024
    assert default.absorb_interval == 0.2  # DESIGN 9.8's 5 writes/s per monitor
    assert build(["--no-journal"], namespace_file=no_file).journal.enabled is False
    assert (
        build([], {"HEARTBEAT_JOURNAL": "false"}, namespace_file=no_file).journal.enabled is False
    )
    on = build(
        [],
        {
            "HEARTBEAT_JOURNAL": "true",
            "HEARTBEAT_JOURNAL_MAX_BYTES": "100000",
            "HEARTBEAT_ABSORB_INTERVAL": "2.5",
            "HEARTBEAT_ABSORB_WRITES_PER_SECOND": "50",
        },
        namespace_file=no_file,
    ).journal
    assert (on.enabled, on.max_bytes, on.absorb_interval, on.absorb_writes_per_second) == (
        True,
        100000,
        2.5,
        50.0,
    )
    off = build(["--no-journal"], {"HEARTBEAT_JOURNAL": "true"}, namespace_file=no_file)
    assert off.journal.enabled is False


def test_a_journal_of_512_kib_or_more_is_refused(no_file: Path) -> None:
    with pytest.raises(SettingsError, match="512 KiB"):
        build(["--journal-max-bytes", str(512 * 1024)], namespace_file=no_file)


def test_a_replica_may_hold_many_small_journal_secrets(no_file: Path) -> None:
    # Issue 15: flushes rewrite only the newest Secret, so Secrets stay small and many.
    default = build([], {}, namespace_file=no_file).journal
    assert (default.max_bytes, default.max_segments) == (64 * 1024, 256)
    assert default.absorb_writes_per_second == 20.0
    given = build(["--journal-max-secrets", "8"], namespace_file=no_file).journal
    assert given.max_segments == 8


def test_with_the_journal_a_body_limit_whose_ping_could_not_fit_a_secret_is_refused(
    no_file: Path,
) -> None:
    flags = ["--journal", "--body-limit", "100000", "--max-body", "1048576"]
    with pytest.raises(SettingsError, match="over 512 KiB"):
        build(flags, namespace_file=no_file)
    with pytest.raises(SettingsError, match="over 512 KiB"):
        build(flags[1:], namespace_file=no_file)  # the journal is on by default
    without = ["--no-journal", *flags[1:]]
    assert build(without, namespace_file=no_file).receiver.body_limit == 100000
