"""The generated identities and files, without a server: least privilege by construction,
JWTs that verify, idempotent regeneration, rotation that revokes, violation parsing."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import nkeys
import pytest

from tradebus_common import subjects
from tradebus_common.auth import jwt
from tradebus_common.auth.generate import init_auth
from tradebus_common.auth.identities import (
    SERVICE_IDENTITIES,
    SERVICES,
    all_identities,
    operator_identity,
    strategy_identity,
    wildcard,
)
from tradebus_common.auth.monitor import parse_violation, violation_alert
from tradebus_common.events import AlertCode, Severity

SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` one or more trailing tokens."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def may_publish(identity, subject: str) -> bool:  # noqa: ANN001
    denied = any(matches(d, subject) for d in identity.pub_deny)
    return not denied and any(matches(a, subject) for a in identity.pub)


IDENTITIES = all_identities(["demo", "momentum"])
NON_ADMIN = [i for i in IDENTITIES if i.name != "admin"]


def test_matcher():
    assert matches("trading.*.x", "trading.a.x") and not matches("trading.*", "trading.a.b")
    assert matches("trading.>", "trading.a.b") and not matches("trading.>", "trading")


@pytest.mark.parametrize("subject", [subjects.CONTROL_RESUME, subjects.CONTROL_MODE,
                                     subjects.CONTROL_STAGE, subjects.control("accept")])  # fmt: skip
def test_only_the_operator_may_publish_operator_commands(subject: str):
    allowed = {i.name for i in IDENTITIES if may_publish(i, subject)}
    assert allowed == {"operator", "admin"}


def test_everyone_may_halt():
    assert all(may_publish(i, subjects.CONTROL_HALT) for i in IDENTITIES)


@pytest.mark.parametrize(
    "admin_subject",
    [
        "$JS.API.STREAM.CREATE.TRADING",
        "$JS.API.STREAM.UPDATE.TRADING",
        "$JS.API.STREAM.DELETE.TRADING",
        "$JS.API.STREAM.PURGE.TRADING",
        "$JS.API.STREAM.MSG.DELETE.TRADING",
        "$JS.API.CONSUMER.DELETE.TRADING.risk-gate",
    ],
)
def test_nobody_but_admin_administers_streams(admin_subject: str):
    assert not [i.name for i in NON_ADMIN if may_publish(i, admin_subject)]


def test_a_strategy_publishes_only_its_own_signals():
    me = strategy_identity("demo")
    assert may_publish(me, "trading.signal.demo")
    assert not may_publish(me, "trading.signal.momentum")
    assert not may_publish(me, "trading.fill.paper.BTC-USDT")
    # it reads only its feedback: fills, its own denials and rejections (the SDK's my_events)
    assert me.sub == [
        "_INBOX.>",
        "trading.fill.>",
        "trading.order.denied.demo",
        "trading.strategy.demo.rejected",
    ]


def test_each_catalogue_event_subject_has_its_publishing_service():
    """Derived from subjects.CATALOGUE: a service may publish what the catalogue says."""
    by_name = {i.name: i for i in IDENTITIES}
    for spec in subjects.CATALOGUE:
        example = wildcard(spec.pattern).replace("*", "x")
        for label in spec.publishers:
            svc = "demo-feed" if label.endswith("(demo feed)") else label.split(" ")[0]
            if svc in SERVICES and spec.stream is not None:
                assert may_publish(by_name[svc], example), (svc, spec.pattern)


def test_services_cannot_take_over_each_others_durables():
    by_name = {i.name: i for i in IDENTITIES}
    for name in SERVICE_IDENTITIES:
        for other, grant in SERVICES.items():
            for durable in grant.durables:
                subject = f"$JS.API.CONSUMER.CREATE.TRADING.{durable}"
                assert may_publish(by_name[name], subject) == (name == other), (name, durable)


def test_every_durable_in_the_services_is_granted():
    """A new durable consumer needs a line in auth/identities.py, or its service is refused
    under `tradebus up` (auth on). This test names the missing one."""
    granted = {d for g in SERVICES.values() for d in g.durables}
    found = set()
    for path in SERVICES_DIR.glob("*/tradebus_*/**/*.py"):
        if "example" in path.name:  # strategy examples run as strategies, not services
            continue
        text = path.read_text()
        found |= set(re.findall(r'durable="([\w-]+)"', text))
        found |= set(re.findall(r'^\w*DURABLE\w* = "([\w-]+)"', text, re.M))
    assert found, "no durables found: the pattern is stale"
    assert found <= granted, f"durables without a grant: {sorted(found - granted)}"


def test_only_named_services_may_open_ephemeral_consumers_on_trading():
    """The ephemeral-create subject accepts a consumer name and then updates a durable of
    that name (nats-server behaviour): it is a hijack vector, so it is kept narrow."""
    allowed = {i.name for i in IDENTITIES if may_publish(i, "$JS.API.CONSUMER.CREATE.TRADING")}
    assert allowed == {"risk-gate", "reconciler", "operator", "observer", "admin"}
    assert all(
        may_publish(i, f"$JS.API.CONSUMER.CREATE.KV_{subjects.BUCKET_HEALTH}")
        for i in IDENTITIES
        if i.name in SERVICE_IDENTITIES
    )


def test_operator_cannot_administer_but_can_read_and_command():
    op = operator_identity()
    assert may_publish(op, "$JS.API.CONSUMER.CREATE.TRADING")
    assert not may_publish(op, "$JS.API.STREAM.DELETE.TRADING")


def test_jwt_is_signed_by_its_issuer(tmp_path: Path):
    account, user = jwt.new_nkey("account"), jwt.new_nkey("user")
    token = jwt.user_jwt(account, user.public, "x", ["a.b"], ["_INBOX.>"])
    header, claims, sig = token.split(".")
    signing_input = f"{header}.{claims}".encode()
    raw_sig = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    assert nkeys.from_seed(bytearray(account.seed)).verify(signing_input, raw_sig)
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {
        "typ": "JWT", "alg": "ed25519-nkey"
    }  # fmt: skip
    decoded = jwt.decode_claims(token)
    assert decoded["iss"] == account.public and decoded["sub"] == user.public
    assert decoded["nats"]["pub"]["allow"] == ["a.b"] and decoded["nats"]["type"] == "user"
    assert user.public.startswith("U") and account.public.startswith("A")


def test_init_is_idempotent_and_rotation_revokes(tmp_path: Path):
    first = init_auth(tmp_path, ["demo"])
    keys = first.identities()
    operator_creds = first.creds("operator").read_text()
    again = init_auth(tmp_path, ["demo"])
    assert again.identities() == keys  # same keys: deployed creds stay valid
    assert (first.creds("operator").stat().st_mode & 0o777) == 0o600
    rotated = init_auth(tmp_path, ["demo"], rotate=["signal"])
    assert rotated.identities()["signal"] != keys["signal"]
    assert rotated.identities()["operator"] == keys["operator"]
    assert first.creds("operator").read_text().split("\n")[-8:] == operator_creds.split("\n")[-8:]
    revoked = json.loads((tmp_path / "keys" / "revocations.json").read_text())
    assert keys["signal"] in revoked
    conf = (tmp_path / "nats" / "auth.conf").read_text()
    account_jwts = [jwt.decode_claims(t) for t in re.findall(r'"(eyJ[^"]+)"', conf)]
    tradebus = next(c for c in account_jwts if c["name"] == "TRADEBUS")
    assert keys["signal"] in tradebus["nats"]["revocations"]  # the server refuses the old key


def test_rerunning_init_later_keeps_the_operator_jwt(tmp_path: Path, monkeypatch):
    """nats-server refuses to reload a changed trusted operator: a later run (a rotation,
    a new strategy) must not re-issue it, or the reload fails and old keys stay valid."""
    first = init_auth(tmp_path, ["demo"])
    operator_line = first.server_conf.parent.joinpath("auth.conf").read_text().splitlines()[1]
    later = jwt.time.time() + 3600
    monkeypatch.setattr(jwt.time, "time", lambda: later)
    init_auth(tmp_path, ["demo", "new"], rotate=["signal"])
    assert (tmp_path / "nats" / "auth.conf").read_text().splitlines()[1] == operator_line


def test_init_with_tls_writes_certificates_and_the_tls_block(tmp_path: Path):
    from cryptography import x509

    layout = init_auth(tmp_path, [], tls=True)
    cert = x509.load_pem_x509_certificate((layout.tls_dir / "server-cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "nats" in names.get_values_for_type(x509.DNSName)
    assert 'cert_file: "tls/server-cert.pem"' in layout.server_conf.read_text()
    assert (layout.tls_dir / "server-key.pem").stat().st_mode & 0o777 == 0o600


LOG_LINE = (
    '[6780] 2026/11/21 07:25:45.157695 [ERR] 127.0.0.1:33866 - cid:35 - "v2.16.0:python3" - '
    '"AC27STQ3ORBMGVUKNHSK5LFXPLMTSX77ZQLPE7QGLWTUW3J2D3X6S2OD/TRADEBUS/jwt:'
    'UAF7I57UQU7RIXFG3RJPZGRNIN5VQOMOQJHF22WGWSCPFQIRKCZLGHHF" - Publish Violation - '
    'Subject "trading.control.resume"'
)


def test_violation_from_a_server_log_line():
    key = "UAF7I57UQU7RIXFG3RJPZGRNIN5VQOMOQJHF22WGWSCPFQIRKCZLGHHF"
    v = parse_violation(LOG_LINE, {key: "strategy-demo"})
    assert v is not None and (v.identity, v.subject, v.kind) == (
        "strategy-demo", "trading.control.resume", "publish"
    )  # fmt: skip
    alert = violation_alert(v)
    assert alert.code is AlertCode.PERMISSION_VIOLATION and alert.severity is Severity.CRITICAL
    assert alert.id == violation_alert(v).id  # the same line never alerts twice
    assert parse_violation("[INF] Server is ready", {}) is None
    other = parse_violation(LOG_LINE.replace("trading.control.resume", "trading.fill.x.y"), {})
    assert other is not None and other.identity == key  # unknown key: named by its key
    assert violation_alert(other).severity is Severity.ERROR


def test_auth_cli_init_and_list(tmp_path: Path):
    import subprocess
    import sys

    cli = [sys.executable, "-m", "tradebus_common.cli.main", "auth"]
    out = subprocess.run(
        [*cli, "init", "--out", str(tmp_path), "--strategy", "momentum"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"nats --creds {tmp_path}/creds/operator.creds pub trading.control.halt" in out
    assert not re.search(r"\bS[A-Z2-7]{57}\b", out)  # no NKey seed is ever printed
    listed = json.loads(
        subprocess.run(
            [*cli, "list", "--out", str(tmp_path), "--json"], capture_output=True, text=True,
            check=True,
        ).stdout
    )  # fmt: skip
    assert listed["strategy-momentum"]["pub"] == ["trading.control.halt", "trading.signal.momentum"]
