"""The Gateway API and Envoy Gateway objects the operator follows, by watches of its
own, not kopf's.

Gateway API is optional on a cluster: its CRDs may be missing, come later or go, and an
operator whose ClusterRole predates Gateway API support (an image upgraded before its
chart) may not read them. kopf stops the whole operator when one of its watches is
refused, so these two are followed here instead, each in a thread of its own that waits
and tries again while the API answers "not found" or "forbidden", and says so once:

- GatewayClasses with a gateway's label: a change queues that gateway (drift, and its
  controller accepting the class);
- Gateways: a change queues the gateways serving its class (status: Programmed,
  listeners);
- EnvoyProxies and ClientTrafficPolicies with a gateway's label (controller.provider
  envoy-gateway): drift;
- the Deployments, Services and pods Envoy Gateway made for a class (its label
  gateway.envoyproxy.io/owning-gatewayclass): a change queues the gateways of that class
  (their status reads them back). Standard kinds, but followed here too: kopf's watches
  of them select the operator's own label.

Each watch starts from the current state (its first events are every object there),
so nothing that happened while it could not watch is missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from edge_operator import names
from edge_operator.desired.providers import envoy_gateway
from edge_operator.kube import ExpiredError, ForbiddenError, Kube, KubeError, NotFoundError, backoff

log = logging.getLogger(__name__)

#: What Envoy Gateway makes for a class that the operator reads back.
PROVISIONED_KINDS = ("Deployment", "Service", "Pod")
#: How long a watch waits before it tries again while its kind is not served or not
#: permitted (the CRDs' own watch queues the gateways when they come).
UNAVAILABLE_SECONDS = 30.0

Event = Callable[[str, dict[str, Any]], object]


class OptionalWatch:
    """Follows one kind the API may not serve, or may not let the operator read."""

    def __init__(self, kube: Kube, kind: str, event: Event, label_selector: str = "") -> None:
        self.kube, self.kind, self.event, self.label_selector = kube, kind, event, label_selector
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Why the kind cannot be watched now ("" while it can): logged on a change only.
        self.unavailable = ""

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{self.kind.lower()}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        version = ""
        while not self._stop.is_set():
            try:
                for type_, obj in self.kube.watch(
                    self.kind, version, label_selector=self.label_selector
                ):
                    self._available()
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if type_ != "BOOKMARK":
                        self.event(type_, obj)
                    if self._stop.is_set():
                        return
                failures = 0
            except ExpiredError:
                version = ""  # from the current state again
            except (NotFoundError, ForbiddenError) as error:
                version = ""
                why = "not served" if isinstance(error, NotFoundError) else "not permitted"
                if why != self.unavailable:
                    log.warning(
                        "cannot watch %s (%s: %s); trying again every %.0fs",
                        self.kind, why, error, UNAVAILABLE_SECONDS,
                    )  # fmt: skip
                self.unavailable = why
                self._stop.wait(UNAVAILABLE_SECONDS)
            except KubeError as error:
                failures += 1
                delay = backoff(failures)
                log.warning("%s watch failed (%s); watching again in %ss", self.kind, error, delay)
                self._stop.wait(delay)
            except Exception:
                # A bug must not end the watch for good.
                log.exception("%s watch event could not be handled; watching again", self.kind)
                version = ""
                self._stop.wait(1.0)

    def _available(self) -> None:
        if self.unavailable:
            log.info("watching %s again", self.kind)
            self.unavailable = ""


def watches(
    kube: Kube, owned_changed: Event, gateway_changed: Event, provisioned_changed: Event
) -> list[OptionalWatch]:
    """The watches, not started: Gateway API's, and Envoy Gateway's (the EnvoyProxies of
    gateways, and what Envoy Gateway makes for a class: its Deployment, Service, pods)."""
    made = envoy_gateway.OWNING_CLASS_LABEL
    return [
        OptionalWatch(kube, "GatewayClass", owned_changed, names.GATEWAY_LABEL),
        OptionalWatch(kube, "Gateway", gateway_changed),
        OptionalWatch(kube, "EnvoyProxy", owned_changed, names.GATEWAY_LABEL),
        OptionalWatch(kube, "ClientTrafficPolicy", owned_changed, names.GATEWAY_LABEL),
        *(OptionalWatch(kube, kind, provisioned_changed, made) for kind in PROVISIONED_KINDS),
    ]
