"""The Gateway API conformance suite in the lab: built, its images on the nodes, run from a
client namespace.

    suite = conformance.build()                 # cached by version (build-conformance.sh)
    running_lab.import_images(conformance.backend_images(suite))
    result = conformance.run(root, kubeconfig, "client-2", suite, gateway_class=..., ...)

The suite (``sigs.k8s.io/gateway-api/conformance``, the version of versions.env) is a Go
test binary; its backends run images it names in its manifests
(``registry.k8s.io/gateway-api/echo-basic:<tag>``, ``registry.k8s.io/coredns/coredns``).
There is no registry here, so each is written from a binary built from the Go module
(echo-basic of the suite's own version for every tag it names) and imported into every
node's containerd under that name. The manifests say ``imagePullPolicy: IfNotPresent``
or nothing, and a tag other than ``latest``: the kubelet never pulls an image it has.

The suite runs inside a client's network namespace, so every request it sends reaches
the Gateways as a client's would: through the load balancer to an edge node. It reaches
the API server through a forwarder in that namespace on 127.0.0.1 (the API server's
certificate names it) to the lab's API socket.

Stdlib only, like the rest of the lab.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gateway_api
import localcluster
from lab import images, net

ECHO_IMAGE = re.compile(r"^registry\.k8s\.io/gateway-api/echo-basic:v[0-9][\w.-]*$")
COREDNS_IMAGE = "registry.k8s.io/coredns/coredns"
#: Written by the suite's own test binary (go test's default -test.timeout is 10 min).
TEST_TIMEOUT = "90m"
#: As Traefik's own conformance run sets them (integration/gateway_api_conformance_test.go,
#: v3.7.13): a status Traefik never reports fails its test in 30 s instead of 180 s.
TIMEOUTS = {
    "GatewayMustHaveAddress": "30s",
    "GatewayMustHaveCondition": "30s",
    "GWCMustBeAccepted": "30s",
    "ListenerSetMustHaveCondition": "30s",
    "NamespacesMustBeReady": "300s",
}


class ConformanceError(Exception):
    """The suite could not be built or run."""


@dataclass(frozen=True)
class Suite:
    version: str
    binary: Path
    echo_basic: Path
    coredns: Path
    coredns_version: str
    #: The module's source: its manifests name the images.
    source: Path


def build() -> Suite:
    """Build (or find in the cache) the suite, echo-basic and CoreDNS."""
    versions = localcluster._versions()
    version = versions["GATEWAY_API_VERSION"]
    coredns = versions["CONFORMANCE_COREDNS_VERSION"]
    script = Path(__file__).resolve().parent.parent / "build-conformance.sh"
    proc = subprocess.run(
        ["bash", str(script), version, coredns], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode:
        raise ConformanceError("hack/build-conformance.sh failed (its output is above)")
    built = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return Suite(
        version,
        Path(built["conformance"]),
        Path(built["echo-basic"]),
        Path(built["coredns"]),
        coredns,
        Path(built["source"]),
    )


def manifest_images(source: Path) -> set[str]:
    """Every image the suite's manifests (base and per test) name."""
    found = set()
    for path in (*source.glob("base/*.yaml"), *source.glob("tests/*.yaml")):
        for line in path.read_text().splitlines():
            name = line.strip().removeprefix("- ")
            if name.startswith("image:"):
                found.add(name.split(":", 1)[1].strip().strip("\"'"))
    return found


def backend_images(suite: Suite) -> list[images.Image]:
    """The images the suite's backends run, each from a binary built here."""
    out = []
    for name in sorted(manifest_images(suite.source)):
        if ECHO_IMAGE.match(name):
            out.append(images.Image(name, suite.echo_basic, ("/echo-basic",)))
        elif name == f"{COREDNS_IMAGE}:{suite.coredns_version}":
            out.append(images.Image(name, suite.coredns, ("/coredns",)))
        else:
            raise ConformanceError(
                f"the conformance suite {suite.version} runs {name}, which the lab cannot"
                " build (update CONFORMANCE_COREDNS_VERSION in hack/versions.env, or teach"
                " hack/lab/conformance.py the image)"
            )
    return out


@dataclass(frozen=True)
class Result:
    returncode: int
    seconds: float
    log: Path
    report: Path


def _client_kubeconfig(kubeconfig: Path, out: Path) -> int:
    """A copy of the lab's admin kubeconfig, and the API server's port it names."""
    text = kubeconfig.read_text()
    found = re.search(r"\"?server\"?:\s*\"?https://127\.0\.0\.1:(\d+)", text)
    if not found:
        raise ConformanceError(f"{kubeconfig} does not name https://127.0.0.1:PORT")
    out.write_text(text)
    return int(found.group(1))


