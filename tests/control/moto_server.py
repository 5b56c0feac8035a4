"""A moto server on loopback (a real HTTP endpoint), shared by the aws and s3 tests.

One server per test process, started on first use on a free port; :func:`reset` wipes
its state (``POST /moto-api/reset``). Clients get dummy credentials explicitly
(:func:`session`), so no real AWS configuration or credential is ever read.

moto's ~1300 default machine images are not loaded (``MOTO_EC2_LOAD_DEFAULT_AMIS``,
set for this process): reloading them made every reset cost ~0.4 s. :func:`image_id`
registers one image per region instead, after each reset.
"""

from __future__ import annotations

import atexit
import logging
import os
import urllib.request
from typing import Any

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing"}
AMI_NAME = "cloudhedge-test"

_endpoint: str | None = None
_images: dict[str, str] = {}
_clients: dict[tuple[str, str], Any] = {}
_session: Any = None


def endpoint() -> str:
    """The server's URL, starting it on first use (stopped at exit)."""
    global _endpoint
    if _endpoint is None:
        from moto.server import ThreadedMotoServer

        os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"  # read by moto at each reset
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        atexit.register(server.stop)
        host, port = server.get_host_and_port()
        _endpoint = f"http://{host}:{port}"
    return _endpoint


def reset() -> None:
    """Forget every resource (instances, buckets, ...)."""
    request = urllib.request.Request(f"{endpoint()}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    _images.clear()


def session() -> Any:
    """A boto3 session with dummy credentials (never the machine's), one per process:
    clients made from it share its loaded service models (a first client takes ~0.3 s)."""
    global _session
    if _session is None:
        import boto3

        _session = boto3.Session(aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                 aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                 aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"])
    return _session


def client(service: str, region: str = "us-east-1") -> Any:
    """A client of the server, made once per process (making one takes ~0.3 s)."""
    if (service, region) not in _clients:
        _clients[service, region] = session().client(service, region_name=region,
                                                     endpoint_url=endpoint())
    return _clients[service, region]


def image_id(region: str) -> str:
    """A valid AMI id in ``region``, registered after the last reset."""
    if region not in _images:
        _images[region] = client("ec2", region).register_image(
            Name=AMI_NAME, RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
    return _images[region]


def fresh(monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean server (its URL), with dummy credentials in the environment for SDK
    defaults and no AWS config file; for a test's fixture."""
    url = endpoint()
    reset()
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return url
