"""The deployment validation tools (scripts/tools.sh: promtool, helm, kubeconform, compose-config
and Kubernetes schemas), installed once per test session into .cache/tools and cached there."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm/perpledger"
# Prometheus' and Grafana's files: the chart reads them, docker-compose.yml mounts them.
MONITORING = CHART / "files"


@pytest.fixture(scope="session")
def tools() -> Path:
    """The folder of the tools' binaries; installs them first if needed (cold: a few minutes, cached)."""
    subprocess.run(["bash", str(ROOT / "scripts/tools.sh")], check=True, timeout=1800)
    return ROOT / ".cache/tools/bin"


def run(*command: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None,
        stdin: str | None = None) -> str:
    """Run a tool; its stdout, or a test failure with everything it printed."""
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, input=stdin, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout
