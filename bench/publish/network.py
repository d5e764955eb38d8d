"""Bounds on every HTTP request the tool makes (MLflow's client, through `requests`): a deadline
on the whole request, retries included, and a cap on the size of its reply.

`requests` and urllib3 bound each socket operation only, so a server that trickles a byte a
second holds a request for ever, and one that streams without end fills the memory. Within
`bounded()`, each request runs under a SIGALRM deadline (on the main thread, where signals
arrive; elsewhere only the per-operation timeout holds), and its body is read here, in chunks,
up to the cap, before `requests` sees it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from mnist_bench.runfile.files import MiB, size_text

MAX_REPLY = 64 * MiB  # MLflow's largest reply, a page of 1,000 runs from search_runs, is a few MiB
UPLOAD_RATE = 1 * MiB  # bytes a second an upload is given on top of the deadline (a slow link)
_CHUNK = 64 * 1024


class NetworkBound(BaseException):
    """A request ran past its deadline, or its reply past its size cap. A BaseException, so that
    no library's `except Exception` retries it or rewords it; `bounded()`'s caller words it."""


@contextlib.contextmanager
def bounded(seconds: float, max_reply: int = MAX_REPLY) -> Iterator[None]:
    """Within: each request sent through `requests` takes at most `seconds` in all (plus a
    second per `UPLOAD_RATE` bytes it sends) and its reply at most `max_reply` bytes.

    Raises:
        NetworkBound: a request ran past its deadline or its reply past `max_reply`.
    """
    from requests.adapters import HTTPAdapter

    original = HTTPAdapter.send

    def send(adapter: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        what = f"{request.method} {request.path_url.split('?')[0]}"
        with _deadline(seconds + _body_size(request.body) / UPLOAD_RATE, what):
            response = original(adapter, request, *args, **kwargs)
            if not kwargs.get("stream"):
                _read_reply(response, max_reply, what)
        return response

    # patched for the block: `send` passes every argument of the real one through
    HTTPAdapter.send = send  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


def _body_size(body: Any) -> int:
    if isinstance(body, bytes | str):
        return len(body)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        return os.fstat(body.fileno()).st_size  # an upload of a file
    return 0


@contextlib.contextmanager
def _deadline(seconds: float, what: str) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise NetworkBound(f"no complete answer to {what} within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # someone else's timer: what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def _read_reply(response: Any, limit: int, what: str) -> None:
    """The reply's body, read now and kept where `requests` looks for it (`Response.content`)."""
    chunks, size = [], 0
    for chunk in response.raw.stream(_CHUNK, decode_content=True):
        size += len(chunk)
        if size > limit:
            response.close()
            raise NetworkBound(f"the reply to {what} is over {size_text(limit)}, the limit")
        chunks.append(chunk)
    response._content = b"".join(chunks)
    response._content_consumed = True
