"""``heartbeat-operator dev up|down|status|env`` (DESIGN 9.5).

stdout carries only the answer (the kubeconfig path, or the ``export`` line) so that
``KUBECONFIG=$(heartbeat-operator dev up)`` and ``eval "$(heartbeat-operator dev env)"``
work; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from heartbeat_operator.devcluster import clusters, webhooks


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "The local control plane (etcd, kube-apiserver, kube-controller-manager on 127.0.0.1). "
        "State lives in $HEARTBEAT_DEV_DIR (default ~/.cache/heartbeat-operator/dev)."
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser(
        "up",
        help="start it (or reuse a running one), register the admission webhook at "
        "127.0.0.1:9443; print the kubeconfig path",
    )
    up.add_argument(
        "--crds",
        type=Path,
        default=clusters.DEFAULT_CRDS_DIR,
        help="directory of CRD manifests to apply (default: %(default)s)",
    )
    actions.add_parser("down", help="stop every process it started and remove its data")
    actions.add_parser("status", help="print the kubeconfig path; exit 1 when not up")
    actions.add_parser("env", help="print `export KUBECONFIG=… PATH=…` for a shell to eval")


def main(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            cluster = clusters.up(crds_dir=args.crds, pin=True)
            webhooks.register(cluster)
            print(cluster.kubeconfig)
            return 0
        if args.action == "down":
            stopped = clusters.down()
            print(
                f"dev: stopped {', '.join(stopped)}" if stopped else "dev: nothing was running",
                file=sys.stderr,
            )
            return 0
        found = clusters.status()
        if found is None:
            print("dev: the local control plane is not running", file=sys.stderr)
            return 1
        if args.action == "status":
            print(found.kubeconfig)
            return 0
        kubeconfig = shlex.quote(str(found.kubeconfig))
        bin_dir = shlex.quote(str(found.bin_dir))
        print(f'export KUBECONFIG={kubeconfig} PATH={bin_dir}:"$PATH"')
        return 0
    except clusters.DevClusterError as error:
        print(f"dev: {error}", file=sys.stderr)
        return 1
