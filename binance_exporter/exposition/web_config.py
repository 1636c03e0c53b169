"""The web configuration file (``--web.config.file``): TLS, basic
authentication and extra response headers, in the YAML that node_exporter
and every exporter built on Prometheus's exporter-toolkit read.

``load_web_config(path)`` reads and checks the file, certificates
included, and returns a ``WebConfig``; anything wrong raises
``WebConfigError`` with one line that says what. ``WebConfigFile`` reads
it again when it, or a file it names, changes: renewed certificates and
changed passwords apply without a restart. Relative file names are
taken from the configuration file's own directory, as exporter-toolkit
does. What exporter-toolkit accepts but this exporter cannot honour
(certificates inline, Go cipher-suite and curve names, client
certificates that are asked for but not verified, rate limits) is refused
with a line that says so, rather than silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import logging
import os
import re
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import bcrypt
import yaml

logger = logging.getLogger(__name__)

# How often the file and the files it names are read again to see whether
# they changed: renewed certificates apply within this time.
CHECK_INTERVAL = 5.0
# A web configuration file is a few lines; a megabyte is no file of this kind.
MAX_FILE_BYTES = 1024 * 1024
# bcrypt's cost doubles the time of a check with each step: about 70 ms at
# the usual 10, a second at 14. A check runs once per user and password (the
# result is remembered), but a higher cost lets a client with wrong
# passwords keep the checking thread busy for minutes.
MAX_BCRYPT_COST = 14
# Outcomes of checks remembered, so that a scraper's password is checked
# once, not at each scrape; the least recently used is forgotten first.
AUTH_CACHE_SIZE = 256
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit's names (Go's tls.ClientAuthType) and what they mean
# here. Go can ask for a certificate without verifying it; Python's ssl
# cannot, and an unverified certificate proves nothing: those two are refused.
TLS_VERSION_DEFAULTS = (("min_version", "TLS12"), ("max_version", "TLS13"))
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The headers exporter-toolkit lets a file set, and the values each may take (None: any).
ALLOWED_HEADERS: dict[str, Optional[tuple[str, ...]]] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
_UNSUPPORTED = {
    "cert": "certificates inline are not supported; use cert_file",
    "key": "keys inline are not supported; use key_file",
    "client_ca": "client CAs inline are not supported; use client_ca_file",
    "cipher_suites": "Go cipher-suite names are not supported; Python's defaults for TLS 1.2 and 1.3 are used",
    "curve_preferences": "Go curve names are not supported; OpenSSL's defaults are used",
}
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "client_allowed_sans",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
    *_UNSUPPORTED,
)


class WebConfigError(Exception):
    """A web configuration file that cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class WebConfig:
    """What the web configuration file asks of the HTTP server. The
    default, with no file, is plain HTTP open to all."""

    tls: Optional[ssl.SSLContext] = None
    # Client certificates must name one of these in their subject alternative names (empty: any).
    client_allowed_sans: frozenset[str] = frozenset()
    users: Mapping[str, bytes] = field(default_factory=dict)  # user name: bcrypt hash
    headers: tuple[tuple[str, str], ...] = ()
    files: tuple[str, ...] = ()  # the certificate, key and CA files it was made from

    @property
    def scheme(self) -> str:
        """``https`` when TLS is on, else ``http``."""
        return "https" if self.tls else "http"


