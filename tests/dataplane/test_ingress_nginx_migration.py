"""The way off ingress-nginx: Ingresses written for it (class nginx, its annotations),
served by a Traefik EdgeGateway with spec.ingressNGINX, answered as ingress-nginx
answers them, from a client namespace through the load balancer:

- ssl-redirect (on by default for an Ingress with tls): HTTP gets 308 to https, HTTPS
  is served;
- rewrite-target with use-regex: the backend gets the rewritten path;
- whitelist-source-range: a client inside gets through, one outside gets 403;
- canary-by-header: "always" goes to the canary, "never" and no header to the main
  backend;
- an Ingress with a snippet annotation is not served (a limit: Traefik refuses it);

and the Ingresses' status carries the gateway's address, the client address is kept.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

import lab
from tests.dataplane.traffic import Traffic
from tests.e2e.cluster import wait_for

NGINX = "nginx.ingress.kubernetes.io"
CANARY = "echo-canary"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def seen(self) -> dict[str, Any]:
        """What the echo backend saw (its /json answer)."""
        assert self.status == 200, f"{self.status}: {self.body[:300]!r}"
        got: dict[str, Any] = json.loads(self.body)
        return got

    def seen_if_json(self) -> dict[str, Any] | None:
        """What the echo backend saw, or None for any other answer (while routes settle)."""
        if self.status != 200 or not self.body.startswith(b"{"):
            return None
        return self.seen()


def fetch(
    traffic: Traffic,
    client: str,
    address: str,
    host: str,
    path: str = "/json",
    *,
    tls: bool = False,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One GET from ``client``'s namespace to the load balancer's ``address``, with Host
    (and, over TLS, SNI) ``host``; redirects are not followed, certificates not checked
    (the Ingress's secret is absent: Traefik answers with its default certificate)."""
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head += "Connection: close\r\n\r\n"

    def send() -> Answer:
        with socket.create_connection((address, 443 if tls else 80), timeout=5) as raw:
            sock: socket.socket = raw
            if tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(raw, server_hostname=host)
            sock.sendall(head.encode())
            response = http.client.HTTPResponse(sock)
            try:
                response.begin()
                return Answer(response.status, dict(response.getheaders()), response.read())
            finally:
                response.close()
                if sock is not raw:
                    sock.close()

    return lab.net.call_in(client, send)


def ingress(
    name: str, host: str, path: str, service: str, annotations: dict[str, str], **spec: Any
) -> dict[str, Any]:
    path_type = "ImplementationSpecific" if f"{NGINX}/use-regex" in annotations else "Prefix"
    backend = {"service": {"name": service, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": lab.APPS, "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": host,
                    "http": {"paths": [{"path": path, "pathType": path_type, "backend": backend}]},
                }
            ],
            **spec,
        },
    }


