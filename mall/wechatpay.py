"""The WeChat Pay API v3 notification contract, both sides of it.

The sandbox payer signs `timestamp\\nnonce\\nbody\\n` with the platform's RSA key
(SHA256withRSA) and encrypts the transaction resource with AES-256-GCM under the APIv3
key, exactly as WeChat Pay does; the mall verifies and decrypts with the same rules it
would apply to the real service.  No home-made crypto: `cryptography` does the work."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SIGNATURE = "Wechatpay-Signature"
TIMESTAMP = "Wechatpay-Timestamp"
NONCE = "Wechatpay-Nonce"
SERIAL = "Wechatpay-Serial"


def new_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _message(timestamp: str, nonce: str, body: bytes) -> bytes:
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


@dataclass
class PlatformSigner:
    """The payer's side: holds the private key."""

    private_key_pem: str
    serial: str

    def __post_init__(self) -> None:
        self._key = serialization.load_pem_private_key(self.private_key_pem.encode(), None)

    def sign(self, timestamp: str, nonce: str, body: bytes) -> str:
        signature = self._key.sign(_message(timestamp, nonce, body), padding.PKCS1v15(),
                                   hashes.SHA256())
        return base64.b64encode(signature).decode()

    def verifier(self) -> PlatformVerifier:
        return PlatformVerifier(self._key.public_key(), self.serial)


@dataclass
class PlatformVerifier:
    """The merchant's side: holds the platform certificate's public key and serial."""

    public_key: rsa.RSAPublicKey
    serial: str

    def verify(self, serial: str, timestamp: str, nonce: str, body: bytes,
               signature: str) -> bool:
        if serial != self.serial:
            return False
        try:
            self.public_key.verify(base64.b64decode(signature, validate=True),
                                   _message(timestamp, nonce, body), padding.PKCS1v15(),
                                   hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True


def encrypt_resource(apiv3_key: bytes, data: dict, nonce: str, associated_data: str) -> dict:
    ciphertext = AESGCM(apiv3_key).encrypt(nonce.encode(), json.dumps(data).encode(),
                                           associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext).decode(),
            "nonce": nonce, "associated_data": associated_data, "original_type": "transaction"}


def decrypt_resource(apiv3_key: bytes, resource: dict) -> dict:
    """The transaction inside a notification; ValueError when it does not decrypt."""
    try:
        plaintext = AESGCM(apiv3_key).decrypt(
            str(resource["nonce"]).encode(), base64.b64decode(resource["ciphertext"]),
            str(resource.get("associated_data", "")).encode())
        return json.loads(plaintext)
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise ValueError("resource does not decrypt") from exc
