"""Bind9's rendered configuration, run by a real ``named`` (Debian's bind9 package).

The named.conf and zone seed come from the same renderers the component uses
(``bind9.named_conf``/``bind9.zone_seed`` of ``platform_dns.zone_spec`` of the prod stack file),
with test TSIG secrets under the same key names. Only what cannot be the pod's is rewritten: the
listen address/port and the file paths. The update-policy text is the rendered one, byte for byte.

Skipped only when ``named`` is not installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import dns.xfr
import dns.zone
import pytest

from components.dns import bind9

from components.dns import platform_dns
from components.core.contracts import BIND9_POD_PORT
from stacks.config import parse_config
from stacks.loader import read_stack

NAMED = shutil.which("named") or ("/usr/sbin/named" if os.access("/usr/sbin/named", os.X_OK) else None)
pytestmark = pytest.mark.skipif(
    NAMED is None,
    reason="named is not installed: apt-get install bind9 bind9-utils (bash .ci/run does) to run Bind9's policy tests",
)

EXT = platform_dns.EXTERNAL_DNS_KEY
CM = platform_dns.CERT_MANAGER_KEY
TIMEOUT = 5.0


def _free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (named listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def _rewrite(conf: str, old: str, new: str) -> str:
    assert conf.count(old) == 1, f"expected exactly one {old!r} in the rendered named.conf"
    return conf.replace(old, new)


@dataclass
class Named:
    """One named process over a temp dir; start/stop/restart keep the zone data and journal."""

    root: Path
    spec: bind9.ZoneSpec
    keys: dict[str, str]
    port: int
    proc: subprocess.Popen | None = None

    @property
    def zone(self) -> dns.name.Name:
        return dns.name.from_text(self.spec.zone)

    def prepare(self) -> None:
        data = self.root / "data"
        data.mkdir()
        (self.root / "run").mkdir()
        (self.root / "keys.conf").write_text(bind9.tsig_keys_conf(self.keys, self.spec.algorithm))
        (data / self.spec.zone_file).write_text(bind9.zone_seed(self.spec))
        conf = bind9.named_conf(self.spec)
        conf = _rewrite(conf, f'include "{bind9.KEYS_DIR}/{bind9.KEYS_FILE}";', f'include "{self.root}/keys.conf";')
        conf = _rewrite(conf, f'directory "{bind9.DATA_DIR}";',
                        f'directory "{data}";\n    session-keyfile "{self.root}/run/session.key";')
        conf = _rewrite(conf, f"listen-on port {BIND9_POD_PORT} {{ any; }};", f"listen-on port {self.port} {{ 127.0.0.1; }};")
        (self.root / "named.conf").write_text(conf)

    def start(self) -> None:
        log = open(self.root / "named.log", "ab")  # noqa: SIM115 - the child holds it; closed below
        # -g: foreground, log to stderr; -4: IPv4 only; -n 1: one worker (CI has few cores).
        self.proc = subprocess.Popen(
            [NAMED, "-g", "-4", "-n", "1", "-c", str(self.root / "named.conf")],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"named exited {self.proc.returncode}:\n{(self.root / 'named.log').read_text()}")
            try:
                # A short probe: named binds its socket before it loads the zone, and a query sent
                # in between waits its whole timeout unanswered.
                if self.query(self.spec.zone, "SOA", timeout=0.3).rcode() == dns.rcode.NOERROR:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"named did not serve the zone in 30 s:\n{(self.root / 'named.log').read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    # --- clients -------------------------------------------------------------------------------

    def query(self, name: str, rtype: str, *, recurse: bool = False, timeout: float = TIMEOUT) -> dns.message.Message:
        q = dns.message.make_query(name, rtype)
        if not recurse:
            q.flags &= ~dns.flags.RD
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=timeout)

    def keyring(self, key: str, secret: str | None = None) -> dict:
        return dns.tsigkeyring.from_text({key: (self.spec.algorithm, secret or self.keys[key])})

    def update(self, key: str, *ops: tuple, secret: str | None = None, keyname: str | None = None) -> int:
        """Send one RFC 2136 UPDATE signed with ``key``; ops: ("add"|"delete", name, type, data)."""
        name = keyname or key
        upd = dns.update.UpdateMessage(self.zone, keyring=self.keyring(name, secret), keyname=name,
                                       keyalgorithm=self.spec.algorithm)
        for op, owner, rtype, data in ops:
            if op == "add":
                upd.add(owner, 60, rtype, data)
            elif data is None:
                upd.delete(owner, rtype)
            else:
                upd.delete(owner, rtype, data)
        return dns.query.tcp(upd, "127.0.0.1", port=self.port, timeout=TIMEOUT).rcode()

    def records(self, name: str, rtype: str) -> set[str]:
        r = self.query(name, rtype)
        return {rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rtype) for rd in rrset}


def _axfr(server: Named, key: str | None) -> dns.zone.Zone:
    q = dns.message.make_query(server.zone, "AXFR")
    if key:
        q.use_tsig(server.keyring(key), keyname=key, algorithm=server.spec.algorithm)
    z = dns.zone.Zone(server.zone)
    dns.query.inbound_xfr("127.0.0.1", z, query=q, port=server.port, timeout=TIMEOUT, lifetime=TIMEOUT)
    return z


def _named(tmp: Path) -> Named:
    stack = read_stack("prod")
    cfg = parse_config(stack.raw, stack.secret_keys, stack="prod")
    spec = platform_dns.zone_spec(cfg)
    keys = {k: base64.b64encode(secrets.token_bytes(bind9.TSIG_KEY_BYTES[spec.algorithm])).decode() for k in (EXT, CM)}
    server = Named(root=tmp, spec=spec, keys=keys, port=_free_port())
    server.prepare()
    return server


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> Iterator[Named]:
    server = _named(tmp_path_factory.mktemp("named"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _challenges(server: Named) -> list[str]:
    """The names cert-manager's key may write (absolute: dnspython reads a bare name relative to the zone)."""
    return [f"{rule.name}." for rule in server.spec.update_rules if rule.key == CM and rule.action == "grant"]


