"""The daemon over native TLS (built with the tls feature): the Python SDK
and curl over https with a test CA made here; clients refuse an expired or
wrong-host certificate; a renewed certificate is served after SIGHUP without
a restart."""

import datetime
import os
import signal
import socket
import ssl
import subprocess
import time

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import example_binary

pytestmark = pytest.mark.anyio

NOW = datetime.datetime.now(datetime.timezone.utc)
YEAR = datetime.timedelta(days=365)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Ca:
    def __init__(self, directory):
        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name("test CA")).issuer_name(name("test CA"))
            .public_key(self.key.public_key()).serial_number(1)
            .not_valid_before(NOW - YEAR).not_valid_after(NOW + YEAR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, serial: int, hosts=("localhost",), valid=(NOW - YEAR, NOW + YEAR)):
        """Writes cert.pem and key.pem for `hosts`; returns the serial."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(hosts[0])).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(valid[0]).not_valid_after(valid[1])
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        (self.dir / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.dir / "key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return serial


class Daemon:
    def __init__(self, home, directory):
        env = {**os.environ, "HOME": str(home)}
        for key in list(env):
            if key.startswith("SNOWFLAKE_"):
                del env[key]
        self.proc = subprocess.Popen(
            [example_binary("server"), "--port", "0", "--tls-cert", str(directory / "cert.pem"),
             "--tls-key", str(directory / "key.pem"), "--tls-reload-interval", "1h"],
            stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening on https://"), line
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"https://localhost:{self.port}"

    def stop(self):
        self.proc.terminate()
        assert self.proc.wait(timeout=10) == 0


@pytest.fixture
def ca(tmp_path):
    return Ca(tmp_path)


def served_serial(ca: Ca, port: int) -> int:
    context = ssl.create_default_context(cafile=str(ca.path))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


async def test_the_sdk_and_curl_over_https(ca, tmp_path):
    ca.leaf(2)
    daemon = Daemon(tmp_path, tmp_path)
    try:
        context = ssl.create_default_context(cafile=str(ca.path))
        async with httpx2.AsyncClient(verify=context, timeout=30) as http:
            async with Client(streamable_http_client(f"{daemon.url}/mcp", http_client=http)) as client:
                result = await client.call_tool("execute_query", {"query": "SELECT 3 AS n"})
                assert result.structured_content["rows"] == [[3]]
            r = await http.get(f"{daemon.url}/health")
            assert r.status_code == 200
            assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        curl = subprocess.run(["curl", "-sS", "--cacert", str(ca.path), f"{daemon.url}/health"],
                              capture_output=True, text=True, timeout=30)
        assert curl.returncode == 0, curl.stderr
        # Without the CA, curl refuses the certificate.
        refused = subprocess.run(["curl", "-sS", f"{daemon.url}/health"], capture_output=True, text=True, timeout=30)
        assert refused.returncode != 0
    finally:
        daemon.stop()


@pytest.mark.parametrize("case", ["expired", "wrong host"])
async def test_clients_refuse_a_bad_certificate(ca, tmp_path, case):
    if case == "expired":
        ca.leaf(3, valid=(NOW - 2 * YEAR, NOW - YEAR))
    else:
        ca.leaf(3, hosts=("other.example",))
    daemon = Daemon(tmp_path, tmp_path)
    try:
        context = ssl.create_default_context(cafile=str(ca.path))
        async with httpx2.AsyncClient(verify=context, timeout=30) as http:
            with pytest.raises(httpx2.ConnectError) as err:
                await http.get(f"{daemon.url}/health")
            assert "CERTIFICATE_VERIFY_FAILED" in str(err.value) or "certificate" in str(err.value).lower()
    finally:
        daemon.stop()


def test_a_renewed_certificate_is_served_after_sighup(ca, tmp_path):
    ca.leaf(10)
    daemon = Daemon(tmp_path, tmp_path)
    try:
        assert served_serial(ca, daemon.port) == 10
        ca.leaf(11)
        daemon.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while served_serial(ca, daemon.port) != 11:
            assert time.monotonic() < deadline, "the renewed certificate was not served"
            time.sleep(0.1)
        assert daemon.proc.poll() is None, "the daemon restarted or stopped"
    finally:
        daemon.stop()
