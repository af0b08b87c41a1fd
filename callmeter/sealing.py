"""Secrets kept in the database sealed, so that a dump alone does not reveal them.

Webhook signing secrets are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`) under a
key derived from `JWT_SECRET` with HKDF: the database and the service's configuration are both needed
to read them. Changing `JWT_SECRET` makes the stored secrets unreadable: endpoints then need to be
created again (their deliveries say why).
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callmeter.errors import ConfigError

_INFO = b"callmeter webhook endpoint secrets v1"


def _fernet(master: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(master: str, secret: str) -> str:
    return _fernet(master).encrypt(secret.encode()).decode()


def unseal(master: str, sealed: str) -> str:
    try:
        return _fernet(master).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigError("a webhook secret cannot be read with this JWT_SECRET (was it changed?)") from None
