"""docker-compose.yml stays valid (checked with Debian's docker-compose where installed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.datasets import REPO_ROOT


def test_compose_file_is_valid():
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    result = subprocess.run(
        [tool, "-f", str(REPO_ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x"},
    )
    assert result.returncode == 0, result.stderr


def test_compose_has_the_services_we_document():
    yaml = pytest.importorskip("yaml")
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert {"web", "worker", "gpu-worker", "maintenance", "redis", "postgres"} <= set(services)
    # The sweepers run beside beat on a worker of their own, not in an inference pool.
    assert "--queues maintenance" in services["maintenance"]["command"]
    assert "--beat" in services["maintenance"]["command"]
    assert "--queues training --concurrency 1" in services["gpu-worker"]["command"]
    devices = services["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gunicorn" in services["web"]["command"]
    assert "--queues inference" in services["worker"]["command"]
    # gunicorn sits behind a buffering proxy that trusts nothing from outside.
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]
    assert services["web"]["environment"]["FACEAGE_NUM_PROXIES"] == "1"
    assert "--limit-request-line" in services["web"]["command"]
    conf = (REPO_ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_request_buffering on" in conf and "client_body_timeout" in conf
