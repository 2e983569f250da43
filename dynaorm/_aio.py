"""The async direct transport: `DirectTransport`'s protocol, signer and retries on aiohttp.

One `aiohttp.ClientSession` per transport, created inside the running loop on first use.
A session belongs to the loop that made it: `await close()` in that loop before using the
transport in another (a later call opens a new session). Keep-alive pooling is
aiohttp's `TCPConnector`. botocore's credential refresh is blocking, so a lookup or a
refresh that is due runs in a worker thread, off the loop.

A send hook here must offer `acall(operation, params, entity, send)`, awaiting `send()`:
telemetry's does, so its spans stay current while the request is awaited.
"""

from __future__ import annotations

import asyncio
import io
import ssl
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import aiohttp

from dynaorm._direct import POOL_SIZE, DirectBase, ca_bundle, proxy_for
from dynaorm._wire import Failure, read_response

_STREAMED = 1 << 20  # bytes: aiohttp warns that a raw body above this blocks the loop

__all__ = ["AsyncDirectTransport"]


class AsyncDirectTransport(DirectBase):
    """Sends DynamoDB requests from asyncio code; options are `Transport`'s."""

    def _setup(self) -> None:
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests replace it
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy = proxy_for(self._endpoint)
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
        )

    async def call(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        table: str | None = None,
        entity: str | None = None,
        key: Any = None,
    ) -> dict[str, Any]:
        """Send one request and return the response dict; `DirectTransport.call`, awaited.

        With a send hook (telemetry), the send runs inside its `acall`.
        """
        hook = self._send_hook
        if hook is None:
            return await self._send(operation, params, table, entity, key)
        acall = getattr(hook, "acall", None)
        if acall is None:
            raise TypeError("an async transport's send hook needs an `acall` method")
        response: dict[str, Any] = await acall(
            operation, params, entity, lambda: self._send(operation, params, table, entity, key)
        )
        return response

    async def _send(
        self,
        operation: str,
        params: dict[str, Any],
        table: str | None,
        entity: str | None,
        key: Any,
    ) -> dict[str, Any]:
        body = self._body(operation, params)
        started = time.perf_counter()
        try:
            response = await self._exchange(operation, body)
        except Failure as failure:
            error = self._failed(failure, operation, params, started, (table, entity, key))
            raise error from failure
        self._finish(operation, params, response, None, started)
        return response

    async def _exchange(self, operation: str, body: bytes) -> dict[str, Any]:
        attempt, last = 0, None
        while True:
            attempt += 1
            wait = self.retry.before_attempt()
            if wait:
                await self.sleep(wait)
            try:
                if not self._credentials.resolved:  # a botocore lookup or refresh: blocking
                    await asyncio.to_thread(self._credentials.get)
                headers = self._headers(operation, body)
                status, answer_headers, answer = await self._post(body, headers)
                response = read_response(status, answer_headers, answer, attempt)
            except Failure as failure:
                self._attempted(failure)
                delay = self.retry.delay(failure, attempt)
                if delay is None:
                    raise
                last = failure
                await self.sleep(delay)
                continue
            self._attempted(None)
            self.retry.succeeded(attempt, last)
            return response

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any, bytes]:
        session = self._open()
        # identity: the x-amz-crc32 checksum is of the body as sent, never decompressed.
        headers["Accept-Encoding"] = "identity"
        try:
            async with session.post(
                self._endpoint.url + "/",
                # aiohttp streams a file object in chunks; a large bytes body (a batch or
                # transaction near DynamoDB's 16 MB / 4 MB limits) would be written in one go.
                data=io.BytesIO(body) if len(body) > _STREAMED else body,
                headers=headers,
                proxy=self._proxy,
                allow_redirects=False,
            ) as answer:
                return answer.status, answer.headers, await answer.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            raise connection_failure(error) from error

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed:
            if self._loop is loop:
                return session
            # Its connections belong to the other loop: they can be closed only there, and
            # dropping them would leak their sockets.
            raise RuntimeError(
                "this AsyncDirectTransport is bound to the event loop that first used it: "
                "`await transport.close()` in that loop before using it in another"
            )
        context: ssl.SSLContext | bool = False
        if self._endpoint.scheme == "https":
            context = ssl.create_default_context(cafile=ca_bundle())
        connector = aiohttp.TCPConnector(limit=POOL_SIZE * 10, ssl=context)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, auto_decompress=False
        )
        self._loop = loop
        return self._session

    async def close(self) -> None:
        """Close the HTTP session; a later call opens a new one."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def __aenter__(self) -> AsyncDirectTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def connection_failure(error: BaseException) -> Failure:
    """The failure of an attempt that got no answer, named as botocore names it."""
    text = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError):
        return Failure("SSLError", text)  # will not verify on the next attempt either
    if isinstance(error, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return Failure("ProxyConnectionError", text, connection=True)
    if isinstance(error, aiohttp.ClientConnectorError):
        return Failure("EndpointConnectionError", text, connection=True)
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return Failure("ConnectTimeoutError", text, connection=True, timeout=True)
    if isinstance(error, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return Failure("ReadTimeoutError", text, connection=True, timeout=True)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return Failure("ConnectionClosedError", text, connection=True)
    if isinstance(error, aiohttp.ClientOSError):
        return Failure("ConnectionClosedError", text, connection=True)
    return Failure("HTTPClientError", text, connection=True)
