"""Serving the window and the API over HTTP: who may log in, the security policy, launch.

`launch(demo, cfg, auth, assistant=..., api_key=...)` is the one place the Blocks are queued and
launched (cli.serve and the tests call it), with the OpenAI-compatible API (api.ChatAPI) on the
same app and port. Off this machine a login is required (`resolve_auth`) and so is an API key
(`resolve_api_key`); failed logins and failed keys are throttled per address (`LoginThrottle`)
and every response carries CONTENT_SECURITY_POLICY.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.responses import JSONResponse

from .api import ChatAPI
from .config import Config, ConfigError, is_loopback
from .ui import page

if TYPE_CHECKING:
    from gradio import Blocks

    from .rag import Assistant

API_KEY_MIN_CHARS = 16


def _secret_lines(variable: str, path: str, layout: str) -> list[str]:
    """The lines of the secrets file a variable names, or a ConfigError saying what is wrong."""
    try:
        return Path(path).read_text("utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"{variable} {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{variable} {path}: not UTF-8 text (byte {e.start}); save it as UTF-8 with {layout}"
        ) from None


def resolve_auth(cfg: Config, env: dict[str, str] | None = None) -> list[tuple[str, str]] | None:
    """Logins from ASSISTANT_USERNAME/ASSISTANT_PASSWORD or ASSISTANT_AUTH_FILE (user:password).

    Raises ConfigError when the host is not loopback and no login is configured.
    """
    env = dict(os.environ if env is None else env)
    logins: list[tuple[str, str]] = []
    user, password = env.get("ASSISTANT_USERNAME", ""), env.get("ASSISTANT_PASSWORD", "")
    if user or password:
        if not (user and password):
            raise ConfigError("set both ASSISTANT_USERNAME and ASSISTANT_PASSWORD, or neither")
        logins.append((user, password))
    auth_file = env.get("ASSISTANT_AUTH_FILE", "")
    if auth_file:
        lines = _secret_lines("ASSISTANT_AUTH_FILE", auth_file, "one user:password per line")
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, secret = line.partition(":")
            if not sep or not name.strip() or not secret:
                raise ConfigError(
                    f"ASSISTANT_AUTH_FILE {auth_file} line {number}: expected user:password"
                )
            logins.append((name.strip(), secret))
    if not logins and not is_loopback(cfg.host):
        raise ConfigError(
            f"refusing to serve on {cfg.host} without a login: anyone on the network could read "
            "your documents. Set ASSISTANT_USERNAME and ASSISTANT_PASSWORD, or ASSISTANT_AUTH_FILE "
            "(a file of user:password lines), or use --host 127.0.0.1"
        )
    return logins or None


def resolve_api_key(cfg: Config, env: dict[str, str] | None = None) -> str | None:
    """The API key from ASSISTANT_API_KEY or ASSISTANT_API_KEY_FILE (its first line), or None.

    Raises ConfigError when the host is not loopback and no key is set, or the key is short.
    The key is never logged nor shown.
    """
    env = dict(os.environ if env is None else env)
    key = env.get("ASSISTANT_API_KEY", "").strip()
    key_file = env.get("ASSISTANT_API_KEY_FILE", "")
    if not key and key_file:
        lines = _secret_lines("ASSISTANT_API_KEY_FILE", key_file, "the key on its first line")
        key = next((line.strip() for line in lines if line.strip()), "")
        if not key:
            raise ConfigError(f"ASSISTANT_API_KEY_FILE {key_file} is empty: put the key in it")
    new_key = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if key and len(key) < API_KEY_MIN_CHARS:
        raise ConfigError(
            f"the API key is {len(key)} characters long; use at least {API_KEY_MIN_CHARS} "
            f"(make one with {new_key})"
        )
    if not key and not is_loopback(cfg.host):
        raise ConfigError(
            f"refusing to serve the API on {cfg.host} without an API key: anyone on the "
            "network could read your documents through /v1/chat/completions. Set "
            f"ASSISTANT_API_KEY (make one with {new_key}) or ASSISTANT_API_KEY_FILE, "
            "or use --host 127.0.0.1"
        )
    return key or None


# The page may load only from its own origin: nothing a document or an answer names (an image,
# a font, a fetch) can reach another host. Gradio itself needs inline scripts and styles (its
# config and Svelte; gr.HTML evaluates its template as JavaScript), data:/blob: images and
# workers, and fetch/SSE to itself.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
LOGIN_FREE_FAILURES = 5  # failed logins an address may make before it has to wait
LOGIN_WAIT_S = 30.0  # the first wait; it doubles with each further failure
LOGIN_MAX_WAIT_S = 900.0


class ContentSecurityPolicy:
    """ASGI middleware: every response carries CONTENT_SECURITY_POLICY."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_policy(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() != b"content-security-policy"
                ]
                headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_policy)