def load_web_config(path: str) -> WebConfig:
    """The configuration in the file at ``path``; raises ``WebConfigError``."""
    try:
        with open(path, "rb") as file:
            text = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise WebConfigError(f"cannot read it: {exc.strerror or exc}") from exc
    if len(text) > MAX_FILE_BYTES:
        raise WebConfigError(f"larger than {MAX_FILE_BYTES} bytes: not a web configuration file")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise WebConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc
    document = _mapping(document if document is not None else {}, "the file")
    _known_keys(document, ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"), "")
    if "rate_limit" in document:
        raise WebConfigError("rate_limit is not supported; --web.max-connections bounds what clients can hold")
    directory = os.path.dirname(os.path.abspath(path))
    tls_section = _mapping(document.get("tls_server_config") or {}, "tls_server_config")
    tls, sans, files = _tls(tls_section, directory) if tls_section else (None, frozenset(), ())
    return WebConfig(
        tls=tls,
        client_allowed_sans=sans,
        users=_users(document.get("basic_auth_users") or {}),
        headers=_headers(_mapping(document.get("http_server_config") or {}, "http_server_config")),
        files=files,
    )


class WebConfigFile:
    """The configuration in a web configuration file, kept current: calling
    it returns the configuration, after reading the file again if at least
    ``CHECK_INTERVAL`` has passed and it, or a certificate, key or CA file it
    names, has changed since — and then stayed the same for one more check,
    so that a file caught half-written (a truncated ``basic_auth_users``
    would open the exporter to all) is never applied. A changed configuration
    that cannot be used is logged once, and the last good one stays."""

    def __init__(self, path: str, check_interval: float = CHECK_INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._check_interval = check_interval
        self._clock = clock
        self.current = load_web_config(path)  # raises WebConfigError: a file that cannot be used at start
        self._contents = self._read(self.current.files)
        self._changed: Optional[bytes] = None  # what changed contents were seen at the last check
        self._checked_at = clock()

    def _read(self, files: tuple[str, ...]) -> bytes:
        """A digest of what the file and ``files`` hold now."""
        digest = hashlib.sha256()
        for name in (self.path, *files):
            try:
                with open(name, "rb") as file:
                    digest.update(hashlib.sha256(file.read(MAX_FILE_BYTES + 1)).digest())
            except OSError as exc:
                digest.update(f"unreadable: {exc}".encode())
        return digest.digest()

    def __call__(self) -> WebConfig:
        now = self._clock()
        if now - self._checked_at < self._check_interval:
            return self.current
        self._checked_at = now
        contents = self._read(self.current.files)
        settled, self._changed = contents == self._changed, contents
        if contents != self._contents and settled:
            self._contents = contents
            try:
                self.current = load_web_config(self.path)
            except WebConfigError as exc:
                logger.error(
                    "--web.config.file %s changed and cannot be used: %s; keeping the last good one", self.path, exc
                )
            else:
                self._contents = self._read(self.current.files)
                logger.info("--web.config.file %s changed: read again", self.path)
        return self.current


def _mapping(value: object, where: str) -> dict:
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise WebConfigError(f"{where} must be a mapping of names to values")
    return value


def _known_keys(section: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in section:
        if key not in known:
            closest = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {prefix}{closest[0]}?" if closest else f"known: {', '.join(known)}"
            raise WebConfigError(f"unknown setting {prefix}{key}; {hint}")


def _string(section: Mapping[str, Any], key: str, prefix: str, default: str = "") -> str:
    value = section.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise WebConfigError(f"{prefix}{key} must be a string")
    return value


def _tls(section: Mapping[str, Any], directory: str) -> tuple[ssl.SSLContext, frozenset[str], tuple[str, ...]]:
    prefix = "tls_server_config."
    _known_keys(section, _TLS_KEYS, prefix)
    for key, why in _UNSUPPORTED.items():
        if section.get(key):
            raise WebConfigError(f"{prefix}{key}: {why}")
    cert_file, key_file = (_string(section, key, prefix) for key in ("cert_file", "key_file"))
    if not cert_file or not key_file:
        raise WebConfigError(f"{prefix}cert_file and {prefix}key_file are both needed for TLS")
    verify_mode, ca_file = _client_verification(section, prefix)
    versions = [_tls_version(section, key, prefix, default) for key, default in TLS_VERSION_DEFAULTS]
    if versions[0] > versions[1]:
        raise WebConfigError(f"{prefix}min_version is above max_version")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version, context.maximum_version = versions
    if section.get("prefer_server_cipher_suites", True) is not False:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    cert_file, key_file, ca_file = (
        os.path.join(directory, name) if name else "" for name in (cert_file, key_file, ca_file)
    )
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(
            f"cannot load {prefix}cert_file {cert_file} with key_file {key_file}: {_reason(exc)}"
        ) from exc
    context.verify_mode = verify_mode
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"cannot load {prefix}client_ca_file {ca_file}: {_reason(exc)}") from exc
    sans = section.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(san, str) for san in sans):
        raise WebConfigError(f"{prefix}client_allowed_sans must be a list of strings")
    if sans and context.verify_mode == ssl.CERT_NONE:
        raise WebConfigError(f"{prefix}client_allowed_sans needs client certificates (client_auth_type)")
    return context, frozenset(sans), tuple(name for name in (cert_file, key_file, ca_file) if name)


def _client_verification(section: Mapping[str, Any], prefix: str) -> tuple[ssl.VerifyMode, str]:
    """(how client certificates are verified, the CA file to verify them with)."""
    auth_type = _string(section, "client_auth_type", prefix, "NoClientCert")
    if auth_type in UNVERIFIED_CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"{prefix}client_auth_type {auth_type} accepts certificates without verifying them, which proves "
            "nothing: use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
        )
    if auth_type not in CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"{prefix}client_auth_type must be one of {'|'.join(CLIENT_AUTH_TYPES)}, not {auth_type!r}"
        )
    ca_file = _string(section, "client_ca_file", prefix)
    if CLIENT_AUTH_TYPES[auth_type] != ssl.CERT_NONE and not ca_file:
        raise WebConfigError(f"{prefix}client_auth_type {auth_type} needs client_ca_file to verify certificates with")
    if ca_file and auth_type == "NoClientCert":
        raise WebConfigError(f"{prefix}client_ca_file is set but client_auth_type asks for no client certificate")
    return CLIENT_AUTH_TYPES[auth_type], ca_file


