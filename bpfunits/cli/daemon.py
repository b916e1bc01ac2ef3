"""`bpfunits daemon`: keep every hook running its chain as files, interfaces and the kernel change."""

from __future__ import annotations

import argparse
import logging
import math
import resource

from bpfunits import logs
from bpfunits.cli import common
from bpfunits.daemon import DEFAULT_DEBOUNCE, Daemon, Settings, Trigger, statefile
from bpfunits.state.bpffs import StateRoot
from bpfunits.sys import netns
from bpfunits.reconcile.decisions import log_result, summary
from bpfunits.reconcile.engine import Result, reconcile
from bpfunits.reconcile.node import Node


def register(sub) -> None:
    p = common.subcommand(
        sub,
        "daemon",
        help="reconcile continuously (the service)",
        description="Apply at start, then again whenever unit files change (debounced; editor temp files, "
        "atomic renames and Kubernetes ConfigMap ..data swaps handled), interfaces appear or disappear "
        "(globs attach to new interfaces), someone else changes an XDP program, SIGHUP arrives, or the "
        "resync period passes (for changes that send no event: tcx, cls_bpf). SIGTERM exits and leaves "
        "the datapath running. Speaks sd_notify (READY, STATUS, WATCHDOG) when NOTIFY_SOCKET is set. "
        "SIGHUP (`systemctl reload`) rereads the configuration first: an invalid one is logged and the "
        "running one stays in force. Logs one line per decision.",
    )
    common.add_units_options(p)
    common.add_kernel_options(p)
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON")
    p.add_argument("--debounce", type=_seconds, default=DEFAULT_DEBOUNCE, metavar="SECONDS",
                   help=f"quiet time after a burst of events before reconciling (default: {DEFAULT_DEBOUNCE})")
    p.set_defaults(run=run)


def _seconds(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (finite, not negative)")
    return value


def run(args: argparse.Namespace) -> int:
    config = common.config(args)
    logs.configure(args.log_format)
    log = logging.getLogger("bpfunits.daemon")

    # The daemon holds a descriptor on every chain's link, and on every unit's program and maps:
    # thousands on a large node, more than the usual soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError) as e:
            log.warning("open files limit stays %d: %s", soft, e)

    # Loaded programs and the memory of every hook are kept from one reconcile to the next: an
    # unchanged unit is never loaded, verified or compiled again, and an event looks only at
    # the hooks it touches.
    node = Node()
    # Bound before anything else, in the namespace the service manager started us in (like the
    # sd_notify socket): an address it cannot have fails the start.
    from bpfunits.metrics.exporter import Exporter  # here: prometheus_client (with urllib, email, http)
    # costs every other command 25 ms of start-up
    exporter = Exporter(config.metrics_listen) if config.metrics_listen else None
    if exporter is not None:
        log.info("metrics at http://%s/metrics, health at /healthz and /readyz", exporter.address,
                 extra={"fields": {"metrics_listen": exporter.address}})

    # The namespace is entered for each reconcile, not for the whole process: the sd_notify
    # socket and the file watches belong where the service manager started us.
    def reconcile_once(trigger: Trigger) -> Result:
        def run() -> Result:
            return reconcile(config, apply=True, node=node, changes=trigger.changes)

        with netns.inside(args.netns):
            result = exporter.reconcile(trigger.reason, run, node, StateRoot(config.bpffs_root)) if exporter else run()
            inode = netns.current_inode()
        log_result(log, result, str(trigger))
        try:
            statefile.write(config.state_file, inode, result.retries)
        except OSError as e:
            log.warning("state file %s not written (status will not show retries): %s", config.state_file, e)
        return result

    def reload() -> Settings:
        # The command line's overrides still apply; `config` is what the next reconcile reads.
        nonlocal config
        config = common.config(args)
        return Settings(tuple(config.units_dirs), config.resync_period)

    daemon = Daemon(
        reconcile=reconcile_once,
        folders=config.units_dirs,
        resync_period=config.resync_period,
        debounce=args.debounce,
        netns=args.netns,
        status=summary,
        log=log,
        reload=reload,
        own_xdp=Result.xdp_programs,
        retry_at=Result.next_retry,
        heartbeat=exporter.health.turn if exporter else None,
    )
    try:
        return daemon.run()
    finally:
        if exporter is not None:
            exporter.close()
        node.close()
