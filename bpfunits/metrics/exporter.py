"""What the daemon serves at `metrics_listen`: its metrics and health, and the hooks into its
reconciles that keep them."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from bpfunits.metrics.health import Health
from bpfunits.metrics.listen import Listener
from bpfunits.metrics.maps import MapMetrics
from bpfunits.metrics.node import NodeMetrics
from bpfunits.metrics.reconciles import ReconcileMetrics
from bpfunits.reconcile.engine import Result
from bpfunits.reconcile.node import Node
from bpfunits.state.bpffs import StateRoot


class Exporter:
    """Listens from construction on (a wrong address raises ListenError) until close()."""

    def __init__(self, address: str) -> None:
        self.health = Health()
        self.node = NodeMetrics()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self.node)
        self.maps = MapMetrics()
        registry.register(self.maps)
        self._reconciles = ReconcileMetrics(registry)
        try:
            self._listener = Listener(address, registry, self.health)
        except BaseException:
            self.node.close()
            raise
        self.address = self._listener.address

    def reconcile(self, trigger: str, run: Callable[[], Result], node: Node, root: StateRoot) -> Result:
        """run() (one reconcile of `node`, whose units pin their maps under `root`), timed and
        recorded."""
        started = time.monotonic()
        self.health.reconcile_started(started)
        result = None
        try:
            result = run()
            units = node.units.units if node.units is not None else {}
            self.node.update(result, node.memory, units.keys())
            self.maps.update(root, units.values())
            return result
        finally:
            ended = time.monotonic()
            self._reconciles.record(trigger, ended - started, result)
            self.health.reconcile_ended(ended, result is not None)

    def close(self) -> None:
        self._listener.close()
        self.node.close()
