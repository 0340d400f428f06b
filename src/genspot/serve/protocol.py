"""Read timeouts for `genspot serve`: a client that sends its request slowly is cut off.

uvicorn closes an idle keep-alive connection (`timeout_keep_alive`), but it waits forever for
a request's head or body that trickles in a byte at a time (slow loris): five such
connections held the server's sockets open indefinitely. This protocol adds two deadlines:
- the head (request line and headers) must arrive within `headers` seconds of the
  connection opening, or of the request's first byte on a kept-alive connection;
- the body must arrive within `body` seconds of the head.
Past either, the connection is closed. Only reading is timed: a slow model answer is not.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

ENV = "GENSPOT_SERVE_TIMEOUTS"  # how the serving processes (several with --workers) learn them


@dataclass(frozen=True)
class Timeouts:
    keep_alive: float = 5.0  # idle between requests on one connection
    headers: float = 10.0
    body: float = 60.0  # 64 MB at about 1 MB/s


_timeouts: Timeouts | None = None


def timeouts() -> Timeouts:
    global _timeouts
    if _timeouts is None:
        _timeouts = Timeouts(**json.loads(os.environ.get(ENV, "{}")))
    return _timeouts


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines on reading the head and the body of a request."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._read_timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None
        self._arm("headers")

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE:
            self._arm("headers")  # the head has started (or not finished)
        elif state is h11.SEND_BODY:
            self._arm("body")
        else:  # DONE, MUST_CLOSE, CLOSED, ERROR: nothing more is being read
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, phase: str) -> None:
        if self._phase == phase:
            return  # the deadline runs from the phase's start, not from the latest byte
        self._disarm()
        self._phase = phase
        self._read_timer = self.loop.call_later(getattr(timeouts(), phase), self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer, self._phase = None, None

    def _timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that took over %.0f s to send its request %s", getattr(timeouts(), self._phase or "headers"),
                             "head" if self._phase == "headers" else "body")  # fmt: skip
            self.transport.close()
