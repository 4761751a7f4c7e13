"""``kubectl heartbeat``: see, ping, pause and wrap from the terminal (issue 16 item 1).

Installed as the console script ``kubectl-heartbeat``; kubectl finds any executable of
that name on ``PATH`` and runs it for ``kubectl heartbeat ...`` (docs/cli.md).

Exit status: 0 done; 1 ``list`` showed a monitor that is Down; 2 an error (one sentence
on stderr: no such monitor, no permission, no Secret, the API or receiver unreachable) or
bad usage; ``run`` exits with its command's status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

PROG = "kubectl heartbeat"
ERROR = 2


def _duration(text: str) -> timedelta:
    from heartbeat_operator.domain.durations import DurationError, parse_duration

    try:
        return parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _exit_code(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{text!r} is not an exit code 0-255")
    return value


def _connection_flags(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "-n", "--namespace", default=default, help="the namespace (default: the kubeconfig's)"
    )
    parser.add_argument(
        "--context", default=default, help="the kubeconfig context to use (default: current)"
    )
    parser.add_argument(
        "--kubeconfig", default=default, help="the kubeconfig file (default: $KUBECONFIG)"
    )


def build_parser() -> argparse.ArgumentParser:
    # kubectl's own flags go before or after the verb, as with kubectl itself
    # (`kubectl heartbeat -n ops list` and `kubectl heartbeat list -n ops`): the verbs'
    # copies only set what was given there, so one before the verb is not reset.
    common = argparse.ArgumentParser(add_help=False)
    _connection_flags(common, default=argparse.SUPPRESS)

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See, ping, pause and wrap HeartbeatMonitors (heartbeat.dev/v1alpha1).",
        epilog="Exit status: 0 ok, 1 list shows a Down monitor, 2 error; run: the command's.",
    )
    _connection_flags(parser, default=None)
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser(
        "list",
        parents=[common],
        help="monitors with state, last ping and next due time; exit 1 if any is Down",
        description="List monitors: state (coloured on a terminal), reason, last ping, the "
        "next due time in the monitor's time zone with its date, schedule or period. "
        "Exit status 1 when any listed monitor is Down.",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list every namespace")
    p.add_argument("-l", "--selector", help="label selector, e.g. team=ops,tier!=batch")
    p.set_defaults(run=_list)

    p = verbs.add_parser(
        "describe",
        parents=[common],
        help="recent pings, transitions, last output and next due times of one monitor",
        description="A monitor's readable history: recent pings as a table (time, kind, exit "
        "code, duration, first line of the body), recent transitions, the last output "
        "and the next due times, in the monitor's time zone.",
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_describe)

    p = verbs.add_parser(
        "url",
        parents=[common],
        help="print the ping URL (from the monitor's Secret)",
        description="Print the monitor's ping URL, read from its token Secret. The URL "
        "holds the token: treat the output as a secret.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--internal", action="store_true", help="the in-cluster URL (Secret key internal-url)"
    )
    p.set_defaults(run=_url)

    p = verbs.add_parser(
        "ping",
        parents=[common],
        help="send a ping: success (default), --start, --fail, --exit N or --log",
        description="Send one ping to the monitor's URL (from its Secret, or --url), "
        "retried with backoff on refused connections, timeouts, 429 and 5xx.",
    )
    p.add_argument("name", metavar="NAME")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--start", dest="kind", action="store_const", const="start", help="a run started"
    )
    kind.add_argument(
        "--fail", dest="kind", action="store_const", const="fail", help="a run failed"
    )
    kind.add_argument(
        "--log", dest="kind", action="store_const", const="log", help="a message only"
    )
    kind.add_argument(
        "--exit",
        dest="exit_code",
        type=_exit_code,
        metavar="N",
        help="exit code N (0 success, 1-255 failure)",
    )
    p.add_argument("--body", metavar="TEXT", help="the ping's body (- reads stdin)")
    p.add_argument("--rid", metavar="ID", help="run id pairing a start and its finish")
    _ping_options(p)
    p.set_defaults(run=_ping, kind="success")

    p = verbs.add_parser(
        "pause",
        parents=[common],
        help="pause a monitor (nothing alerts), for good or --for a while",
        description="Pause the monitor: nothing alerts, pings are still recorded. With --for "
        "the pause ends by itself (spec.pausedUntil; the operator resumes it, with a "
        "Resumed Event); without it, until kubectl heartbeat resume (spec.paused).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--for", dest="duration", type=_duration, metavar="DURATION", help="e.g. 30m, 2h, 1d"
    )
    p.set_defaults(run=_pause)

    p = verbs.add_parser(
        "resume",
        parents=[common],
        help="end a pause (spec.paused and spec.pausedUntil)",
        description="Resume the monitor: clears spec.paused and spec.pausedUntil. The next "
        "slot is counted from now.",
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_resume)

    p = verbs.add_parser(
        "run",
        parents=[common],
        help="run a command between a start ping and its exit code with its output",
        description="Ping start (with a fresh run id), run CMD with its output passed "
        "through, then ping its exit code with the last 10,000 bytes of its output. Pings "
        "are retried with backoff; a failed ping is reported on stderr and never changes "
        "the exit status, which is the command's.",
        usage=f"{PROG} run NAME [options] -- CMD [ARGS...]",
    )
    p.add_argument("name", metavar="NAME")
    _ping_options(p)
    p.set_defaults(run=_run, command=[])
    return parser


def _ping_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=os.environ.get("HEARTBEAT_URL") or None,
        help="the ping URL to use instead of reading the Secret (default: $HEARTBEAT_URL; "
        "in a Pod, from the Secret's url key by secretKeyRef)",
    )
    p.add_argument(
        "--internal", action="store_true", help="read the Secret's internal-url instead of url"
    )
    p.add_argument(
        "--retries", type=int, default=None, metavar="N", help="attempts per ping (default 5)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # run's command is everything after the first "--", never parsed as our flags.
    command: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = build_parser().parse_args(argv)
    if args.verb == "run":
        args.command = command
    if getattr(args, "kubeconfig", None):
        os.environ["KUBECONFIG"] = args.kubeconfig
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except _Failure as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ERROR


class _Failure(Exception):
    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def _with_api(args: argparse.Namespace, body: Callable[[Any], Awaitable[int]]) -> int:
    """Run ``body(api)`` on a fresh event loop; a ``PluginError`` becomes one sentence."""
    from heartbeat_operator.plugin.api import Api, PluginError

    async def go() -> int:
        api = Api(namespace=args.namespace, context=args.context)
        try:
            return await body(api)
        finally:
            await api.close()

    try:
        return asyncio.run(go())
    except PluginError as exc:
        raise _Failure(str(exc), transient=exc.transient) from None


def _colour() -> bool:
    return (
        sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
    )


def _list(args: argparse.Namespace) -> int:
    from heartbeat_operator.plugin import views

    async def body(api: Any) -> int:
        monitors = await api.list_monitors(
            all_namespaces=args.all_namespaces, selector=args.selector
        )
        if not monitors:
            where = "any namespace" if args.all_namespaces else f"namespace {api.namespace}"
            print(f"No HeartbeatMonitors found in {where}.", file=sys.stderr)
            return 0
        print(
            views.list_table(
                monitors, views.utc_now(), all_namespaces=args.all_namespaces, colour=_colour()
            )
        )
        return 1 if any(views.state_of(m) == "Down" for m in monitors) else 0

    return _with_api(args, body)


def _describe(args: argparse.Namespace) -> int:
    from heartbeat_operator.plugin import views

    async def body(api: Any) -> int:
        monitor = await api.get_monitor(args.name)
        print(views.describe_text(monitor, views.utc_now(), colour=_colour()))
        return 0

    return _with_api(args, body)


def _url(args: argparse.Namespace) -> int:
    async def body(api: Any) -> int:
        print(await api.ping_url(args.name, internal=args.internal))
        return 0

    return _with_api(args, body)


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    found: list[str] = []

    async def body(api: Any) -> int:
        found.append(await api.ping_url(args.name, internal=args.internal))
        return 0

    _with_api(args, body)
    return found[0]


def _attempts(args: argparse.Namespace) -> dict[str, Any]:
    from heartbeat_operator.plugin import pinging

    attempts = pinging.DEFAULT_ATTEMPTS if args.retries is None else max(1, args.retries)
    return {"attempts": attempts}


def _ping(args: argparse.Namespace) -> int:
    from heartbeat_operator.plugin import pinging

    body: bytes | None = None
    if args.body == "-":
        body = sys.stdin.buffer.read()
    elif args.body is not None:
        body = args.body.encode("utf-8")
    base = _base_url(args)
    url = pinging.ping_url(base, args.kind, exit_code=args.exit_code, rid=args.rid)
    outcome = pinging.send(url, body, **_attempts(args))
    what = f"exit code {args.exit_code}" if args.exit_code is not None else args.kind
    if not outcome.ok:
        raise _Failure(pinging.describe_outcome(f"{args.name}: {what}", outcome))
    print(f"{args.name}: {what} ping recorded")
    return 0


def _pause(args: argparse.Namespace) -> int:
    from heartbeat_operator.domain.timefmt import format_time
    from heartbeat_operator.plugin import views

    async def body(api: Any) -> int:
        if args.duration is None:
            await api.patch_spec(args.name, {"paused": True, "pausedUntil": None})
            print(f"heartbeatmonitor.heartbeat.dev/{args.name} paused (until resumed)")
            return 0
        until = (views.utc_now() + args.duration).replace(microsecond=0)
        monitor = await api.patch_spec(
            args.name, {"paused": False, "pausedUntil": format_time(until)}
        )
        zone = (monitor.get("spec") or {}).get("timeZone")
        print(
            f"heartbeatmonitor.heartbeat.dev/{args.name} paused until "
            f"{views.local_time(until, zone, utc_too=True)}"
        )
        return 0

    return _with_api(args, body)


def _resume(args: argparse.Namespace) -> int:
    async def body(api: Any) -> int:
        monitor = await api.patch_spec(args.name, {"paused": False, "pausedUntil": None})
        line = f"heartbeatmonitor.heartbeat.dev/{args.name} resumed"
        if (monitor.get("status") or {}).get("pauseCause") == "CronJob suspend":
            line += "; its CronJob is suspended, so it stays Paused until the CronJob resumes"
        print(line)
        return 0

    return _with_api(args, body)


def _run(args: argparse.Namespace) -> int:
    from heartbeat_operator.plugin import pinging

    command = list(args.command)
    if not command:
        raise _Failure(f"no command to run: {PROG} run {args.name} -- CMD [ARGS...]")

    def warn(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr)

    attempts = _attempts(args)
    base = _url_for_run(args, attempts["attempts"], warn)
    return pinging.run_command(base, command, name=args.name, warn=warn, **attempts)


def _url_for_run(
    args: argparse.Namespace, attempts: int, warn: Callable[[str], None]
) -> str | None:
    """The ping URL, asked again with the pings' backoff while the API server is
    unreachable or busy; None (with a warning) when it cannot be had. The job comes
    first: a wrapper that skipped the backup because it could not read the URL would turn
    a monitoring hiccup into a lost run; unpinged, the monitor alerts on the silence."""
    from heartbeat_operator.plugin import pinging

    delay = pinging.FIRST_DELAY
    for attempt in range(1, attempts + 1):
        try:
            return _base_url(args)
        except _Failure as exc:
            if not exc.transient or attempt == attempts:
                warn(
                    f"{args.name}: cannot read the ping URL: {exc}; running the command "
                    "anyway, without pings"
                )
                return None
            time.sleep(delay)
            delay = min(pinging.MAX_DELAY, delay * 2)
    return None


if __name__ == "__main__":
    sys.exit(main())
