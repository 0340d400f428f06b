"""What the service refuses before any model work: oversized bodies, files and pixel counts,
too many files, and uploads that are not images by their content (not their file name)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from genspot.data.image import MAX_PIXELS

# Magic numbers of the formats genspot reads; the extension and the declared type are ignored.
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


@dataclass
class Limits:
    max_request_bytes: int = 64 * 1024 * 1024
    max_file_bytes: int = 20 * 1024 * 1024
    max_files: int = 32
    max_pixels: int = 40_000_000  # well under what a 2-core box decodes in a second or two

    def __post_init__(self) -> None:
        self.max_pixels = min(self.max_pixels, MAX_PIXELS)


def sniff(data: bytes) -> str | None:
    """The image format by content, or None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for sig, fmt in _SIGNATURES:
        if data.startswith(sig):
            return fmt
    return None


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 for a request body over the limit, whether or not it declares its length.

    Counting in `receive` stops a chunked upload at the limit instead of spooling all of it."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await _too_large(send, self.max_bytes)
        seen = 0
        exceeded = started = False

        async def counted_receive():
            nonlocal seen, exceeded
            if exceeded:  # the app asks again after the limit: the body ends here
                return {"type": "http.disconnect"}
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge
            return msg

        async def tracked_send(msg):
            # Once the limit is passed, whatever the app answers (the form parser turns the
            # exception into a 400 "error parsing the body") is replaced by the 413 it means.
            nonlocal started
            if exceeded:
                if not started:
                    started = True
                    await _too_large(send, self.max_bytes)
                return
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            pass
        if exceeded and not started:
            await _too_large(send, self.max_bytes)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over the limit of {limit:,} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