def _tls_version(section: Mapping[str, Any], key: str, prefix: str, default: str) -> ssl.TLSVersion:
    name = _string(section, key, prefix, default)
    if name not in TLS_VERSIONS:
        raise WebConfigError(f"{prefix}{key} must be one of {'|'.join(TLS_VERSIONS)}, not {name!r}")
    return TLS_VERSIONS[name]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _users(section: object) -> dict[str, bytes]:
    users = {}
    for name, hashed in _mapping(section, "basic_auth_users").items():
        if not name or ":" in name:
            raise WebConfigError(f"basic_auth_users: user name {name!r} must be non-empty and have no colon")
        match = _BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if not match:
            raise WebConfigError(
                f"basic_auth_users.{name} is not a bcrypt hash ($2y$10$ and 53 more characters): "
                "passwords are stored hashed, see the README on how to make one"
            )
        if not 4 <= int(match.group(1)) <= MAX_BCRYPT_COST:
            raise WebConfigError(
                f"basic_auth_users.{name}: bcrypt cost {match.group(1)} is outside 04 to {MAX_BCRYPT_COST}"
            )
        users[name] = hashed.encode("ascii")
    return users


def _headers(section: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    _known_keys(section, ("headers", "http2"), "http_server_config.")
    if not isinstance(section.get("http2", True), bool):
        raise WebConfigError("http_server_config.http2 must be true or false")
    headers = []
    for name, value in _mapping(section.get("headers") or {}, "http_server_config.headers").items():
        if name not in ALLOWED_HEADERS:
            raise WebConfigError(
                f"http_server_config.headers: {name} cannot be set (allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        allowed = ALLOWED_HEADERS[name]
        if not isinstance(value, str) or "\r" in value or "\n" in value or (allowed and value not in allowed):
            expected = f"one of {'|'.join(allowed)}" if allowed else "a one-line string"
            raise WebConfigError(f"http_server_config.headers.{name} must be {expected}")
        if value:
            headers.append((name, value))
    return tuple(headers)


@dataclass(frozen=True)
class Credentials:
    """A user name and password from an ``Authorization: Basic`` header."""

    user: str
    password: bytes

    @staticmethod
    def parse(header: Optional[str]) -> Optional["Credentials"]:
        """The credentials in ``header``, or None when it holds none that can be read."""
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, colon, password = decoded.partition(b":")
        if not colon:
            return None
        return Credentials(user.decode("utf-8", "replace"), password)


class BasicAuth:
    """Checks credentials against ``basic_auth_users``.

    ``known(credentials)`` answers at once from the outcomes remembered;
    ``check(credentials)`` runs bcrypt (tens of milliseconds) and is meant
    for a thread of its own; ``remember`` stores its outcome. An unknown
    user is checked against a hash of the same cost, so that timing does
    not tell which users exist."""

    def __init__(self, users: Mapping[str, bytes]):
        self.users = dict(users)
        self._outcomes: OrderedDict[bytes, bool] = OrderedDict()
        self._unknown_user_hash: Optional[bytes] = None  # made at the first check of an unknown user

    def _key(self, credentials: Credentials) -> bytes:
        hashed = self.users.get(credentials.user, b"")
        return hashlib.sha256(b"\0".join((credentials.user.encode(), hashed, credentials.password))).digest()

    def known(self, credentials: Credentials) -> Optional[bool]:
        """The remembered outcome for ``credentials``, or None if they have not been checked."""
        key = self._key(credentials)
        if key in self._outcomes:
            self._outcomes.move_to_end(key)
        return self._outcomes.get(key)

    def check(self, credentials: Credentials) -> bool:
        """Whether ``credentials`` name a user and that user's password."""
        hashed = self.users.get(credentials.user)
        if hashed is None and self._unknown_user_hash is None:
            cost = max((int(known[4:6]) for known in self.users.values()), default=4)
            self._unknown_user_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(cost))
        try:
            matches = bcrypt.checkpw(credentials.password, hashed or self._unknown_user_hash or b"")
        except ValueError:  # a password over bcrypt's 72 bytes
            matches = False
        return matches and hashed is not None

    def remember(self, credentials: Credentials, outcome: bool) -> None:
        """Stores the outcome of ``check``; the least recently used goes when the store is full."""
        self._outcomes[self._key(credentials)] = outcome
        while len(self._outcomes) > AUTH_CACHE_SIZE:
            self._outcomes.popitem(last=False)
