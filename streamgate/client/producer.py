"""Publishing through the producer API (PROTOCOL.md section 4): :class:`Producer` (async)
and :class:`SyncProducer` (blocking), one policy for both.

- **Batches**: the events of one :meth:`~Producer.publish` go in order, in batches of at
  most ``max_batch`` events (the gateway's limit, 1000) and ``max_bytes`` of body (the
  gateway's ``max_publish_bytes``, 8 MiB by default).
- **Idempotency keys**: every event without an ``idempotency_key`` is given one (a random
  UUID) before its first attempt, so a retried batch is never delivered twice: the gateway
  counts the events it already has as ``duplicates``. The caller's mappings are not changed.
- **Retries**: a 502/503/504 answer, a failed connection and a timeout are retried up to
  ``retries`` times, after the answer's ``Retry-After`` when it gives one and after the
  backoff's delay otherwise. A 4xx is never retried: it raises :class:`PublishError` with
  the refusal's ``code``, ``index`` (into the events of the whole call) and ``field``.
  Batches before a refused one stay published (``PublishError.published`` counts them).
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
import uuid
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from streamgate.client.backoff import Backoff
from streamgate.client.errors import ClientError
from streamgate.core import exact_json
from streamgate.protocol.producer import MAX_EVENTS

__all__ = [
    "MAX_BATCH_BYTES",
    "Producer",
    "PublishError",
    "PublishResult",
    "PublishUnavailable",
    "SyncProducer",
]

MAX_BATCH_BYTES = 8_388_608  # the gateway's default max_publish_bytes
PUBLISH_PATH = "/api/v1/publish"
RETRY_STATUSES = frozenset({502, 503, 504})  # the gateway (503) or a proxy in front (502, 504)
MAX_RETRY_AFTER = 60.0  # a Retry-After above this is taken as this
_RETRIED = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.TimeoutException)


class PublishError(ClientError):
    """The gateway refused a batch: nothing of that batch was published.

    Attributes:
        status: the HTTP status (4xx; see :class:`PublishUnavailable` for the rest).
        code: the refusal's code (``INVALID_EVENT``, ``SEQ_GAP``, ``UNAUTHORIZED`` ...).
        message: the gateway's message.
        index: the refused event's index among the events given to ``publish`` (None when
            the refusal names no event).
        field: the dotted path of the refused field, when named.
        published: events of the earlier batches of the same call, published already.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        index: int | None = None,
        field: str | None = None,
        published: int = 0,
    ) -> None:
        where = "" if index is None else f" (event {index}{'' if field is None else ', ' + field})"
        super().__init__(f"{status} {code}: {message}{where}")
        self.status = status
        self.code = code
        self.message = message
        self.index = index
        self.field = field
        self.published = published


class PublishUnavailable(PublishError):
    """The gateway could not take a batch within the retries: 5xx, no connection or no
    answer in time (``status`` 0 then, ``code`` ``CONNECTION`` or ``TIMEOUT``). Whether
    the last attempt's events were published is unknown; a publish of the same events
    (same idempotency keys) delivers the missing ones only."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What the gateway counted over every batch of one call."""

    accepted: int
    duplicates: int
    batches: int
    retries: int  # attempts beyond the first, over all batches


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"need an http://host:port URL, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def keyed(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``events`` as dicts, each with an ``idempotency_key`` (a new UUID where absent)."""
    out = []
    for event in events:
        doc = dict(event)
        if doc.get("idempotency_key") is None:
            doc["idempotency_key"] = uuid.uuid4().hex
        out.append(doc)
    return out


