"""The real server under a web configuration file: TLS with certificates
made for the test, client certificates, basic authentication and extra
headers, on every endpoint."""

import base64
import http.client
import socket
import ssl
import threading
import time

import bcrypt
import pytest
from binance_exporter.exposition.collector import MetricsPage
from binance_exporter.exposition.http_server import MAX_PENDING_AUTH_CHECKS, ExporterHTTPServer, Health
from binance_exporter.cycle.snapshot import Snapshot
from binance_exporter.exposition.web_config import BasicAuth, WebConfigFile
from .certificates import make_pki
from .helpers import wait_for

PASSWORD = b"wonderland"
ENDPOINTS = ("/", "/metrics", "/-/healthy", "/-/ready", "/healthz", "/nowhere")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def alice_hash():
    return bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4)).decode()


@pytest.fixture
def serve(tmp_path):
    """Starts a server with the given web configuration file text; returns its port."""
    servers = []

    def start(text, check_interval=5.0):
        path = tmp_path / "web.yml"
        path.write_text(text)
        snapshot = Snapshot(up=True, last_success=time.time())
        health = Health(lambda: snapshot, max_age=30)
        page = MetricsPage(lambda: snapshot)
        web = WebConfigFile(str(path), check_interval)
        server = ExporterHTTPServer(("127.0.0.1", 0), page, health, web=web).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.stop()


def tls_text(pki, extra=""):
    return f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n{extra}"


def client_context(pki, cert=None, key=None):
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        context.load_cert_chain(str(cert), str(key))
    return context


def get(port, path="/metrics", context=None, user=None, password=PASSWORD, host="127.0.0.1"):
    """(status, headers, body) of one request, over TLS when ``context`` is given."""
    if context is None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
    else:
        connection = http.client.HTTPSConnection(host, port, timeout=10, context=context)
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(user.encode() + b":" + password).decode()
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_every_endpoint_is_served_over_tls(serve, pki):
    port = serve(tls_text(pki))
    for path in ENDPOINTS:
        status, _, _ = get(port, path, client_context(pki))
        assert status == (404 if path == "/nowhere" else 200)
    status, _, body = get(port, "/metrics", client_context(pki), host="localhost")
    assert status == 200 and b"binance_up 1.0" in body


def test_a_plain_http_client_on_the_tls_port_is_told_to_use_https_and_the_server_goes_on(serve, pki):
    port = serve(tls_text(pki))
    status, _, body = get(port)
    assert status == 400 and body == b"this server speaks HTTPS only: ask https:// rather than http://\n"
    assert get(port, context=client_context(pki))[0] == 200