class LoginThrottle:
    """Failed logins per client address: after LOGIN_FREE_FAILURES, a growing wait (a lock-out).

    Each attempt counts as failed when it starts (so a burst of parallel guesses is counted at
    once); a successful login clears the address.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (count, last attempt)
        self._lock = threading.Lock()

    def waiting(self, address: str) -> float:
        """The seconds address must wait before it may try again (0: it may try now)."""
        with self._lock:
            return self._waiting(address, self._clock())

    def _waiting(self, address: str, now: float) -> float:
        count, last = self._failures.get(address, (0, now))
        if count >= LOGIN_FREE_FAILURES:
            wait = min(LOGIN_MAX_WAIT_S, LOGIN_WAIT_S * 2 ** (count - LOGIN_FREE_FAILURES))
            if now - last < wait:
                return wait - (now - last)
        return 0.0

    def attempt(self, address: str) -> float:
        """0 if address may try now (the try is counted), else the seconds it must wait."""
        with self._lock:
            now = self._clock()
            wait = self._waiting(address, now)
            if wait > 0:
                return wait
            count, _ = self._failures.get(address, (0, now))
            if len(self._failures) > 10_000:  # forget addresses whose wait is long over
                self._failures = {
                    a: f for a, f in self._failures.items() if now - f[1] < LOGIN_MAX_WAIT_S
                }
            self._failures[address] = (count + 1, now)
            return 0.0

    def succeeded(self, address: str) -> None:
        """A correct login from address: its failures are forgotten."""
        with self._lock:
            self._failures.pop(address, None)

    def middleware(self, app: Any) -> Any:
        """ASGI middleware that passes POST /login through this throttle."""

        async def throttled(scope: dict, receive: Any, send: Any) -> None:
            path = scope.get("path", "").rstrip("/")
            if (
                scope["type"] != "http"
                or scope.get("method") != "POST"
                or not path.endswith("/login")
            ):
                return await app(scope, receive, send)
            address = (scope.get("client") or ("unknown",))[0]
            wait = self.attempt(address)
            if wait > 0:
                seconds = math.ceil(wait)
                response = JSONResponse(
                    {"detail": f"Too many failed logins: try again in {seconds} s."},
                    status_code=429,
                    headers={"Retry-After": str(seconds)},
                )
                return await response(scope, receive, send)

            async def watch(message: dict) -> None:
                if message["type"] == "http.response.start" and message["status"] == 200:
                    self.succeeded(address)
                await send(message)

            await app(scope, receive, watch)

        return throttled


def launch(
    demo: Blocks,
    cfg: Config,
    auth: list[tuple[str, str]] | None,
    assistant: Assistant | None = None,
    api_key: str | None = None,
    **kwargs: Any,
) -> Any:
    """Queue and launch the app on cfg.host:cfg.port; never shared publicly.

    With `assistant`, the OpenAI-compatible API answers from it on the same app (its routes
    come before the window's), asking for `api_key` when one is given.
    """
    demo.queue(default_concurrency_limit=1, max_size=64)
    throttle = LoginThrottle()
    middleware = [Middleware(ContentSecurityPolicy), Middleware(throttle.middleware)]
    app_kwargs: dict[str, Any] = {"middleware": middleware}
    if assistant is not None:
        api = ChatAPI(assistant, api_key, LoginThrottle())
        app_kwargs["routes"] = api.routes()
    return demo.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        share=False,
        auth=auth,
        auth_message=(
            f"Log in to the document assistant. After {LOGIN_FREE_FAILURES} failed logins an "
            f"address waits {LOGIN_WAIT_S:.0f} s, twice as long after each further failure."
        )
        if auth
        else None,
        app_kwargs=app_kwargs,
        show_error=True,
        max_file_size=cfg.max_document_bytes,
        ssr_mode=False,
        footer_links=[],
        **page(),
        **kwargs,
    )
