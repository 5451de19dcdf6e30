"""The OpenID provider, through Authlib: discovery, the authorization URL (PKCE, state, nonce), the code
exchanged for tokens, and the ID token's signature and claims checked. The only module importing Authlib.

Authlib caches the discovery document per process and fetches the provider's keys again when a
token names a key it does not know (a rotation); nothing here is kept between requests otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import JoseError

TIMEOUT = 10.0  # seconds for each request to the provider: a page waits on it
LEEWAY = 60  # seconds of clock difference allowed with the provider for the token's times
Failure = Literal["unreachable", "invalid"]


class ProviderError(Exception):
    """The provider could not be used (*kind* unreachable), or its answer failed a check (invalid)."""

    def __init__(self, kind: Failure, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and what the callback must find again: state, nonce, PKCE verifier."""

    url: str
    state: str
    nonce: str
    verifier: str


class Provider:
    """One configured OpenID provider (TRACKER_OIDC_*)."""

    def __init__(self, *, issuer: str, client_id: str, client_secret: str, name: str = "") -> None:
        self.issuer = issuer.rstrip("/")
        self.name = name or issuer
        # A confidential client sends its secret to the token endpoint; a public one relies on PKCE alone.
        auth = {"token_endpoint_auth_method": "none"} if not client_secret else {}
        self.client: StarletteOAuth2App = OAuth().register(
            "oidc",
            client_id=client_id,
            client_secret=client_secret or None,
            server_metadata_url=f"{self.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256", "timeout": TIMEOUT,
                           **auth},
        )  # fmt: skip

    async def start(self, redirect_uri: str) -> Started:
        """The authorization URL for a new sign-in, with its state, nonce and PKCE verifier."""
        async with failures():
            await self.metadata()
            made = await self.client.create_authorization_url(redirect_uri)
        return Started(made["url"], made["state"], made["nonce"], made["code_verifier"])

    async def finish(self, code: str, *, redirect_uri: str, verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange *code* for tokens; the ID token's claims once Authlib has checked them, else ProviderError."""
        async with failures():
            metadata = await self.metadata()
            token = await self.client.fetch_access_token(code=code, redirect_uri=redirect_uri, code_verifier=verifier)
            if "id_token" not in token:
                raise ProviderError("invalid", "the token answer has no ID token")
            # Signature (the provider's published keys), iss, aud = our client id, nonce, exp and iat.
            options = {"iss": {"essential": True, "values": [metadata["issuer"]]}}
            claims = dict(await self.client.parse_id_token(token, nonce, claims_options=options, leeway=LEEWAY))
            if "email" not in claims and metadata.get("userinfo_endpoint"):
                claims = await self.with_userinfo(token, claims)
        return claims

    async def with_userinfo(self, token: dict[str, Any], claims: dict[str, Any]) -> dict[str, Any]:
        """*claims* completed from the userinfo endpoint (some providers put the email only there)."""
        info = dict(await self.client.userinfo(token=token))
        if info.get("sub") != claims.get("sub"):  # OpenID Connect Core §5.3.2: else it is someone else's
            raise ProviderError("invalid", "the userinfo answer is about another subject")
        return {**info, **claims}

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, once its issuer is the one configured (OpenID Connect Discovery §4.3)."""
        metadata: dict[str, Any] = await self.client.load_server_metadata()
        said = metadata.get("issuer")
        if not isinstance(said, str) or said.rstrip("/") != self.issuer:
            raise ProviderError("invalid", f"the provider names its issuer {str(said)[:200]!r}, not {self.issuer!r}")
        return metadata


class failures:  # noqa: N801  # used as `async with failures():`
    """Turn what the provider and Authlib raise into ProviderError: never a traceback for the reader."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _: object) -> bool:
        if error is None or isinstance(error, ProviderError):
            return False
        if isinstance(error, JoseError | AuthlibBaseError):
            raise ProviderError("invalid", f"{type(error).__name__}: {error}"[:300]) from error
        if isinstance(error, httpx2.HTTPError | ValueError | KeyError | TypeError | RuntimeError):
            raise ProviderError("unreachable", f"{type(error).__name__}: {error}"[:300]) from error
        return False