def test_the_minimum_tls_version_is_enforced(serve, pki):
    port = serve(tls_text(pki, "  min_version: TLS13\n"))
    old = client_context(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        get(port, context=old)
    assert get(port, context=client_context(pki))[0] == 200


def test_client_certificates_when_required(serve, pki):
    port = serve(tls_text(pki, f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"))
    assert get(port, context=client_context(pki, pki.client_cert, pki.client_key))[0] == 200
    for context in (client_context(pki), client_context(pki, pki.stranger_cert, pki.stranger_key)):
        with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
            get(port, context=context)


def test_client_certificates_when_given_are_verified(serve, pki):
    port = serve(tls_text(pki, f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki.ca}\n"))
    assert get(port, context=client_context(pki))[0] == 200
    assert get(port, context=client_context(pki, pki.client_cert, pki.client_key))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(port, context=client_context(pki, pki.stranger_cert, pki.stranger_key))


def test_client_allowed_sans_admits_only_the_names_listed(serve, pki):
    verify = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
    admitted = serve(tls_text(pki, verify + "  client_allowed_sans: [other.example, scraper.example]\n"))
    refused = serve(tls_text(pki, verify + "  client_allowed_sans: [other.example]\n"))
    context = client_context(pki, pki.client_cert, pki.client_key)
    assert get(admitted, context=context)[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        get(refused, context=context)


def test_basic_auth_guards_every_endpoint(serve, alice_hash):
    port = serve(f"basic_auth_users:\n  alice: {alice_hash}\n")
    for path in ENDPOINTS:
        status, headers, _ = get(port, path)
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="binance-exporter", charset="UTF-8"'
        assert get(port, path, user="alice", password=b"guess")[0] == 401
        assert get(port, path, user="mallory")[0] == 401
        assert get(port, path, user="alice")[0] == (404 if path == "/nowhere" else 200)


def test_basic_auth_over_tls(serve, pki, alice_hash):
    port = serve(tls_text(pki) + f"basic_auth_users:\n  alice: {alice_hash}\n")
    assert get(port, context=client_context(pki))[0] == 401
    assert get(port, context=client_context(pki), user="alice", password=b"guess")[0] == 401
    status, _, body = get(port, context=client_context(pki), user="alice")
    assert status == 200 and b"binance_up" in body


def test_a_password_is_checked_once_and_then_remembered(serve, alice_hash, monkeypatch):
    checks = []
    check = BasicAuth.check
    monkeypatch.setattr(BasicAuth, "check", lambda self, creds: checks.append(creds) or check(self, creds))
    port = serve(f"basic_auth_users:\n  alice: {alice_hash}\n")
    for _ in range(3):
        assert get(port, user="alice")[0] == 200
        assert get(port, user="alice", password=b"guess")[0] == 401
    assert len(checks) == 2


def test_passwords_waiting_to_be_checked_are_bounded_and_scrapers_already_checked_go_on(
    serve, alice_hash, monkeypatch
):
    release = threading.Event()
    check, known = BasicAuth.check, BasicAuth.known
    looked_up = []  # the serving thread looks up remembered outcomes, then hands what is unknown to a check

    def slow_check(self, credentials):
        if credentials.user != "alice":
            release.wait(30)
        return check(self, credentials)

    def recorded_known(self, credentials):
        looked_up.append(credentials.user)
        return known(self, credentials)

    monkeypatch.setattr(BasicAuth, "check", slow_check)
    monkeypatch.setattr(BasicAuth, "known", recorded_known)
    port = serve(f"basic_auth_users:\n  alice: {alice_hash}\n")
    assert get(port, user="alice")[0] == 200  # checked and remembered
    waiting = []
    for number in range(MAX_PENDING_AUTH_CHECKS):
        sock = socket.create_connection(("127.0.0.1", port))
        token = base64.b64encode(f"mallory:{number}".encode()).decode()
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n".encode())
        waiting.append(sock)
    wait_for(lambda: looked_up.count("mallory") == MAX_PENDING_AUTH_CHECKS)
    assert get(port, user="mallory", password=b"one more")[0] == 429
    assert get(port, user="alice")[0] == 200  # remembered: never waits behind the others
    release.set()
    for sock in waiting:
        sock.settimeout(10)
        assert sock.recv(100).startswith(b"HTTP/1.1 401 ")
        sock.close()


def test_headers_from_the_file_are_on_every_answer(serve, alice_hash):
    port = serve(
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        "    Content-Security-Policy: default-src 'self'\n" + f"basic_auth_users:\n  alice: {alice_hash}\n"
    )
    for path in ENDPOINTS:
        for user in (None, "alice"):
            _, headers, _ = get(port, path, user=user)
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Content-Security-Policy"] == "default-src 'self'"


def test_a_check_that_fails_on_a_bug_refuses_that_request_only(serve, alice_hash, monkeypatch, caplog):
    def broken(self, credentials):
        raise RuntimeError(f"bug checking {credentials.user}")

    monkeypatch.setattr(BasicAuth, "check", broken)
    port = serve(f"basic_auth_users:\n  alice: {alice_hash}\n")
    assert get(port, user="alice")[0] == 401
    assert "cannot check the password" in caplog.text


def test_users_and_tls_from_a_changed_file_apply_without_a_restart(serve, pki, alice_hash, tmp_path):
    port = serve("", check_interval=0)  # a change applies at the second look that finds it unchanged
    assert get(port)[0] == 200
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  alice: {alice_hash}\n")
    wait_for(lambda: get(port)[0] == 401)
    assert get(port, user="alice")[0] == 200
    (tmp_path / "web.yml").write_text(tls_text(pki))
    wait_for(lambda: get(port, context=client_context(pki))[0] == 200)
