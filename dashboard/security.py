"""The control room's HTTP armour: what every response carries, what its forms must carry,
and how fast one address may guess passwords.

- a Content-Security-Policy that lets Dash (its one inline renderer script and the
  clientside callbacks, allowed by their hashes), plotly and the locally served deck.gl
  bundle run, and nothing from elsewhere (the optional online tiles excepted);
- ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff`` and
  ``Referrer-Policy: strict-origin-when-cross-origin`` (flask-talisman);
- the session cookie ``Secure`` when the control room is served over HTTPS
  (``Settings.secure_cookies``, ``TWIN_DASHBOARD_SECURE_COOKIES=1``);
- a CSRF token (flask-wtf) in each of its plain HTML forms that change state (log in,
  log out, the language), checked on their POST. Dash's callbacks are JSON posts that a
  cross-site form cannot make, and the SameSite=Lax cookie is not sent with them anyway;
- wrong logins counted per address (flask-limiter; `LoginPolicy.address_failures` per
  window), behind `Settings.trusted_proxies` reverse proxies (X-Forwarded-For).

TLS itself is the reverse proxy's job: nothing here redirects to https.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import dash
import flask
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix

from dashboard.auth import LoginPolicy
from dashboard.context import Settings

__all__ = ["CSRFError", "RequestLimit", "check_form", "content_security_policy", "form_token",
           "login_throttle", "protect"]

#: Checks only the forms that ask for it (`check_form`), not every POST: Dash's callbacks
#: carry no form token.
_csrf = CSRFProtect()

#: What the pages need beyond 'self'. Plotly and Dash's components set inline styles, so
#: style-src keeps 'unsafe-inline'; scripts never do.
_IMAGES = ("data:", "blob:")


def content_security_policy(app: dash.Dash, settings: Settings) -> dict[str, list[str]]:
    """The policy for `app` as it is now: its inline scripts are allowed by their hashes, and
    Dash adds one of them (the page title's clientside callback) only on its first request."""
    tiles = [_origin(settings.tile_url)] if settings.tile_url else []
    return {
        "default-src": ["'self'"],
        "script-src": ["'self'", *app.csp_hashes()],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", *_IMAGES, *tiles],
        "connect-src": ["'self'", *tiles],
        "worker-src": ["'self'", "blob:"],
        "font-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }


def form_token() -> str:
    """The CSRF token a form of this session carries (the field `csrf_token`)."""
    return generate_csrf()


def check_form() -> None:
    """Refuse (CSRFError, 400) a form post without this session's token."""
    _csrf.protect()


def login_throttle(server: flask.Flask, settings: Settings,
                   on_breach: Callable[[RequestLimit], flask.Response]
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator for the login view: each address may post `address_failures` wrong
    logins (answered 401) per `window`; past that its posts are refused, and `on_breach`
    makes the answer, until the oldest failure leaves the window."""
    policy: LoginPolicy = settings.login
    limiter = Limiter(get_remote_address, app=server, storage_uri=settings.ratelimit_storage,
                      strategy="moving-window", headers_enabled=False)
    # counted apart in each of N processes, each allows 1/N: the address's total stays
    # within the policy whichever worker answers each try
    allowed = math.ceil(policy.address_failures / max(1, settings.login_processes))
    return limiter.limit(
        f"{allowed} per {int(policy.window.total_seconds())} seconds",
        methods=["POST"], deduct_when=lambda response: response.status_code == 401,
        on_breach=on_breach)


def protect(app: dash.Dash, settings: Settings) -> None:
    """Put the security headers on every response of `app`, and the CSRF check in reach of
    its forms."""
    if settings.trusted_proxies > 0:
        # the client's address (the one throttled) and scheme, not the proxy's
        n = settings.trusted_proxies
        app.server.wsgi_app = ProxyFix(app.server.wsgi_app, x_for=n, x_proto=n)
    # a token lasts as long as its session: a wall screen's logout button works after hours
    app.server.config.update(WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None)
    _csrf.init_app(app.server)
    Talisman(
        app.server,
        content_security_policy=None,  # below: it must follow Dash's late inline script
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        # the phone page asks for the position; nothing asks for the camera or microphone
        permissions_policy={"geolocation": "(self)", "camera": "()", "microphone": "()",
                            "browsing-topics": "()"},
        force_https=False,  # the proxy in front terminates TLS (and redirects, if it wants)
        session_cookie_secure=settings.secure_cookies,
        session_cookie_samesite="Lax",
        session_cookie_http_only=True,
        x_content_type_options=True,
    )

    @app.server.after_request
    def _content_security_policy(response):
        if "Content-Security-Policy" in response.headers:  # a stricter one of its own
            return response
        policy = content_security_policy(app, settings)  # a few short hashes: microseconds
        response.headers["Content-Security-Policy"] = "; ".join(
            f"{name} {' '.join(sources)}" for name, sources in policy.items())
        return response


def _origin(url: str) -> str:
    """The tile server's origin; a placeholder in the host ({s}) becomes a CSP wildcard."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{re.sub(r'{[^}]*}', '*', parts.netloc)}"