@contextmanager
def canary_backend(traffic: Traffic) -> Iterator[None]:
    """A second echo Deployment and Service (its pods are named echo-canary-...)."""
    apps = k8s.AppsV1Api(traffic.cluster.api)
    echo = apps.read_namespaced_deployment("echo", lab.APPS)
    template: dict[str, Any] = traffic.cluster.api.sanitize_for_serialization(echo.spec.template)
    template["metadata"] = {"labels": {"app": CANARY}}
    template["spec"]["topologySpreadConstraints"] = []
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": CANARY, "namespace": lab.APPS},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": CANARY}}, "template": template},
    }
    apps.create_namespaced_deployment(lab.APPS, body)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": CANARY, "namespace": lab.APPS},
        "spec": {
            "selector": {"app": CANARY},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    traffic.cluster.core.create_namespaced_service(lab.APPS, service)
    try:

        def available() -> bool:
            status = apps.read_namespaced_deployment(CANARY, lab.APPS).status
            return bool(status.available_replicas)

        wait_for(available, "the canary backend available", timeout=90)
        yield
    finally:
        traffic.cluster.core.delete_namespaced_service(CANARY, lab.APPS)
        apps.delete_namespaced_deployment(CANARY, lab.APPS)


def test_ingresses_written_for_ingress_nginx_answered_as_ingress_nginx_would(
    traffic: Traffic, unique: str
) -> None:
    name = f"mig-{unique}"
    gw = traffic.gateway(name, ingress_nginx={"enabled": True})
    made = traffic.networking.read_ingress_class("nginx")
    assert made.spec.controller == "k8s.io/ingress-nginx"
    inside, outside = traffic.lab.topology.clients[0], traffic.lab.topology.clients[1]
    hosts = {
        kind: f"{kind}-{unique}.example"
        for kind in ("shop", "rewrite", "allow", "canary", "snippet")
    }
    written = [
        ingress(
            f"shop-{unique}", hosts["shop"], "/", "echo", {},
            tls=[{"hosts": [hosts["shop"]], "secretName": f"shop-{unique}-tls"}],
        ),
        ingress(
            f"rewrite-{unique}", hosts["rewrite"], "/api(/|$)(.*)", "echo",
            {f"{NGINX}/use-regex": "true", f"{NGINX}/rewrite-target": "/$2"},
        ),
        ingress(
            f"allow-{unique}", hosts["allow"], "/", "echo",
            {f"{NGINX}/whitelist-source-range": f"{inside.ip}/32"},
        ),
        ingress(f"canary-main-{unique}", hosts["canary"], "/", "echo", {}),
        ingress(
            f"canary-{unique}", hosts["canary"], "/", CANARY,
            {f"{NGINX}/canary": "true", f"{NGINX}/canary-by-header": "X-Canary"},
        ),
        # A limit: Traefik refuses an Ingress with a snippet (it would go to the canary).
        ingress(
            f"snippet-{unique}", hosts["snippet"], "/", CANARY,
            {f"{NGINX}/configuration-snippet": "more_set_headers 'X-Snippet: 1';"},
        ),
    ]  # fmt: skip
    with canary_backend(traffic):
        for body in written:
            traffic.networking.create_namespaced_ingress(lab.APPS, body)
            traffic.ingresses.append(body["metadata"]["name"])

        def get(client: str, kind: str, path: str = "/json", **options: Any) -> Answer:
            return fetch(traffic, client, gw.address, hosts[kind], path, **options)

        def canary_pod(value: str | None) -> str:
            headers = {"X-Canary": value} if value else {}
            seen = get(inside.name, "canary", headers=headers).seen_if_json()
            return str(seen["pod"]) if seen else ""

        def loaded() -> bool:
            """Every Ingress's own answer (the gateway's catch-all Ingress answers the
            others' hosts with echo until a pod has loaded them), ten times in a row, so
            both edge nodes' pods have."""
            return all(
                get(inside.name, "shop").status == 308
                and get(inside.name, "rewrite", "/api/json").seen_if_json() is not None
                and get(outside.name, "allow").status == 403
                and canary_pod("always").startswith(f"{CANARY}-")
                for _ in range(10)
            )

        wait_for(loaded, "every pod serves the ingress-nginx Ingresses", timeout=90)
        rounds = 10
        for _ in range(rounds):
            # ssl-redirect: HTTP answered 308 with the same host, path and query on
            # https, which is served.
            answer = get(inside.name, "shop", "/json?a=1")
            assert answer.status == 308, answer
            assert answer.headers["Location"] == f"https://{hosts['shop']}/json?a=1"
            seen = get(inside.name, "shop", tls=True).seen()
            assert seen["client"] == inside.ip
            assert seen["headers"]["X-Forwarded-Proto"] == ["https"]

            # rewrite-target: /api/json reaches the backend as /json (its JSON answer;
            # the path unrewritten would get its text page), /api as /.
            assert get(inside.name, "rewrite", "/api/json").seen()["client"] == inside.ip
            root = get(inside.name, "rewrite", "/api")
            assert root.status == 200, root
            assert root.body.startswith(b"your address: "), root

            # whitelist-source-range: the client inside gets through, the other 403.
            assert get(inside.name, "allow").seen()["client"] == inside.ip
            denied = get(outside.name, "allow")
            assert denied.status == 403, denied

            # canary-by-header: always -> canary, never or none -> the main backend.
            assert canary_pod("always").startswith(f"{CANARY}-")
            for value in ("never", None):
                main = canary_pod(value)
                assert main, f"X-Canary {value}: no answer from echo"
                assert not main.startswith(f"{CANARY}-"), main

            # The Ingress with a snippet is not served: its host gets the catch-all.
            refused = get(inside.name, "snippet")
            assert not str(refused.seen()["pod"]).startswith(f"{CANARY}-"), refused
            assert "X-Snippet" not in refused.headers

        # Their status: the gateway's load-balancer address (publishStatus).
        def published() -> bool:
            for body in written[:-1]:  # not the refused one
                got = traffic.networking.read_namespaced_ingress(body["metadata"]["name"], lab.APPS)
                lb = (got.status.load_balancer.ingress or []) if got.status.load_balancer else []
                if [i.ip for i in lb] != [gw.address]:
                    return False
            return True

        wait_for(published, "the Ingresses' status carries the gateway's address", timeout=60)
        print(
            f"ingress-nginx Ingresses through {name} ({gw.address}), {rounds * 10} requests"
            f" ({rounds} rounds of 10), every answer as ingress-nginx's: ssl-redirect 308 ->"
            f" {answer.headers['Location']}; rewrite /api/json -> /json; allow-list"
            f" {inside.ip} 200, {outside.ip} {denied.status}; canary by header: always ->"
            f" {CANARY}, never/none -> echo; the Ingress with a snippet not served"
        )