# --- serving -----------------------------------------------------------------------------------

def test_serves_the_zone_authoritatively_with_soa_and_ns_of_the_parent_zone_server(named):
    soa = named.query(named.spec.zone, "SOA")
    assert soa.rcode() == dns.rcode.NOERROR and soa.flags & dns.flags.AA
    [rrset] = soa.answer
    assert rrset[0].mname.to_text() == f"{named.spec.nameserver}."
    ns = named.query(named.spec.zone, "NS")
    assert ns.flags & dns.flags.AA
    assert {rd.to_text() for rd in ns.answer[0]} == {f"{named.spec.nameserver}."}


def test_recursion_is_refused(named):
    r = named.query("example.com.", "A", recurse=True)
    assert r.rcode() == dns.rcode.REFUSED
    assert not r.flags & dns.flags.RA


def test_zone_transfer_needs_the_external_dns_key(named):
    with pytest.raises(dns.xfr.TransferError) as unsigned:
        _axfr(named, None)
    assert unsigned.value.rcode == dns.rcode.REFUSED
    with pytest.raises(dns.xfr.TransferError) as other_key:
        _axfr(named, CM)
    assert other_key.value.rcode == dns.rcode.REFUSED
    zone = _axfr(named, EXT)  # ExternalDNS lists the zone with AXFR (--rfc2136-tsig-axfr)
    assert zone.get_rdataset("@", "SOA") is not None


# --- the update matrix ---------------------------------------------------------------------------

def test_external_dns_may_change_a_aaaa_cname_and_txt_anywhere_else(named):
    z = named.spec.zone
    ok = [
        ("add", f"auth.{z}.", "A", "51.210.118.41"),
        ("add", f"auth.{z}.", "AAAA", "2001:db8::41"),
        ("add", f"www.{z}.", "CNAME", f"auth.{z}."),
        # The TXT registry record of auth's A record (external-dns v0.21 mapper: "a-<name>").
        ("add", f"a-auth.{z}.", "TXT", '"heritage=external-dns,external-dns/owner=weebo4cp"'),
        ("add", f"*.apps.t1.{z}.", "A", "51.210.118.43"),
    ]
    for op in ok:
        assert named.update(EXT, op) == dns.rcode.NOERROR, op
    assert named.records(f"auth.{z}.", "A") == {"51.210.118.41"}
    assert named.records(f"a-auth.{z}.", "TXT")
    assert named.update(EXT, ("delete", f"www.{z}.", "CNAME", None)) == dns.rcode.NOERROR
    assert not named.records(f"www.{z}.", "CNAME")


@pytest.mark.parametrize("op", [
    ("add", "sub.{z}.", "NS", "ns.evil.example."),  # a sub-delegation
    ("add", "{z}.", "NS", "ns.evil.example."),  # the apex NS
    ("delete", "{z}.", "NS", None),
    ("add", "{z}.", "MX", "10 mail.evil.example."),
    ("add", "srv.{z}.", "SRV", "0 0 443 auth.{z}."),
    ("add", "_acme-challenge.{z}.", "TXT", '"forged-challenge"'),
    ("delete", "_acme-challenge.{z}.", "TXT", None),
    ("add", "x._acme-challenge.{z}.", "A", "192.0.2.1"),
])
def test_external_dns_is_refused_everything_else(named, op):
    z = named.spec.zone
    action, owner, rtype, data = op
    op = (action, owner.format(z=z), rtype, None if data is None else data.format(z=z))
    assert named.update(EXT, op) == dns.rcode.REFUSED
    assert named.records(f"{z}.", "NS") == {f"{named.spec.nameserver}."}


