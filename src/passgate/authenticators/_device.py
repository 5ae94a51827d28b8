"""A CTAP2 authenticator in software: a `fido2.ctap.CtapDevice`, so fido2's own `Ctap2` and
`Fido2Client` drive it exactly as they drive a USB key.

It answers authenticatorGetInfo, authenticatorMakeCredential and authenticatorGetAssertion;
credentials are discoverable, user verification is always performed (the process is the
user), attestation is `packed` self-attestation."""

from __future__ import annotations

import base64
import hashlib
import secrets
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from threading import Event, Lock
from typing import Any, NamedTuple, cast

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from fido2 import cbor
from fido2.cose import ES256, ES384, ES512, MLDSA44, MLDSA65, MLDSA87, PS256, RS256, CoseKey, EdDSA
from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID
from fido2.webauthn import AuthenticatorData

from passgate.authenticators._store import CredentialFile, StoredCredential, Vault

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | rsa.RSAPrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
    | mldsa.MLDSA87PrivateKey
)
# The COSE classes fido2 encodes each algorithm's public key with, by name.
COSE: dict[str, type[CoseKey]] = {
    "ES256": ES256,
    "EdDSA": EdDSA,
    "RS256": RS256,
    "ES384": ES384,
    "ES512": ES512,
    "PS256": PS256,
    "ML-DSA-44": MLDSA44,
    "ML-DSA-65": MLDSA65,
    "ML-DSA-87": MLDSA87,
}
ALGORITHMS: dict[str, int] = {name: cose.ALGORITHM for name, cose in COSE.items()}
_BY_ID = {cose.ALGORITHM: cose for cose in COSE.values()}
_CURVES: dict[int, ec.EllipticCurve] = {
    ES256.ALGORITHM: ec.SECP256R1(),
    ES384.ALGORITHM: ec.SECP384R1(),
    ES512.ALGORITHM: ec.SECP521R1(),
}
_HASHES: dict[int, hashes.HashAlgorithm] = {
    ES256.ALGORITHM: hashes.SHA256(),
    ES384.ALGORITHM: hashes.SHA384(),
    ES512.ALGORITHM: hashes.SHA512(),
}
_ML_DSA: dict[int, Callable[[], PrivateKey]] = {
    MLDSA44.ALGORITHM: mldsa.MLDSA44PrivateKey.generate,
    MLDSA65.ALGORITHM: mldsa.MLDSA65PrivateKey.generate,
    MLDSA87.ALGORITHM: mldsa.MLDSA87PrivateKey.generate,
}
FLAG = AuthenticatorData.FLAG
MAKE_CREDENTIAL, GET_ASSERTION, GET_INFO = 0x01, 0x02, 0x04


def _new_key(algorithm: int) -> PrivateKey:
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm])
    if algorithm == EdDSA.ALGORITHM:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm in _ML_DSA:
        return _ML_DSA[algorithm]()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cose_key(algorithm: int, key: PrivateKey) -> CoseKey:
    convert = cast(Callable[[Any], CoseKey], _BY_ID[algorithm].from_cryptography_key)  # untyped
    return convert(key.public_key())


def _sign(key: PrivateKey, algorithm: int, message: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_HASHES[algorithm]))  # ASN.1 DER
    if isinstance(key, rsa.RSAPrivateKey):
        if algorithm == PS256.ALGORITHM:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.sign(message, pss, hashes.SHA256())
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(message)  # EdDSA and ML-DSA sign the message itself


def _load_key(pem: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, PrivateKey)
    return key


