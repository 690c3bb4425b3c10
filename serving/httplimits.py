"""Header bounds in the HTTP parser itself: 431 before a huge header block is buffered.

BentoML starts uvicorn with ``http="auto"``, which is httptools; httptools has no limit
on the size or number of request headers (uvicorn's ``h11_max_incomplete_event_size``
only applies to its h11 parser, and BentoML passes no uvicorn options through). So a
client could make a worker buffer 10 MB of headers, or 20,000 of them, before any
middleware runs. :class:`LimitedHttpToolsProtocol` is uvicorn's httptools protocol with
two bounds (``limits.max_header_bytes`` for the request target plus all header lines,
``limits.max_headers``): past either it answers ``431`` and closes the connection, while
the header block is still being received. :func:`install` makes it uvicorn's ``auto``
protocol; the gateway checks the same limits on the parsed headers too (for any other
parser).
"""

from __future__ import annotations

import json
from typing import Any

#: Header-block bytes beyond the limit tolerated before the headers are complete (the
#: request line and line endings).
_SLACK = 8192
_AUTO = "serving.httplimits:LimitedHttpToolsProtocol"


class _HeadersTooLarge(Exception):
    pass


def _protocol_class() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class LimitedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc, valid-type]
        max_header_bytes = 16_384
        max_headers = 64

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_headers = True
            self._header_bytes = 0
            self._received = 0
            self._too_large = False

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers = True
            self._header_bytes = 0

        def on_url(self, url: bytes) -> None:
            self._header_bytes += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_bytes += len(name) + len(value) + 4  # ": " and CRLF
            if (self._header_bytes > self.max_header_bytes
                    or len(self.headers) >= self.max_headers):
                self._too_large = True
                raise _HeadersTooLarge
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_headers = False
            self._received = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_headers = True
            self._received = 0

        def data_received(self, data: bytes) -> None:
            if self._in_headers:
                self._received += len(data)
            super().data_received(data)
            # Still inside one header block after all that: refuse before buffering more.
            if (self._in_headers and self._received > self.max_header_bytes + _SLACK
                    and not self.transport.is_closing()):
                self._too_large = True
                self.send_400_response("")

        def send_400_response(self, msg: str) -> None:
            if not self._too_large:
                super().send_400_response(msg)
                return
            body = json.dumps({"error": "request header fields too large",
                               "limit_headers": self.max_headers,
                               "limit_header_bytes": self.max_header_bytes}).encode()
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body)
            self.transport.close()

    return LimitedHttpToolsProtocol


def __getattr__(name: str) -> Any:
    # uvicorn imports the protocol by its dotted path ("serving.httplimits:Limited...").
    if name == "LimitedHttpToolsProtocol":
        cls = _protocol_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def install(max_header_bytes: int, max_headers: int) -> bool:
    """Make the bounded httptools protocol uvicorn's ``auto`` HTTP protocol (for the
    server this process starts next). False when uvicorn or httptools is missing."""
    try:
        import httptools  # noqa: F401
        import uvicorn.config
    except ImportError:
        return False
    cls = __getattr__("LimitedHttpToolsProtocol")
    cls.max_header_bytes = max_header_bytes
    cls.max_headers = max_headers
    uvicorn.config.HTTP_PROTOCOLS["auto"] = _AUTO
    return True