def batches(
    events: Sequence[dict[str, Any]], max_batch: int, max_bytes: int
) -> Iterator[tuple[int, bytes, int]]:
    """Cut ``events`` into bodies: ``(index of the first event, body, event count)``.

    An event alone over ``max_bytes`` still goes alone: the gateway refuses it (413), named.
    """
    start, size, parts = 0, 0, list[bytes]()
    overhead = len(b'{"events":[]}')
    for index, event in enumerate(events):
        encoded = exact_json.dumps(event)
        grown = size + len(encoded) + (1 if parts else 0)
        if parts and (len(parts) >= max_batch or overhead + grown > max_bytes):
            yield start, b'{"events":[' + b",".join(parts) + b"]}", len(parts)
            start, size, parts = index, 0, []
            grown = len(encoded)
        parts.append(encoded)
        size = grown
    if parts:
        yield start, b'{"events":[' + b",".join(parts) + b"]}", len(parts)


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped."""
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _refusal(response: httpx.Response, first: int, published: int) -> PublishError:
    """The :class:`PublishError` of a non-200 answer; ``first`` maps its index."""
    try:
        error = orjson.loads(response.content).get("error", {})
    except (orjson.JSONDecodeError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    index = error.get("index")
    field = error.get("field")
    kind = PublishUnavailable if response.status_code >= 500 else PublishError
    return kind(
        response.status_code,
        str(error.get("code") or f"HTTP_{response.status_code}"),
        str(error.get("message") or response.reason_phrase or "no message"),
        index=first + index if isinstance(index, int) else None,
        field=field if isinstance(field, str) else None,
        published=published,
    )


def _failure(exc: httpx.TransportError, published: int) -> PublishUnavailable:
    code = "TIMEOUT" if isinstance(exc, httpx.TimeoutException) else "CONNECTION"
    return PublishUnavailable(
        0, code, str(exc) or type(exc).__name__, index=None, published=published
    )


class _Policy:
    """What both producers share: settings, batching and the retry decisions."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        max_batch: int,
        max_bytes: int,
        retries: int,
        backoff: Backoff | None,
        timeout: float,
        auto_keys: bool,
    ) -> None:
        if not 1 <= max_batch <= MAX_EVENTS:
            raise ValueError(f"max_batch must be within 1..{MAX_EVENTS}, got {max_batch}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = _base_url(base_url)
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self.max_batch = max_batch
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff = backoff or Backoff(initial=0.2, maximum=5.0)
        self.timeout = timeout
        self.auto_keys = auto_keys

    def prepare(self, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return keyed(events) if self.auto_keys else [dict(e) for e in events]

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds before retry ``attempt`` (1-based): the answer's Retry-After, or backoff."""
        if response is not None:
            told = retry_after(response.headers)
            if told is not None:
                return told
        return self.backoff.delay(attempt - 1)


# One publish as a generator, so both producers share it: it yields a body to POST (and is
# sent back the response or the transport error) or a delay in seconds to sleep (and is
# sent None); it returns the counts or raises the error.
_Step = bytes | float
_Outcome = httpx.Response | httpx.TransportError | None


def _publish_steps(
    policy: _Policy, events: Sequence[Mapping[str, Any]]
) -> Generator[_Step, _Outcome, PublishResult]:
    accepted = duplicates = count = retried = 0
    for first, body, _n in batches(policy.prepare(events), policy.max_batch, policy.max_bytes):
        attempt = 0
        while True:
            outcome = yield body
            response = outcome if isinstance(outcome, httpx.Response) else None
            if response is not None and response.status_code == 200:
                doc = orjson.loads(response.content)
                accepted += int(doc.get("accepted", 0))
                duplicates += int(doc.get("duplicates", 0))
                break
            if response is not None and response.status_code not in RETRY_STATUSES:
                raise _refusal(response, first, accepted + duplicates)
            attempt += 1
            if attempt > policy.retries:
                if response is not None:
                    raise _refusal(response, first, accepted + duplicates)
                assert isinstance(outcome, httpx.TransportError)
                raise _failure(outcome, accepted + duplicates) from outcome
            retried += 1
            yield policy.delay(attempt, response)
        count += 1
    return PublishResult(accepted, duplicates, count, retried)


class _Configured:
    """What both producers take: the arguments documented on :class:`Producer`."""

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        max_batch: int = MAX_EVENTS,
        max_bytes: int = MAX_BATCH_BYTES,
        retries: int = 5,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        auto_keys: bool = True,
    ) -> None:
        self._policy = _Policy(
            base_url,
            key,
            max_batch=max_batch,
            max_bytes=max_bytes,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            auto_keys=auto_keys,
        )


class Producer(_Configured):
    """Publishes events with the producer key (async; see the module docstring).

    Args:
        base_url: ``http://host:port`` of a gateway.
        key: the producer key.
        max_batch: events per request, at most the gateway's 1000.
        max_bytes: bytes per request body (the gateway's ``max_publish_bytes``).
        retries: attempts after the first, per batch, on 5xx, connection errors, timeouts.
        backoff: delays between attempts when the answer gives no ``Retry-After``.
        timeout: seconds one request may take.
        auto_keys: give every event without an ``idempotency_key`` one (default).
    """

    _client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self._policy.base_url,
                timeout=httpx.Timeout(self._policy.timeout),
                trust_env=False,  # talk to the gateway itself, not a proxy from the environment
            )
        return self._client

    async def publish(self, *events: Mapping[str, Any]) -> PublishResult:
        """Publish ``events`` in order, batch by batch; return the gateway's counts.

        Raises:
            PublishError: a batch was refused (4xx); earlier batches are published.
            PublishUnavailable: a batch could not be delivered within the retries.
        """
        steps = _publish_steps(self._policy, events)
        try:
            step = next(steps)
            while True:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                    step = steps.send(None)
                    continue
                try:
                    outcome: _Outcome = await self._http().post(
                        PUBLISH_PATH, content=step, headers=self._policy.headers
                    )
                except _RETRIED as exc:
                    outcome = exc
                step = steps.send(outcome)
        except StopIteration as done:
            result: PublishResult = done.value
            return result

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class SyncProducer(_Configured):
    """:class:`Producer`, blocking (``httpx.Client``): same arguments, same policy."""

    _client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self._policy.base_url,
                timeout=httpx.Timeout(self._policy.timeout),
                trust_env=False,
            )
        return self._client

    def publish(self, *events: Mapping[str, Any]) -> PublishResult:
        """:meth:`Producer.publish`, blocking."""
        steps = _publish_steps(self._policy, events)
        try:
            step = next(steps)
            while True:
                if isinstance(step, float):
                    time.sleep(step)
                    step = steps.send(None)
                    continue
                try:
                    outcome: _Outcome = self._http().post(
                        PUBLISH_PATH, content=step, headers=self._policy.headers
                    )
                except _RETRIED as exc:
                    outcome = exc
                step = steps.send(outcome)
        except StopIteration as done:
            result: PublishResult = done.value
            return result

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
