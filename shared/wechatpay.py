"""The WeChat Pay API v3 contract, both sides of it.

Notifications: the payer signs `timestamp\\nnonce\\nbody\\n` with the platform's RSA key
(SHA256withRSA) and encrypts the transaction resource with AES-256-GCM under the APIv3 key,
exactly as WeChat Pay does; the mall verifies and decrypts with the same rules it would apply
to the real service.  Requests: the merchant (the mall) signs
`method\\npath\\ntimestamp\\nnonce\\nbody\\n` with its own RSA key into a
`WECHATPAY2-SHA256-RSA2048` Authorization header, which the payer verifies.  No home-made
crypto: `cryptography` does the work."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

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


def _sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _verifies(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(),
                   hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _private(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


@dataclass
class PlatformSigner:
    """The payer's side: holds the private key."""

    private_key_pem: str
    serial: str

    def __post_init__(self) -> None:
        self._key = _private(self.private_key_pem)

    def sign(self, timestamp: str, nonce: str, body: bytes) -> str:
        return _sign(self._key, _message(timestamp, nonce, body))

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        """The four Wechatpay-* headers of a notification (or a signed response)."""
        nonce = secrets.token_hex(16)
        return {SIGNATURE: self.sign(str(timestamp), nonce, body), TIMESTAMP: str(timestamp),
                NONCE: nonce, SERIAL: self.serial}

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
        return _verifies(self.public_key, _message(timestamp, nonce, body), signature)


AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def _request_message(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


@dataclass
class MerchantSigner:
    """The merchant's side of an API request: signs with the merchant's private key."""

    mchid: str
    private_key_pem: str
    serial: str

    def __post_init__(self) -> None:
        self._key = _private(self.private_key_pem)

    def authorization(self, method: str, path: str, body: bytes, timestamp: int) -> str:
        """The Authorization header of a request; `path` with its query string."""
        nonce = secrets.token_hex(16)
        signature = _sign(self._key, _request_message(method, path, str(timestamp), nonce,
                                                      body))
        return (f'{AUTH_SCHEME} mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{signature}",timestamp="{timestamp}",serial_no="{self.serial}"')


@dataclass
class MerchantVerifier:
    """The payer's side: the merchant certificate's public key, its serial and the mchid."""

    mchid: str
    public_key: rsa.RSAPublicKey
    serial: str

    def refusal(self, header: str, method: str, path: str, body: bytes, now: float,
                window_seconds: float) -> str | None:
        """Why a request's Authorization fails (None when it holds): WeChat Pay answers
        401 SIGN_ERROR to all of these."""
        scheme, _, rest = header.partition(" ")
        if scheme != AUTH_SCHEME:
            return f"Authorization must use {AUTH_SCHEME}"
        fields = dict(_AUTH_FIELD.findall(rest))
        missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - set(fields)
        if missing:
            return f"Authorization lacks {', '.join(sorted(missing))}"
        if fields["mchid"] != self.mchid or fields["serial_no"] != self.serial:
            return "unknown merchant or certificate serial"
        if not fields["timestamp"].isascii() or not fields["timestamp"].isdigit() or abs(
                now - int(fields["timestamp"])) > window_seconds:
            return "timestamp outside the accepted window"
        if not _verifies(self.public_key, _request_message(
                method, path, fields["timestamp"], fields["nonce_str"], body),
                fields["signature"]):
            return "signature does not verify"
        return None


@dataclass(frozen=True)
class Keyring:
    """The keys of one merchant account with the payer, as a staging file both sides read.

    In production each side holds only its own half: WeChat Pay the platform's private key
    and the merchant's certificate, the merchant its private key, the platform certificate
    and the APIv3 key (set in the merchant portal).  A staging payer and its malls share one
    file instead; each side builds only the objects of its own half from it."""

    mchid: str
    appid: str
    apiv3_key: str
    platform_private_key: str
    platform_serial: str
    merchant_private_key: str
    merchant_serial: str

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        """The keyring at `path`, made on first use (first writer wins, others read it)."""
        if not path.exists():
            made = cls("1900000109", "wx" + secrets.token_hex(8), secrets.token_hex(16),
                       new_private_key_pem(), secrets.token_hex(20).upper(),
                       new_private_key_pem(), secrets.token_hex(20).upper())
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                    json.dump(asdict(made), out, indent=1)
                return made
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a payment keyring: {exc}") from exc

    # The merchant's half.
    def merchant_signer(self) -> MerchantSigner:
        return MerchantSigner(self.mchid, self.merchant_private_key, self.merchant_serial)

    def platform_verifier(self) -> PlatformVerifier:
        return PlatformSigner(self.platform_private_key, self.platform_serial).verifier()

    # The payer's half.
    def platform_signer(self) -> PlatformSigner:
        return PlatformSigner(self.platform_private_key, self.platform_serial)

    def merchant_verifier(self) -> MerchantVerifier:
        return MerchantVerifier(self.mchid, _private(self.merchant_private_key).public_key(),
                                self.merchant_serial)


def encrypt_resource(apiv3_key: bytes, data: dict, nonce: str, associated_data: str,
                     original_type: str = "transaction") -> dict:
    """A notification's resource: `transaction` for payments, `refund` for refunds."""
    ciphertext = AESGCM(apiv3_key).encrypt(nonce.encode(), json.dumps(data).encode(),
                                           associated_data.encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext": base64.b64encode(ciphertext).decode(),
            "nonce": nonce, "associated_data": associated_data, "original_type": original_type}


def decrypt_resource(apiv3_key: bytes, resource: dict) -> dict:
    """The transaction inside a notification; ValueError when it does not decrypt."""
    try:
        plaintext = AESGCM(apiv3_key).decrypt(
            str(resource["nonce"]).encode(), base64.b64decode(resource["ciphertext"]),
            str(resource.get("associated_data", "")).encode())
        return json.loads(plaintext)
    except (InvalidTag, KeyError, TypeError, ValueError) as exc:
        raise ValueError("resource does not decrypt") from exc
