"""The lab's pure parts: image names and archives, topology, load-balancer rules."""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from pathlib import Path

import pytest

import lab
from edge_operator.desired.providers import envoy_gateway, traefik
from lab import envoy_gateway as lab_envoy_gateway
from lab import images, lb, proxies


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("docker.io/traefik:v3.7.13", "docker.io/library/traefik:v3.7.13"),
        ("traefik:v3.7.13", "docker.io/library/traefik:v3.7.13"),
        ("traefik", "docker.io/library/traefik:latest"),
        (
            "registry.k8s.io/ingress-nginx/controller:v1.15.1",
            "registry.k8s.io/ingress-nginx/controller:v1.15.1",
        ),
        ("edgeoperator.dev/lab/echo:v1", "edgeoperator.dev/lab/echo:v1"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
    ],
)
def test_image_names_are_normalised_like_containerd_cri(name: str, stored: str) -> None:
    assert images.normalise(name) == stored


def test_the_lab_runs_the_traefik_image_the_operator_renders() -> None:
    assert lab.traefik_image() == traefik.DEFAULT_IMAGE


def test_the_lab_runs_the_envoy_gateway_and_envoy_the_operator_writes_for() -> None:
    assert lab_envoy_gateway.ENVOY_IMAGE == envoy_gateway.DEFAULT_IMAGE
    assert lab_envoy_gateway.VERSION == envoy_gateway.VERSION


