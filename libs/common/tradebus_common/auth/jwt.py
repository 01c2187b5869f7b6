"""NATS decentralized auth, the minimum tradebus needs: NKeys, operator/account/user JWTs
and `.creds` files, compatible with nats-server (`operator:` + `resolver: MEMORY`), the
`nats` CLI (`--creds`) and nats-py (`user_credentials=`).

A JWT here is nats-io/jwt v2: header {"typ":"JWT","alg":"ed25519-nkey"}, claims with
iss/sub as NKey public keys, signed with the issuer's ed25519 seed over
`base64url(header).base64url(claims)` (no padding). `jti` is base32(sha512/256(claims)).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import nkeys

PREFIX = {
    "operator": nkeys.PREFIX_BYTE_OPERATOR,
    "account": nkeys.PREFIX_BYTE_ACCOUNT,
    "user": nkeys.PREFIX_BYTE_USER,
}
_HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
UNLIMITED = -1


@dataclass(frozen=True)
class NKey:
    """A seed (secret, `S...`) and its public key (`O...`, `A...` or `U...`)."""

    seed: bytes

    @property
    def public(self) -> str:
        return nkeys.from_seed(bytearray(self.seed)).public_key.decode()

    def sign(self, data: bytes) -> bytes:
        return nkeys.from_seed(bytearray(self.seed)).sign(data)


def new_nkey(kind: str) -> NKey:
    return NKey(bytes(nkeys.encode_seed(os.urandom(32), PREFIX[kind])))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jti(claims: dict[str, Any]) -> str:
    digest = hashlib.new("sha512_256", _dumps(claims)).digest()
    return base64.b32encode(digest).rstrip(b"=").decode()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def encode_jwt(issuer: NKey, subject: str, name: str, nats: dict[str, Any]) -> str:
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public,
        "name": name,
        "sub": subject,
        "nats": {**nats, "version": 2},
    }
    claims["jti"] = _jti(claims)
    signing_input = f"{_b64(_dumps(_HEADER))}.{_b64(_dumps(claims))}"
    return f"{signing_input}.{_b64(issuer.sign(signing_input.encode()))}"


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (for tests and `tradebus auth` listings)."""
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def operator_jwt(operator: NKey, system_account: str, name: str = "tradebus") -> str:
    return encode_jwt(
        operator, operator.public, name, {"type": "operator", "system_account": system_account}
    )


def account_jwt(
    operator: NKey,
    account: str,
    name: str,
    jetstream: bool,
    revoked: dict[str, int] | None = None,
) -> str:
    limits: dict[str, Any] = {
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
        "imports": UNLIMITED,
        "exports": UNLIMITED,
        "wildcards": True,
        "conn": UNLIMITED,
        "leaf": UNLIMITED,
    }
    if jetstream:  # an account without storage limits has no JetStream at all
        limits |= {
            "mem_storage": UNLIMITED,
            "disk_storage": UNLIMITED,
            "streams": UNLIMITED,
            "consumer": UNLIMITED,
        }
    nats: dict[str, Any] = {
        "type": "account",
        "limits": limits,
        "default_permissions": {"pub": {}, "sub": {}},
    }
    if revoked:  # user public key -> unix time: JWTs issued before it are refused
        nats["revocations"] = revoked
    return encode_jwt(operator, account, name, nats)


def user_jwt(
    account: NKey,
    user: str,
    name: str,
    pub_allow: list[str],
    sub_allow: list[str],
    pub_deny: list[str] | None = None,
    respond: bool = False,
) -> str:
    nats: dict[str, Any] = {
        "type": "user",
        "pub": {"allow": sorted(pub_allow), **({"deny": sorted(pub_deny)} if pub_deny else {})},
        "sub": {"allow": sorted(sub_allow)},
        "subs": UNLIMITED,
        "data": UNLIMITED,
        "payload": UNLIMITED,
    }
    if respond:  # may answer requests: publish once to each reply subject it received
        nats["resp"] = {"max": 1, "ttl": 0}
    return encode_jwt(account, user, name, nats)


def creds_file_text(jwt: str, seed: bytes) -> str:
    """The `.creds` format nats-server's tools write and every NATS client reads."""
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n"
        "NKEYs are sensitive and should be treated as secrets.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed.decode()}\n"
        "------END USER NKEY SEED------\n\n"
        "*************************************************************\n"
    )
