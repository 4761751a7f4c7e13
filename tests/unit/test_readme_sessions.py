"""The README session replayer (tests/support/sessions.py): what it reads as a command, what
it skips, and what counts as the same shape (issue 16 "Tests", issue 17 item 6)."""

from __future__ import annotations

from tests.support import sessions

README = """\
Intro.

```console
$ kubectl apply -f - <<'YAML'
kind: Namespace
YAML
namespace/demo created
$ URL=$(kubectl heartbeat url -n demo x)
$ echo "$URL"
http://127.0.0.1:8080/ping/<token>

```

<!-- not replayed: a watch never ends -->
```console
$ kubectl get hbm -w
```

```sh
$ not a session
```
"""


def test_parse_reads_heredocs_outputs_and_the_not_replayed_marker() -> None:
    replayed, watch = sessions.parse(README)
    assert replayed.replayed and not watch.replayed
    assert watch.skipped_because == "a watch never ends"
    assert [c.text for c in replayed.commands] == [
        "kubectl apply -f - <<'YAML'\nkind: Namespace\nYAML",
        "URL=$(kubectl heartbeat url -n demo x)",
        'echo "$URL"',
    ]
    assert replayed.commands[0].expected == ["namespace/demo created"]
    assert replayed.commands[1].expected == []
    assert replayed.commands[2].expected == ["http://127.0.0.1:8080/ping/<token>"]


def test_times_ages_tokens_and_widths_do_not_change_the_shape() -> None:
    expected = [
        "NAME     STATE     REASON         LAST PING   NEXT DUE",
        "report   Healthy   PingReceived   0s ago      Mon 2026-12-07 03:25 CET",
        "url http://127.0.0.1:8080/ping/<token> at 2026-11-25T04:48:47.016Z in 0.074s",
    ]
    actual = (
        "NAME     STATE     REASON         LAST PING   NEXT DUE\n"
        "report   Healthy   PingReceived   12s ago     Tue 2026-12-08 09:30 EST\n"
        "url http://127.0.0.1:40123/ping/AbC_d-0123456789abcdefghijklmnopqrstuvwxyz0 "
        "at 2026-12-07T02:20:18Z in 1.5s\n"
    )
    assert sessions.same_shape("kubectl heartbeat list", expected, actual) is None


def test_a_different_state_name_or_column_is_a_different_shape() -> None:
    expected = ["NAME     STATE   REASON", "report   Down    Failed"]
    assert sessions.same_shape("x", expected, "NAME STATE REASON\nreport Down Missed\n")
    assert sessions.same_shape("x", expected, "NAME STATE\nreport Down Failed\n")
    assert sessions.same_shape("x", expected, "NAME STATE REASON\n")


def test_ellipsis_lines_events_order_and_cut_columns() -> None:
    described = ["Name: x", "...", "State: Down"]
    assert sessions.same_shape("d", described, "Name: x\na\nb\nState: Down\n") is None
    assert sessions.same_shape("d", described, "Name: x\nState: Healthy\n")
    events = ["LAST SEEN TYPE REASON", "2s Normal FirstPing", "1s Warning Failed"]
    shuffled = "LAST SEEN TYPE REASON\n1s Warning Failed\n3s Normal FirstPing\n"
    assert sessions.same_shape("kubectl get events", events, shuffled) is None
    assert sessions.same_shape("kubectl get pods", events, shuffled)
    cut = ["Down Missed no ping since Mon 2026-12-07 02:20:34 UTC; expected by Mon 2026-12-07 0…"]
    longer = "Down Missed no ping since Mon 2026-12-07 02:20:34 UTC; expected by Mon 2026-1…\n"
    assert sessions.same_shape("d", cut, longer) is None


def test_only_reads_are_polled() -> None:
    assert sessions.rereadable("kubectl -n demo get events --field-selector reason=Failed")
    assert sessions.rereadable('kubectl heartbeat list -n demo; echo "exit status $?"')
    assert not sessions.rereadable("kubectl -n demo apply -f x.yaml")
    assert not sessions.rereadable("kubectl heartbeat pause -n demo x --for 30m")
    assert not sessions.rereadable("kubectl get hbm x | xargs kubectl delete")