def test_oci_archive_is_a_valid_single_layer_image(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF not really")
    image = images.Image("docker.io/traefik:v9", binary, ("/traefik",))
    path = images.archive(image, tmp_path / "cache")
    assert images.archive(image, tmp_path / "cache") == path  # cached

    with tarfile.open(path) as tar:
        blobs = {
            m.name.removeprefix("blobs/sha256/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith("blobs/")
        }
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert json.loads(tar.extractfile("oci-layout").read()) == {"imageLayoutVersion": "1.0.0"}  # type: ignore[union-attr]
    for digest, data in blobs.items():
        assert hashlib.sha256(data).hexdigest() == digest
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/traefik:v9"
    manifest = json.loads(blobs[entry["digest"].removeprefix("sha256:")])
    config = json.loads(blobs[manifest["config"]["digest"].removeprefix("sha256:")])
    assert config["config"]["Entrypoint"] == ["/traefik"]
    (layer,) = manifest["layers"]
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]
    layer_tar = tmp_path / "layer.tar"
    layer_tar.write_bytes(blobs[layer["digest"].removeprefix("sha256:")])
    with tarfile.open(layer_tar) as tar:
        member = tar.getmember("traefik")
        assert member.mode == 0o755
        assert tar.extractfile(member).read() == binary.read_bytes()  # type: ignore[union-attr]
        assert tar.getmember("tmp").isdir()


def _layer_of(path: Path, tmp_path: Path) -> tarfile.TarFile:
    with tarfile.open(path) as tar:
        blobs = {
            m.name.removeprefix("blobs/sha256/"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith("blobs/")
        }
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
    manifest = json.loads(blobs[index["manifests"][0]["digest"].removeprefix("sha256:")])
    layer_tar = tmp_path / "layer.tar"
    layer_tar.write_bytes(blobs[manifest["layers"][0]["digest"].removeprefix("sha256:")])
    return tarfile.open(layer_tar)


def test_an_image_carries_the_files_its_binary_needs_at_their_paths(tmp_path: Path) -> None:
    binary = tmp_path / "envoy"
    binary.write_bytes(b"\x7fELF dynamic")
    libc = tmp_path / "libc.so.6"
    libc.write_bytes(b"libc")
    loader = tmp_path / "ld-linux-x86-64.so.2"
    loader.write_bytes(b"loader")
    link = tmp_path / "ld-link"
    link.symlink_to(loader)
    files = (("/lib/x86_64-linux-gnu/libc.so.6", libc), ("/lib64/ld-linux-x86-64.so.2", link))
    image = images.Image(
        "docker.io/envoyproxy/envoy:v9", binary, ("/usr/local/bin/envoy",), files=files
    )
    path = images.archive(image, tmp_path / "cache")
    assert images.archive(image, tmp_path / "cache") == path  # cached, deterministic
    with _layer_of(path, tmp_path) as tar:
        assert tar.extractfile("usr/local/bin/envoy").read() == b"\x7fELF dynamic"  # type: ignore[union-attr]
        assert tar.extractfile("lib/x86_64-linux-gnu/libc.so.6").read() == b"libc"  # type: ignore[union-attr]
        loaded = tar.getmember("lib64/ld-linux-x86-64.so.2")
        assert loaded.isfile()  # the symlink resolved: a regular file
        assert tar.extractfile(loaded).read() == b"loader"  # type: ignore[union-attr]
        for directory in (
            "usr",
            "usr/local",
            "usr/local/bin",
            "lib",
            "lib/x86_64-linux-gnu",
            "lib64",
        ):
            assert tar.getmember(directory).isdir()
    libc.write_bytes(b"libc, another build")
    assert images.archive(image, tmp_path / "cache") != path  # keyed by every file


def test_topology_spreads_edges_and_workers_over_zones() -> None:
    topology = lab.Topology.make(edges=2, workers=2, zones=2, clients=2)
    assert [(n.name, n.pool, n.zone, n.ip, n.pod_cidr) for n in topology.nodes] == [
        ("edge-1", "edge", "zone-a", "10.200.0.11", "10.244.1.0/24"),
        ("edge-2", "edge", "zone-b", "10.200.0.12", "10.244.2.0/24"),
        ("worker-1", "general", "zone-a", "10.200.0.13", "10.244.3.0/24"),
        ("worker-2", "general", "zone-b", "10.200.0.14", "10.244.4.0/24"),
    ]
    assert [c.ip for c in topology.clients] == ["198.51.100.10", "198.51.100.11"]
    assert lab.Topology.from_json(json.loads(json.dumps(topology.to_json()))) == topology


def _balancer(tmp_path: Path) -> lb.LoadBalancer:
    balancer = lb.LoadBalancer.__new__(lb.LoadBalancer)
    balancer.nodes = {"edge-1": "10.200.0.11", "edge-2": "10.200.0.12", "worker-1": "10.200.0.13"}
    balancer.excluded_since = {}
    balancer.wanted = {
        "edge-system/a": lb.Wanted(
            key="edge-system/a",
            vip="203.0.113.10",
            mode="nat",
            ports=(lb.Port(80, 30080), lb.Port(443, 30443)),
            check_port=31000,
            interval=1,
            threshold=2,
            deregistration_delay=15,
        ),
        "edge-system/b": lb.Wanted(
            "edge-system/b", "203.0.113.11", "proxy-protocol", (lb.Port(80, 30081),), 31001, 5, 3, 0
        ),
    }
    balancer.health = {
        (key, node): lb.Health(healthy=node.startswith("edge"))
        for key in balancer.wanted
        for node in balancer.nodes
    }
    return balancer


def test_nat_rules_forward_only_to_healthy_nodes_without_snat(tmp_path: Path) -> None:
    ruleset = _balancer(tmp_path)._nat_ruleset()
    assert (
        "ip daddr 203.0.113.10 tcp dport 80 dnat to numgen random mod 2"
        " map { 0 : 10.200.0.11, 1 : 10.200.0.12 } : 30080"
    ) in ruleset
    assert "30443" in ruleset
    assert "10.200.0.13" not in ruleset
    assert "203.0.113.11" not in ruleset  # served by HAProxy
    assert "masquerade" not in ruleset
    assert "snat" not in ruleset


def test_an_excluded_node_leaves_the_pool_after_the_deregistration_delay(tmp_path: Path) -> None:
    """Like a cloud's: the exclusion label acts only after the service controller and the
    cloud's API have (15 s here); until then the health checks decide."""
    balancer = _balancer(tmp_path)
    balancer.excluded_since = {"edge-1": time.monotonic() - 10}
    assert "10.200.0.11" in balancer._nat_ruleset()
    assert balancer.in_pool("edge-system/a", "edge-1")
    balancer.excluded_since = {"edge-1": time.monotonic() - 16}
    assert not balancer.in_pool("edge-system/a", "edge-1")
    assert "mod 1 map { 0 : 10.200.0.12 }" in balancer._nat_ruleset()
    # A delay of 0 (edge-system/b) takes the node out at once.
    balancer.excluded_since = {"edge-1": time.monotonic()}
    assert "10.200.0.11:30081" not in balancer._proxy_config()


def test_proxy_protocol_mode_checks_nodes_and_sends_proxy_v2(tmp_path: Path) -> None:
    config = _balancer(tmp_path)._proxy_config()
    assert "bind 203.0.113.11:80" in config
    assert "option httpchk GET /healthz" in config
    assert "check port 31001 inter 5s fall 3 rise 3 send-proxy-v2" in config
    # HAProxy checks every node itself, workers included: the checks decide.
    for address in ("10.200.0.11:30081", "10.200.0.12:30081", "10.200.0.13:30081"):
        assert address in config


def test_cdn_appends_the_client_to_x_forwarded_for() -> None:
    config = proxies.cdn_config("198.18.0.10", "203.0.113.10", 80)
    assert "option forwardfor" in config
    assert "bind 198.18.0.10:80" in config
    assert "server origin 203.0.113.10:80" in config
