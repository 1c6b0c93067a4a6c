"""A stand-in identity provider for tests: an RSA key, its JWKS served over HTTP, and tokens minted
the way a real provider would (and the ways an attacker would try)."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

ISSUER = "https://idp.test"
AUDIENCE = "takedown"


class IdentityProvider:
    """Signs tokens with its key and serves the public half at /jwks."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex
        self.url = ""  # set once served
        self.app = FastAPI(title="identity provider")
        self.app.add_api_route("/jwks", self.jwks, methods=["GET"])

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def settings(self) -> dict:
        """The OIDC settings of a service that trusts this provider."""
        return {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": f"{self.url}/jwks"}

    def token(self, roles: list[str], agency: str | None = None, audience: str = AUDIENCE, lifetime_s: int = 300,
              subject: str = "alice", **claims) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": audience, "sub": subject, "iat": now, "nbf": now, "exp": now + lifetime_s,
                "roles": roles, **({"agency": agency} if agency else {}), **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid})

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def forged_hs256(self, roles: list[str]) -> str:
        """The key-confusion attack: HMAC 'signed' with the provider's public key as the secret."""
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300, "roles": roles}
        signing_input = f"{_b64(header)}.{_b64(body)}".encode()
        signature = hmac.new(self.public_pem(), signing_input, hashlib.sha256).digest()
        return signing_input.decode() + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")

    def unsigned(self, roles: list[str]) -> str:
        """alg: none, no signature."""
        now = int(time.time())
        header = {"alg": "none", "typ": "JWT", "kid": self.kid}
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300, "roles": roles}
        return f"{_b64(header)}.{_b64(body)}."


def _b64(document: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