def run(
    root: Path,
    kubeconfig: Path,
    client: str,
    suite: Suite,
    *,
    gateway_class: str,
    report: Path,
    implementation: dict[str, str],
    supported_features: tuple[str, ...],
    skip_tests: tuple[str, ...] = (),
    profiles: tuple[str, ...] = ("GATEWAY-HTTP",),
) -> Result:
    """Run the suite from ``client``'s namespace against ``gateway_class``, testing
    ``supported_features`` (the suite runs every test whose features are all among
    them, whatever its profile; ``profiles`` are what the report states)."""
    # Holds an admin kubeconfig: a directory only root reads (mkdtemp: 0700), not the
    # report's (which may be in the repository).
    work = Path(tempfile.mkdtemp(prefix="edge-operator-conformance-"))
    port = _client_kubeconfig(kubeconfig, work / "kubeconfig")
    forwarder = subprocess.Popen(
        [
            "nsenter",
            f"--net={net.netns_path(client)}",
            "socat",
            f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
            f"UNIX-CONNECT:{root / 'api.sock'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = work / "suite.log"
    argv = [
        "nsenter",
        f"--net={net.netns_path(client)}",
        str(suite.binary),
        "-test.run=^TestConformance$",
        "-test.v",
        f"-test.timeout={TEST_TIMEOUT}",
        f"--gateway-class={gateway_class}",
        f"--conformance-profiles={','.join(profiles)}",
        f"--supported-features={','.join(supported_features)}",
        f"--report-output={report}",
        "--cleanup-base-resources=true",
        f"--timeout-config-overrides={';'.join(f'{k}={v}' for k, v in TIMEOUTS.items())}",
        *(f"--{key}={value}" for key, value in implementation.items()),
    ]
    if skip_tests:
        argv.append(f"--skip-tests={','.join(skip_tests)}")
    start = time.monotonic()
    try:
        _wait_listening(client, port)
        with log.open("w") as out:
            proc = subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=work,
                env={**os.environ, "KUBECONFIG": str(work / "kubeconfig")},
                check=False,
            )
    finally:
        forwarder.terminate()
        forwarder.wait(timeout=10)
        (work / "kubeconfig").unlink()  # the log stays
    return Result(proc.returncode, time.monotonic() - start, log, report)


def _wait_listening(client: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = net.run("ss", "-Hltn", f"sport = :{port}", ns=client, check=False)
        if out.strip():
            return
        time.sleep(0.1)
    raise ConformanceError(f"no API forwarder on 127.0.0.1:{port} in {client} after {timeout}s")


def results(log: Path) -> dict[str, str]:
    """Each test of the run's log and how it ended (PASS, FAIL or SKIP), by name."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*--- (PASS|FAIL|SKIP): TestConformance/([^/\s]+) ", line)
        if m:
            found[m.group(2)] = m.group(1)
    return found


def traefik_report(traefik_version: str, gateway_api_version: str) -> Path:
    """Traefik's own conformance report at ``traefik_version`` for the suite's version,
    from its Go module (in the module cache since the lab built Traefik)."""
    major = traefik_version.removeprefix("v").split(".")[0]
    try:
        source = gateway_api.module_dir(f"github.com/traefik/traefik/v{major}", traefik_version)
    except RuntimeError as error:
        raise ConformanceError(str(error)) from error
    reports = source / "integration/gateway-api-conformance-reports"
    minor = ".".join(traefik_version.removeprefix("v").split(".")[:2])
    candidates = sorted((reports / gateway_api_version).glob(f"*-v{minor}-default-report.yaml"))
    if not candidates:
        raise ConformanceError(
            f"Traefik {traefik_version} has no report in {reports}/{gateway_api_version}"
        )
    return candidates[0]


def _profile(report: dict[str, Any], name: str) -> dict[str, Any]:
    for profile in report.get("profiles") or []:
        if profile.get("name") == name:
            return dict(profile)
    return {}


def shortfalls(ours: dict[str, Any], theirs: dict[str, Any], profile: str) -> list[str]:
    """Where our report of ``profile`` falls short of ``theirs`` (the provider's own): a
    failed test, fewer passed, a skip they did not make, a feature they claim and we do
    not, a provisional test they passed and we did not."""
    problems = []
    mine, ref = _profile(ours, profile), _profile(theirs, profile)
    if not mine:
        return [f"no {profile} profile in our report"]
    for level in ("core", "extended"):
        got, want = mine.get(level) or {}, ref.get(level) or {}
        stats, bar = got.get("statistics") or {}, want.get("statistics") or {}
        if stats.get("Failed", 0):
            problems.append(f"{profile} {level}: {stats['Failed']} failed {got.get('failedTests')}")
        if stats.get("Passed", 0) < bar.get("Passed", 0):
            problems.append(
                f"{profile} {level}: {stats.get('Passed', 0)} passed, the provider's own"
                f" report passes {bar['Passed']}"
            )
        extra = set(got.get("skippedTests") or []) - set(want.get("skippedTests") or [])
        if extra:
            problems.append(f"{profile} {level}: skipped {sorted(extra)}")
        lacking = set(want.get("supportedFeatures") or []) - set(got.get("supportedFeatures") or [])
        if lacking:
            problems.append(f"{profile} {level}: features not tested {sorted(lacking)}")
    ran = set(ours.get("succeededProvisionalTests") or [])
    prefix = {"GATEWAY-HTTP": ("HTTPRoute", "Gateway"), "GATEWAY-GRPC": ("GRPCRoute",)}.get(
        profile, ()
    )
    for test in theirs.get("succeededProvisionalTests") or []:
        if test.startswith(prefix) and test not in ran:
            problems.append(f"{profile}: provisional test {test} did not pass")
    return problems
