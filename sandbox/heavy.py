"""Pages that weigh what real dealer portals weigh (the ``heavy_pages`` knob).

A real portal ships a script bundle of a megabyte or two that must run before its page is
usable, web fonts, large images, and a third-party analytics script that answers slowly. The
sandbox's own pages are a few kilobytes, so a runner tuned on them can look fast and still be
slow on a real site. With the knob on, every page's head loads a parser-blocking bundle (nothing
below it exists until it has run), the body uses a web font and shows two photographs, and an
``async`` analytics script comes from another host, ``analytics.localhost`` (Chromium resolves
every ``*.localhost`` name to loopback), which answers after ``third_party_delay_ms``.

Every asset is generated deterministically once per process and served with the long-lived
cache headers real bundles carry (their names hold their digest).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

#: The third party's host: a name of its own, so a browser can block it without touching the
#: portal's own host (it resolves to loopback in Chromium, and the sandbox serves it).
THIRD_PARTY_HOST = "analytics.localhost"
#: Paths of the assets (never subject to the portal's fault knobs: they are not pages).
ASSET_PREFIXES = ("/static/", "/__3p/")
_IMMUTABLE = "public, max-age=31536000, immutable"
# Fonts a Debian machine with Chromium has; a generated blob stands in when none is there.
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@dataclass(frozen=True)
class HeavyAssets:
    """The generated bundle, font and images, and the names the pages refer to them by."""

    bundle: bytes
    bundle_name: str
    font: bytes
    images: dict[str, bytes]

    @property
    def total_bytes(self) -> int:
        return len(self.bundle) + len(self.font) + sum(map(len, self.images.values()))


def _bundle(modules: int, seed: int) -> bytes:
    """A webpack-shaped bundle: `modules` factories in a registry, all required at start-up
    (parse, compile and run, like an application's boot), which finally marks the app ready."""
    rng = random.Random(seed)
    words = [f"w{rng.randrange(10**6)}" for _ in range(64)]
    parts = [
        "(function(){var r={},c={};function q(i){if(c[i])return c[i].e;",
        "var m=c[i]={e:{}};r[i](m,m.e,q);return m.e}\n",
    ]
    for i in range(modules):
        a, b = rng.randrange(3, 97), rng.randrange(5, 61)
        keys = ",".join(f'"{rng.choice(words)}":{rng.randrange(10**5)}' for _ in range(6))
        dep = f"q({rng.randrange(i)})" if i else "{}"
        parts.append(
            f"r[{i}]=function(m,e,q){{var d={dep},t={{{keys}}},s=0;"
            f"for(var k in t){{s=(s*{a}+t[k]+k.length)%{b * 1009}}}"
            f'e.v=s;e.n="{rng.choice(words)}-"+s;e.f=function(x){{return (x*{a}+s)%{b}}};'
            f"e.d=d}};\n"
        )
    parts.append(
        f"for(var i=0;i<{modules};i++)q(i);"
        "window.portalApp={ready:true,modules:Object.keys(c).length};})();\n"
    )
    return "".join(parts).encode()


def _png(width: int, height: int, seed: int) -> bytes:
    """A photograph-sized PNG of noise (incompressible, so its size and its decode are real)."""
    rng = random.Random(seed)
    row = width * 3
    raw = b"".join(b"\x00" + rng.randbytes(row) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


def _font() -> bytes:
    for candidate in _FONT_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path.read_bytes()
    return random.Random(3).randbytes(120_000)


@functools.cache
def heavy_assets() -> HeavyAssets:
    """The assets, built once per process (about 1.5 MB of script and 1 MB of images)."""
    bundle = _bundle(modules=6_500, seed=11)
    digest = hashlib.sha256(bundle).hexdigest()[:12]
    return HeavyAssets(
        bundle=bundle,
        bundle_name=f"app.{digest}.js",
        font=_font(),
        images={"hero.png": _png(480, 320, 1), "banner.png": _png(480, 320, 2)},
    )


def page_assets(request: Request, delay_ms: int) -> dict[str, str]:
    """What a heavy page's template refers to: the bundle and the third party's script URL."""
    port = request.url.port
    host = f"{THIRD_PARTY_HOST}:{port}" if port else THIRD_PARTY_HOST
    return {
        "bundle": f"/static/{heavy_assets().bundle_name}",
        "analytics": f"http://{host}/__3p/collect.js?delay_ms={delay_ms}",
    }


async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    assets = heavy_assets()
    if name == assets.bundle_name:
        body, kind = assets.bundle, "text/javascript"
    elif name == "portal-sans.ttf":
        body, kind = assets.font, "font/ttf"
    elif name in assets.images:
        body, kind = assets.images[name], "image/png"
    else:
        return Response(status_code=404)
    return Response(body, media_type=kind, headers={"Cache-Control": _IMMUTABLE})


_third_party = {"requests": 0}


def third_party_requests() -> int:
    """How many times a browser has asked the third party for its script (this process)."""
    return _third_party["requests"]


async def _analytics(request: Request) -> Response:
    """The slow third party: an analytics beacon script that takes its time."""
    _third_party["requests"] += 1  # one event loop serves it: no lock needed
    try:
        delay_ms = max(0, min(30_000, int(request.query_params.get("delay_ms", "0"))))
    except ValueError:
        delay_ms = 0
    await asyncio.sleep(delay_ms / 1000)
    return Response(
        "window.__analytics=(window.__analytics||0)+1;",
        media_type="text/javascript",
        headers={"Cache-Control": "no-store"},
    )


def heavy_routes() -> list[Route]:
    """The asset routes every portal serves (used only by pages rendered with the knob on)."""
    return [
        Route("/static/{name}", _static),
        Route("/__3p/collect.js", _analytics),
    ]