def test_external_dns_cannot_touch_any_acme_challenge_name(named):
    challenges = _challenges(named)
    assert challenges, "no ACME challenge name in the rendered policy"
    for name in challenges:
        assert named.update(EXT, ("add", name, "TXT", '"x"')) == dns.rcode.REFUSED, name
        assert named.update(EXT, ("add", name, "CNAME", f"elsewhere.{named.spec.zone}.")) == dns.rcode.REFUSED, name


def test_cert_manager_may_write_only_txt_at_each_acme_challenge_name(named):
    for name in _challenges(named):
        # cert-manager's rfc2136 solver: Insert then Remove of one TXT RR
        # (Ref: cert-manager v1.21.1 pkg/issuer/acme/dns/rfc2136/rfc2136.go changeRecord).
        assert named.update(CM, ("add", name, "TXT", '"token-1"')) == dns.rcode.NOERROR, name
        assert named.records(name, "TXT") == {'"token-1"'}
        # cert-manager's self-check (dns01RecursiveNameserversOnly, pointed at Bind9) asks with
        # RD set (Ref: pkg/issuer/acme/dns/util/wait.go checkAuthoritativeNss -> DNSQuery
        # recursive=true): authoritative data is answered all the same.
        self_check = named.query(name, "TXT", recurse=True)
        assert self_check.rcode() == dns.rcode.NOERROR and self_check.flags & dns.flags.AA
        assert {rd.to_text() for rd in self_check.answer[0]} == {'"token-1"'}
        assert named.update(CM, ("delete", name, "TXT", '"token-1"')) == dns.rcode.NOERROR, name
        assert not named.records(name, "TXT")
        assert named.update(CM, ("add", name, "A", "192.0.2.1")) == dns.rcode.REFUSED, name


def test_cert_manager_cannot_touch_external_dns_records_or_its_txt_registry(named):
    z = named.spec.zone
    owner = '"heritage=external-dns,external-dns/owner=weebo4cp"'
    assert named.update(EXT, ("add", f"a-argocd.{z}.", "TXT", owner), ("add", f"argocd.{z}.", "A", "51.210.118.41")) \
        == dns.rcode.NOERROR
    for op in [
        ("delete", f"a-argocd.{z}.", "TXT", None),  # ExternalDNS's ownership record
        ("add", f"a-argocd.{z}.", "TXT", '"heritage=external-dns,external-dns/owner=attacker"'),
        ("delete", f"argocd.{z}.", "A", None),
        ("add", f"evil.{z}.", "TXT", '"x"'),
        ("add", f"_acme-challenge.other.{z}.", "TXT", '"not-a-certificate-of-ours"'),
        ("add", f"{z}.", "TXT", '"x"'),
    ]:
        assert named.update(CM, op) == dns.rcode.REFUSED, op
    assert named.records(f"a-argocd.{z}.", "TXT") == {owner}
    assert named.records(f"argocd.{z}.", "A") == {"51.210.118.41"}


def test_wrong_key_or_wrong_secret_is_not_authorised(named):
    z = named.spec.zone
    wrong_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    op = ("add", f"intruder.{z}.", "A", "192.0.2.66")
    for kwargs in ({"keyname": "intruder", "secret": wrong_secret}, {"secret": wrong_secret}):
        with pytest.raises(dns.tsig.PeerError) as err:
            named.update(EXT, op, **kwargs)
        # BADKEY (unknown key name) / BADSIG (wrong secret): the TSIG errors of a NOTAUTH answer.
        assert isinstance(err.value, (dns.tsig.PeerBadKey, dns.tsig.PeerBadSignature)), kwargs
    assert not named.records(f"intruder.{z}.", "A")


def test_updates_survive_a_restart(tmp_path):
    server = _named(tmp_path)
    z = server.spec.zone
    server.start()
    try:
        assert server.update(EXT, ("add", f"persist.{z}.", "A", "51.210.118.44")) == dns.rcode.NOERROR
        server.stop()
        server.start()
        assert server.records(f"persist.{z}.", "A") == {"51.210.118.44"}
        soa = server.query(z, "SOA").answer[0][0]
        assert soa.serial > 1  # the journal was replayed (or the zone dumped) with the new serial
    finally:
        server.stop()