class SoftwareCtapDevice(CtapDevice):
    """The device half of `SoftwareAuthenticator`. `algorithms` are the ones it will create,
    in its order of preference; `backup_eligible`/`backed_up` make it look like a synced
    passkey provider, which (like them) always reports a sign count of 0."""

    def __init__(
        self,
        store: CredentialFile,
        *,
        algorithms: Sequence[str] = ("ES256",),
        backup_eligible: bool = False,
        backed_up: bool = False,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            raise ValueError(f"algorithms must be among {sorted(ALGORITHMS)}, not {algorithms}")
        if backed_up and not backup_eligible:
            raise ValueError("a backed-up credential must be backup eligible")
        self._store = store
        self._vault: Vault = store.load()
        # One command at a time, as a real authenticator: the async SDK calls it from worker
        # threads, and a command changes the vault and rewrites its file.
        self._lock = Lock()
        self._keys: dict[str, PrivateKey] = {}  # credential id -> key, parsed once
        self._algorithms = [ALGORITHMS[name] for name in algorithms]
        self._backup_flags = (FLAG.BE if backup_eligible else 0) | (FLAG.BS if backed_up else 0)
        self._synced = backed_up

    @property
    def capabilities(self) -> int:
        return CAPABILITY.CBOR

    @classmethod
    def list_devices(cls) -> Iterator[CtapDevice]:
        return iter(())  # never discovered: it is constructed with its file

    @property
    def vault(self) -> Vault:
        return self._vault

    def call(
        self,
        cmd: int,
        data: bytes = b"",
        event: Event | None = None,
        on_keepalive: Callable[[STATUS], None] | None = None,
    ) -> bytes:
        if cmd != CTAPHID.CBOR or not data:
            raise CtapError(CtapError.ERR.INVALID_COMMAND)
        handlers = {
            GET_INFO: self._get_info,
            MAKE_CREDENTIAL: self._make_credential,
            GET_ASSERTION: self._get_assertion,
        }
        handler = handlers.get(data[0])
        if handler is None:
            return bytes([CtapError.ERR.INVALID_COMMAND])
        try:
            request = cbor.decode(data[1:]) if len(data) > 1 else {}
            if not isinstance(request, Mapping):
                raise CtapError(CtapError.ERR.INVALID_CBOR)
            with self._lock:
                return b"\x00" + cbor.encode(handler(request))
        except CtapError as exc:
            return bytes([exc.code])
        except (ValueError, KeyError, TypeError):
            return bytes([CtapError.ERR.INVALID_CBOR])

    def _get_info(self, _request: Mapping[Any, Any]) -> dict[int, Any]:
        return {
            1: ["FIDO_2_0", "FIDO_2_1"],
            3: bytes.fromhex(self._vault.aaguid),
            4: {"rk": True, "up": True, "uv": True, "plat": False},
            5: 2048,
            6: [2, 1],  # Fido2Client insists on PIN/UV protocols when uv is offered
            9: ["internal"],
            10: [{"type": "public-key", "alg": alg} for alg in self._algorithms],
        }

    def _flags(self, options: Mapping[str, Any], *extra: int) -> int:
        flags = self._backup_flags | (FLAG.UP if options.get("up", True) else 0)
        flags |= FLAG.UV if options.get("uv") else 0
        for value in extra:
            flags |= value
        return int(flags)

    def _matching(self, rp_id: str, descriptors: Sequence[Any] | None) -> list[StoredCredential]:
        mine = [c for c in self._vault.credentials if c.rp_id == rp_id]
        if descriptors:
            wanted = {bytes(d["id"]) for d in descriptors}
            mine = [c for c in mine if _id_bytes(c.credential_id) in wanted]
        return sorted(mine, key=lambda c: c.created_at, reverse=True)

    def _make_credential(self, request: Mapping[int, Any]) -> dict[int, Any]:
        client_data_hash, rp, user = request[1], request[2], request[3]
        if request.get(5) and self._matching(rp["id"], request[5]):
            raise CtapError(CtapError.ERR.CREDENTIAL_EXCLUDED)
        offered = [p["alg"] for p in request[4] if p.get("type") == "public-key"]
        algorithm = self.choose_algorithm(offered)
        if algorithm is None:
            raise CtapError(CtapError.ERR.UNSUPPORTED_ALGORITHM)
        made = self.make(
            client_data_hash,
            rp["id"],
            bytes(user["id"]),
            user.get("name"),
            user.get("displayName"),
            algorithm,
            request.get(7) or {},
        )
        return {1: "packed", 2: made.auth_data, 3: {"alg": algorithm, "sig": made.signature}}

    def _get_assertion(self, request: Mapping[int, Any]) -> dict[int, Any]:
        rp_id, client_data_hash = request[1], request[2]
        found = self._matching(rp_id, request.get(3))
        if not found:
            raise CtapError(CtapError.ERR.NO_CREDENTIALS)
        credential = found[0]  # the newest: this device shows no account chooser
        auth_data, signature = self.assert_with(credential, client_data_hash, request.get(5) or {})
        response: dict[int, Any] = {
            1: {"type": "public-key", "id": _id_bytes(credential.credential_id)},
            2: auth_data,
            3: signature,
        }
        if not request.get(3):  # discoverable: say whose credential it is
            response[4] = {"id": _id_bytes(credential.user_id)}
        return response

    # The commands' work, on plain values: the CTAP handlers above and
    # `SoftwareAuthenticator`'s direct path both call these, holding `lock`.

    @property
    def lock(self) -> Lock:
        return self._lock

    def choose_algorithm(self, offered: Sequence[int]) -> int | None:
        """The first of this device's algorithms that the relying party offers."""
        return next((alg for alg in self._algorithms if alg in offered), None)

    def newest(self, rp_id: str) -> StoredCredential | None:
        """The credential a discoverable request gets: the newest for `rp_id`."""
        newest: StoredCredential | None = None
        for credential in self._vault.credentials:
            if credential.rp_id == rp_id and (
                newest is None or credential.created_at > newest.created_at
            ):
                newest = credential
        return newest

    def held(self, rp_id: str, credential_ids: Sequence[bytes]) -> StoredCredential | None:
        """The first of `credential_ids` this device holds for `rp_id`, in their order (what
        fido2's client settles on for an allow list: it tries the ids one at a time)."""
        mine = {c.credential_id: c for c in self._vault.credentials if c.rp_id == rp_id}
        for credential_id in credential_ids:
            credential = mine.get(_b64url(credential_id))
            if credential is not None:
                return credential
        return None

    def make(
        self,
        client_data_hash: bytes,
        rp_id: str,
        user_id: bytes,
        user_name: str | None,
        display_name: str | None,
        algorithm: int,
        options: Mapping[str, Any],
    ) -> Made:
        """Create and store a credential; its authenticatorData and packed self-attestation."""
        key = _new_key(algorithm)
        credential_id = secrets.token_bytes(32)
        auth_data = authenticator_data(
            hashlib.sha256(rp_id.encode()).digest(),
            self._flags({"uv": True, **options}, FLAG.AT),
            0,
            attested_credential_data(
                bytes.fromhex(self._vault.aaguid), credential_id, cose_key(algorithm, key)
            ),
        )
        self._vault.credentials.append(
            StoredCredential(
                credential_id=_b64url(credential_id),
                rp_id=rp_id,
                user_id=_b64url(user_id),
                user_name=user_name,
                display_name=display_name,
                algorithm=algorithm,
                private_key=key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                created_at=time.time(),
            )
        )
        self._store.save(self._vault)
        self._keys[_b64url(credential_id)] = key
        signature = _sign(key, algorithm, auth_data + client_data_hash)
        return Made(credential_id, auth_data, signature)

    def assert_with(
        self, credential: StoredCredential, client_data_hash: bytes, options: Mapping[str, Any]
    ) -> tuple[bytes, bytes]:
        """Sign an assertion with `credential`: its authenticatorData and signature. The sign
        count moves (and the file is written) unless the device is synced or `up` is off."""
        if not self._synced and options.get("up", True):
            credential.sign_count += 1
            self._store.save(self._vault)
        auth_data = authenticator_data(
            hashlib.sha256(credential.rp_id.encode()).digest(),
            self._flags({"uv": True, **options}),
            0 if self._synced else credential.sign_count,
        )
        key = self._keys.get(credential.credential_id)
        if key is None:
            key = self._keys[credential.credential_id] = _load_key(credential.private_key)
        return auth_data, _sign(key, credential.algorithm, auth_data + client_data_hash)


class Made(NamedTuple):
    credential_id: bytes
    auth_data: bytes
    signature: bytes


def authenticator_data(
    rp_id_hash: bytes, flags: int, counter: int, attested_credential: bytes = b""
) -> bytes:
    """WebAuthn authenticatorData: rpIdHash, flags, signCount (big-endian), then the attested
    credential data when the AT flag is set (no extensions: this device has none)."""
    return rp_id_hash + _FLAGS_AND_COUNTER.pack(flags, counter) + attested_credential


def attested_credential_data(aaguid: bytes, credential_id: bytes, public_key: bytes) -> bytes:
    """aaguid, credentialIdLength (big-endian), credentialId, COSE_Key."""
    return aaguid + len(credential_id).to_bytes(2, "big") + credential_id + public_key


_FLAGS_AND_COUNTER = struct.Struct(">BI")
# The CTAP2 canonical CBOR of an EC2 P-256 COSE_Key, as fido2's ES256 key encodes it:
# {1 (kty): 2 (EC2), 3 (alg): -7 (ES256), -1 (crv): 1 (P-256), -2 (x): 32 bytes, -3 (y): 32 bytes}
_ES256_KEY_HEAD = bytes.fromhex("a5010203262001215820")
_ES256_Y_HEAD = bytes.fromhex("225820")


def cose_key(algorithm: int, key: PrivateKey) -> bytes:
    """The credential public key as CBOR COSE_Key bytes."""
    if algorithm == ES256.ALGORITHM and isinstance(key, ec.EllipticCurvePrivateKey):
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )  # 0x04 || x || y
        return _ES256_KEY_HEAD + point[1:33] + _ES256_Y_HEAD + point[33:65]
    return cbor.encode(_cose_key(algorithm, key))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _id_bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
