"""A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver (RBAC, a
service-account issuer and signing key, serving certificates it makes itself, a static admin
token) and kube-controller-manager (the Job, garbage-collector, service-account and token
controllers among its defaults), built from Go modules by scripts/build-control-plane.sh."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

REPO = Path(__file__).resolve().parents[2]
VERSION = "v1.34.2"
BIN = REPO / ".cache" / "controlplane" / VERSION
ADMIN_TOKEN = "framesift-test-admin"


def _ports(count: int) -> list[int]:
    """Distinct free ports (the sockets stay bound until all are chosen)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def kubeconfig(path: Path, url: str, token: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [{"name": "t", "cluster": {"server": url, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u"}}],
            }
        )
    )
    return path


@dataclass
class ControlPlane:
    workdir: Path
    url: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    def api(self, token: str = ADMIN_TOKEN) -> client.ApiClient:
        config = client.Configuration()
        config.host = self.url
        config.verify_ssl = False
        config.api_key = {"authorization": f"Bearer {token}"}
        return client.ApiClient(config)

    def kubectl(
        self, *args: str, input_text: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        kubectl = shutil.which("kubectl") or "kubectl"
        return subprocess.run(
            [kubectl, "--kubeconfig", str(self.admin_kubeconfig), *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def _start(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen([str(BIN / name), *args], stdout=log, stderr=subprocess.STDOUT))

    def start(self) -> ControlPlane:
        try:
            return self._start_all()
        except BaseException:
            self.stop()  # no process outlives a failed start
            raise

    def _start_all(self) -> ControlPlane:
        missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager") if not (BIN / b).exists()]
        if missing:
            raise RuntimeError(f"{missing} not built: run scripts/build-control-plane.sh (the test command does)")
        w = self.workdir
        subprocess.run(["openssl", "genrsa", "-out", str(w / "sa.key"), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(w / "sa.key"), "-pubout", "-out", str(w / "sa.pub")],
            check=True,
            capture_output=True,
        )
        (w / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin,"system:masters"\n')
        etcd_client, etcd_peer, secure, manager = _ports(4)
        self._start(
            "etcd",
            [
                "--data-dir", str(w / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
                "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
                "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
            ],
        )  # fmt: skip
        self._start(
            "kube-apiserver",
            [
                "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
                "--bind-address", "127.0.0.1",
                "--secure-port", str(secure),
                "--cert-dir", str(w / "certs"),
                "--token-auth-file", str(w / "tokens.csv"),
                "--authorization-mode", "RBAC",
                "--service-account-issuer", "https://kubernetes.default.svc",
                "--service-account-key-file", str(w / "sa.pub"),
                "--service-account-signing-key-file", str(w / "sa.key"),
                "--service-cluster-ip-range", "10.0.0.0/24",
            ],
        )  # fmt: skip
        self.url = f"https://127.0.0.1:{secure}"
        kubeconfig(self.admin_kubeconfig, self.url, ADMIN_TOKEN)
        self._wait_ready()
        self._start(
            "kube-controller-manager",
            [
                "--kubeconfig", str(self.admin_kubeconfig),
                "--service-account-private-key-file", str(w / "sa.key"),
                "--root-ca-file", str(w / "certs" / "apiserver.crt"),
                "--leader-elect=false",
                "--bind-address", "127.0.0.1",
                "--secure-port", str(manager),
                "--controllers", "*",
            ],
        )  # fmt: skip
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            request = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(
            f"kube-apiserver not ready after {timeout}s: {(self.workdir / 'kube-apiserver.log').read_text()[-2000:]}"
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    def service_account_token(self, namespace: str, name: str) -> str:
        """A token for the ServiceAccount from the TokenRequest API (what a pod would mount)."""
        core = client.CoreV1Api(self.api())
        request: Any = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        }
        response = core.create_namespaced_service_account_token(name, namespace, request, _preload_content=False)
        return str(json.loads(response.data)["status"]["token"])


def env_without_proxy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
