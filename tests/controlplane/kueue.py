"""Kueue's controller manager against the test control plane, built from Go modules by
scripts/build-kueue.sh. Its webhooks are served on 127.0.0.1 (with a certificate made here) but
not registered with the API server: no Validating/MutatingWebhookConfiguration exists, so the
API server never calls them. framesift does not need them: the operator creates every Job
suspended and labelled with its queue, which is what Kueue's Job webhook would have done."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.controlplane.cluster import REPO, ControlPlane, _ports
from tests.operator.harness import wait_for

VERSION = "v0.17.0"
BIN = REPO / ".cache" / "kueue" / VERSION


def _self_signed(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


@dataclass
class Kueue:
    plane: ControlPlane
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def log(self) -> Path:
        return self.workdir / "kueue.log"

    def start(self) -> Kueue:
        if not (BIN / "kueue").exists():
            raise RuntimeError(f"kueue {VERSION} not built: run scripts/build-kueue.sh (the test command does)")
        # server-side create: the Workload CRD is too large for kubectl's last-applied annotation
        self.plane.kubectl("apply", "--server-side", "-f", str(BIN / "crds"))
        crds = [
            f"crd/{p.stem.split('_', 1)[1]}.{p.stem.split('_', 1)[0]}" for p in sorted((BIN / "crds").glob("*.yaml"))
        ]
        self.plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
        self.plane.kubectl("create", "namespace", "kueue-system")
        certs = _self_signed(self.workdir / "kueue-certs")
        health, metrics, webhook, visibility = _ports(4)
        config = {
            "apiVersion": "config.kueue.x-k8s.io/v1beta2",
            "kind": "Configuration",
            "namespace": "kueue-system",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
            "metrics": {"bindAddress": f"127.0.0.1:{metrics}"},
            "webhook": {"port": webhook, "host": "127.0.0.1", "certDir": str(certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "integrations": {"frameworks": ["batch/job"]},
            "featureGates": {"VisibilityOnDemand": False},
        }
        config_file = self.workdir / "kueue-config.json"
        config_file.write_text(json.dumps(config))
        env = {**os.environ, "KUBECONFIG": str(self.plane.admin_kubeconfig), "KUEUE_METRICS_CERT_DIR": str(certs)}
        self.proc = subprocess.Popen(
            [str(BIN / "kueue"), "--config", str(config_file), f"--visibility-server-port={visibility}"],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._started, 60, "kueue's controllers to start")
        return self

    def _started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"kueue exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
        return "Starting workers" in self.log.read_text()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
