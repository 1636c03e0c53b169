"""The web configuration file: what it accepts, what it refuses and why,
and the password checks of basic authentication."""

import base64
import logging
import ssl

import bcrypt
import pytest
from binance_exporter.exposition import web_config
from binance_exporter.exposition.web_config import (
    AUTH_CACHE_SIZE,
    BasicAuth,
    Credentials,
    WebConfig,
    WebConfigError,
    WebConfigFile,
    load_web_config,
)
from .certificates import make_pki
from .helpers import FakeClock

# Cost 4, bcrypt's lowest: tests check behaviour, not hashing time.
ALICE_HASH = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(4)).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(tmp_path, text):
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def tls_section(pki, extra=""):
    return f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n{extra}"


def test_an_empty_file_is_plain_http_open_to_all(tmp_path):
    config = load_web_config(write(tmp_path, ""))
    assert config == WebConfig() and config.scheme == "http"


def test_a_full_file_is_read(tmp_path, pki):
    config = load_web_config(
        write(
            tmp_path,
            tls_section(
                pki,
                f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.ca}\n"
                "  min_version: TLS13\n  client_allowed_sans: [scraper.example]\n",
            )
            + f"basic_auth_users:\n  alice: {ALICE_HASH}\n"
            + "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n"
            "    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
        )
    )
    assert config.scheme == "https"
    assert config.tls.verify_mode == ssl.CERT_REQUIRED
    assert config.tls.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.client_allowed_sans == {"scraper.example"}
    assert config.users == {"alice": ALICE_HASH.encode()}
    assert config.headers == (("X-Frame-Options", "deny"), ("Strict-Transport-Security", "max-age=31536000"))


def test_relative_file_names_are_taken_from_the_files_own_directory(tmp_path, pki, monkeypatch):
    (tmp_path / "server.pem").write_bytes(pki.server_cert.read_bytes())
    (tmp_path / "server.key").write_bytes(pki.server_key.read_bytes())
    path = write(tmp_path, "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n")
    monkeypatch.chdir("/")
    assert load_web_config(path).tls is not None


def test_a_2y_hash_as_htpasswd_makes_it_is_accepted(tmp_path):
    hashed = ALICE_HASH.replace("$2b$", "$2y$", 1)
    auth = BasicAuth(load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: '{hashed}'\n")).users)
    assert auth.check(Credentials("alice", b"wonderland"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2", "not valid YAML at line 1"),
        ("- a\n- b\n", "the file must be a mapping"),
        ("tls_config: {}\n", "unknown setting tls_config; did you mean tls_server_config?"),
        ("users: {}\n", "unknown setting users; known: tls_server_config, http_server_config, basic_auth_users"),
        ("tls_server_config:\n  certfile: a\n", "unknown setting tls_server_config.certfile; did you mean tls_server_"),
        ("rate_limit: {interval: 1s, burst: 20}\n", "rate_limit is not supported"),
        ("tls_server_config:\n  cert_file: a.pem\n", "cert_file and tls_server_config.key_file are both needed"),
        ("tls_server_config:\n  cert: '---'\n", "tls_server_config.cert: certificates inline are not supported"),
        ("tls_server_config:\n  cert_file: 5\n  key_file: x\n", "tls_server_config.cert_file must be a string"),
        ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "Go cipher-suite names are not supported"),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice is not a bcrypt hash"),
        ("basic_auth_users:\n  alice: 5\n", "basic_auth_users.alice is not a bcrypt hash"),
        ("basic_auth_users:\n  'a:b': x\n", "user name 'a:b' must be non-empty and have no colon"),
        ("basic_auth_users: [alice]\n", "basic_auth_users must be a mapping"),
        ("http_server_config:\n  headers:\n    Server: nginx\n", "Server cannot be set (allowed: Strict-Transport"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "X-Frame-Options must be one of deny|same"),
        ("http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\nX: y\"\n", "must be a one-line string"),
        ("http_server_config:\n  http2: maybe\n", "http_server_config.http2 must be true or false"),
        ("http_server_config:\n  tls: {}\n", "unknown setting http_server_config.tls"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(WebConfigError) as error:
        load_web_config(write(tmp_path, text))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_bcrypt_cost_that_would_stall_password_checks_is_refused(tmp_path):
    hashed = "$2b$15$" + ALICE_HASH[7:]
    with pytest.raises(WebConfigError, match="bcrypt cost 15 is outside 04 to 14"):
        load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: '{hashed}'\n"))


@pytest.mark.parametrize(
    "extra, message",
    [
        ("  client_auth_type: RequireAnyClientCert\n", "accepts certificates without verifying them"),
        ("  client_auth_type: Sometimes\n", "client_auth_type must be one of NoClientCert|VerifyClientCertIfGiven"),
        ("  client_auth_type: RequireAndVerifyClientCert\n", "needs client_ca_file to verify certificates with"),
        ("  client_ca_file: {ca}\n", "client_ca_file is set but client_auth_type asks for no client certificate"),
        ("  min_version: TLS14\n", "min_version must be one of TLS10|TLS11|TLS12|TLS13, not 'TLS14'"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "min_version is above max_version"),
        ("  client_allowed_sans: [a]\n", "client_allowed_sans needs client certificates"),
        (
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {ca}\n  client_allowed_sans: a\n",
            "client_allowed_sans must be a list of strings",
        ),
        (
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: /nonexistent/ca.pem\n",
            "cannot load tls_server_config.client_ca_file /nonexistent/ca.pem: No such file or directory",
        ),
    ],
)
def test_tls_settings_that_cannot_be_used_are_refused_in_one_line(tmp_path, pki, extra, message):
    with pytest.raises(WebConfigError) as error:
        load_web_config(write(tmp_path, tls_section(pki, extra.format(ca=pki.ca))))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unreadable_or_mismatched_certificates_are_refused_in_one_line(tmp_path, pki):
    for cert, key, message in [
        ("/nonexistent/server.pem", pki.server_key, "No such file or directory"),
        (pki.server_cert, pki.client_key, "KEY_VALUES_MISMATCH"),
        (pki.server_key, pki.server_key, "cannot load tls_server_config.cert_file"),
    ]:
        path = write(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
        with pytest.raises(WebConfigError, match=message) as error:
            load_web_config(path)
        assert "\n" not in str(error.value)


def test_a_missing_or_huge_file_is_refused(tmp_path, monkeypatch):
    with pytest.raises(WebConfigError, match="cannot read it: No such file or directory"):
        load_web_config(str(tmp_path / "absent.yml"))
    monkeypatch.setattr(web_config, "MAX_FILE_BYTES", 16)
    with pytest.raises(WebConfigError, match="larger than 16 bytes"):
        load_web_config(write(tmp_path, "# " + "x" * 20))


@pytest.mark.parametrize(
    "header, credentials",
    [
        ("Basic " + base64.b64encode(b"alice:wonder:land").decode(), Credentials("alice", b"wonder:land")),
        ("basic " + base64.b64encode(b"alice:").decode(), Credentials("alice", b"")),
        ("Basic " + base64.b64encode("zoë:pässword".encode()).decode(), Credentials("zoë", "pässword".encode())),
        ("Basic " + base64.b64encode(b"alice").decode(), None),
        ("Basic not*base64", None),
        ("Bearer abc", None),
        ("", None),
        (None, None),
    ],
)
def test_credentials_are_read_from_a_basic_authorization_header(header, credentials):
    assert Credentials.parse(header) == credentials


def test_a_password_is_checked_against_its_users_hash_only():
    auth = BasicAuth({"alice": ALICE_HASH.encode(), "bob": bcrypt.hashpw(b"builder", bcrypt.gensalt(4))})
    assert auth.check(Credentials("alice", b"wonderland"))
    assert not auth.check(Credentials("alice", b"builder"))
    assert not auth.check(Credentials("carol", b"wonderland"))  # an unknown user
    assert not auth.check(Credentials("alice", b"x" * 100))  # over bcrypt's 72 bytes


def test_outcomes_are_remembered_up_to_a_bound_least_recently_used_first():
    auth = BasicAuth({"alice": ALICE_HASH.encode()})
    good, bad = Credentials("alice", b"wonderland"), Credentials("alice", b"guess")
    assert auth.known(good) is None
    auth.remember(good, True)
    auth.remember(bad, False)
    assert (auth.known(bad), auth.known(good)) == (False, True)
    for number in range(AUTH_CACHE_SIZE - 1):
        auth.remember(Credentials("mallory", str(number).encode()), False)
    assert auth.known(bad) is None  # used least recently: forgotten first
    assert auth.known(good) is True


def test_a_changed_file_is_read_again_after_the_check_interval(tmp_path, caplog):
    caplog.set_level(logging.INFO, "binance_exporter.exposition.web_config")
    clock = FakeClock()
    path = write(tmp_path, "")
    web = WebConfigFile(path, check_interval=5, clock=clock)
    assert web().users == {}
    write(tmp_path, f"basic_auth_users:\n  alice: {ALICE_HASH}\n")
    clock.advance(4.9)
    assert web().users == {}
    clock.advance(0.1)
    assert web().users == {}  # changed: applied once it has stayed the same for one more check
    clock.advance(5)
    assert web().users == {"alice": ALICE_HASH.encode()}
    assert f"--web.config.file {path} changed: read again" in caplog.text


def test_a_changed_file_that_cannot_be_used_is_logged_once_and_the_last_good_one_stays(tmp_path, caplog):
    clock = FakeClock()
    path = write(tmp_path, f"basic_auth_users:\n  alice: {ALICE_HASH}\n")
    web = WebConfigFile(path, check_interval=5, clock=clock)
    write(tmp_path, "basic_auth_users:\n  alice: hunter2\n")
    for _ in range(3):
        clock.advance(5)
        assert web().users == {"alice": ALICE_HASH.encode()}
    assert caplog.text.count("changed and cannot be used: basic_auth_users.alice is not a bcrypt hash") == 1


def test_a_renewed_certificate_is_read_again(tmp_path):
    (tmp_path / "first").mkdir()
    (tmp_path / "renewed").mkdir()
    first, renewed = make_pki(tmp_path / "first"), make_pki(tmp_path / "renewed")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(first.server_cert.read_bytes())
    key.write_bytes(first.server_key.read_bytes())
    clock = FakeClock()
    web = WebConfigFile(write(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"), 5, clock)
    before = web().tls
    assert web.current.files == (str(cert), str(key))
    cert.write_bytes(renewed.server_cert.read_bytes())
    key.write_bytes(renewed.server_key.read_bytes())
    clock.advance(5)
    assert web().tls is before
    clock.advance(5)
    assert web().tls is not before


def test_a_file_still_changing_is_not_applied_until_it_stays_the_same(tmp_path):
    clock = FakeClock()
    path = write(tmp_path, f"basic_auth_users:\n  alice: {ALICE_HASH}\n")
    web = WebConfigFile(path, check_interval=5, clock=clock)
    for text in ("basic_", "basic_auth_users:\n", f"basic_auth_users:\n  bob: {ALICE_HASH}\n"):
        write(tmp_path, text)  # caught half-written at each check: a file with no users would open it to all
        clock.advance(5)
        assert web().users == {"alice": ALICE_HASH.encode()}
    clock.advance(5)
    assert web().users == {"bob": ALICE_HASH.encode()}


def test_a_file_that_cannot_be_used_at_start_is_an_error(tmp_path):
    with pytest.raises(WebConfigError, match="not a bcrypt hash"):
        WebConfigFile(write(tmp_path, "basic_auth_users:\n  alice: hunter2\n"))
