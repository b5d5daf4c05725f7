"""Chunk requests sent without botocore's per-request pipeline, for an S3 store far away.

botocore spends about a millisecond of CPU on every request (events,
serialising parameters, resolving the endpoint, parsing the answer), and
over plain HTTP hashes each body once more to sign it. An encrypt of
256 MiB makes some 450 requests, so that is a fifth of a second of the
two cores the sealing needs too. A chunk request needs little of it: its
URL is the bucket's plus the chunk's name, its answer a status, and the
SHA-256 the signature needs is the chunk's name.

So the HEAD, GET and PUT of a chunk are signed here by botocore's own SigV4
signer, with the client's credentials, region and URL (learnt once, from a
request botocore makes, caught before it is sent), and sent on the
client's own connections, so proxies, TLS settings, timeouts and the
store's deadlines all apply.
This module interprets only the plain answers: success, a missing object
(404 to a HEAD) and a refused conditional write (412). The store asks
again through botocore for any other answer or failure, and botocore then
handles redirects, retries and error bodies as usual. An answer that says
the way this path addresses or signs is wrong turns it off for the store.

Only for a client the store made itself: a client passed in may carry its
owner's event handlers (extra headers, keys), which this path would skip.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import urlsplit

#: Answers after which the direct path is not used again by the store: they say that its
#: URL, region or signature is wrong (a redirect, a bad request, a refused signature).
TURNS_OFF = frozenset({301, 302, 307, 308, 400, 401, 403})
#: A name the URL is learnt from (any chunk name would do).
_SAMPLE = "0" * 64
#: Bytes of an error answer read for its code and message.
_ERROR_BYTES = 64 * 1024
_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")


class Answer(NamedTuple):
    """A direct request's answer: its status and headers, and its body (read whole, or to stream)."""

    status: int
    headers: Any
    content: bytes  # the body, unless streamed
    raw: Any  # the body to read, as botocore's StreamingBody (a streamed GET's success only), else None

    def error(self) -> dict[str, Any]:
        """A failed answer as botocore describes one (ResponseMetadata, Error), for the store's checks."""
        body = self.content[:_ERROR_BYTES]
        code = _CODE.search(body)
        message = _MESSAGE.search(body)
        return {
            "ResponseMetadata": {"HTTPStatusCode": self.status},
            "Error": {
                "Code": code.group(1).decode("utf-8", "replace") if code else str(self.status),
                "Message": message.group(1).decode("utf-8", "replace") if message else "",
            },
        }


class DirectRequests:
    """HEAD, GET and PUT of objects under one bucket and prefix, signed and sent as botocore would."""

    def __init__(self, http: Any, base: str, credentials: Any, signer: type, scope: tuple[str, str]) -> None:
        self._http = http
        self._base = base  # the URL of key prefix + name, but for the name
        self._credentials = credentials
        self._signer = signer
        self._region, self._service = scope
        from botocore.awsrequest import AWSRequest
        from botocore.response import StreamingBody

        self._request = AWSRequest
        self._streaming = StreamingBody

    @classmethod
    def for_client(cls, client: Any, bucket: str, prefix: str) -> DirectRequests | None:
        """The direct path for client's requests under prefix, or None where it cannot be set up safely.

        Its URL and signing scope are those of a HEAD botocore makes (and
        does not send). None for a client that does not sign it with SigV4
        (anonymous, the old S3 signature, SigV4A for a multi-region access
        point, a directory bucket's session), has no credentials, or whose
        botocore is laid out otherwise; the store then makes every request
        through botocore.
        """
        try:
            from botocore.auth import S3SigV4Auth

            if getattr(client.meta.config, "signature_version", None) not in (None, "s3v4"):
                return None
            credentials = client._request_signer._credentials
            http = client._endpoint.http_session
            if credentials is None or not callable(getattr(http, "send", None)):
                return None
            if bucket.endswith("--x-s3"):  # a directory bucket: its requests carry a session of their own
                return None
            url, authorization = _request_made(client, bucket, prefix + _SAMPLE)
        except Exception:  # any botocore that does not fit: the store keeps to its client
            return None
        parts = urlsplit(url)
        if parts.query or not parts.path.endswith("/" + _SAMPLE):
            return None
        # "AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=..., Signature=..."
        algorithm, _, fields = authorization.partition(" ")
        credential = fields.split(",")[0].strip()
        scope = credential.removeprefix("Credential=").split("/")[-4:]
        if algorithm != "AWS4-HMAC-SHA256" or not credential.startswith("Credential="):
            return None
        if len(scope) != 4 or scope[3] != "aws4_request" or not scope[1] or not scope[2]:
            return None
        base = f"{parts.scheme}://{parts.netloc}{parts.path[: -len(_SAMPLE)]}"

        class Signer(S3SigV4Auth):  # type: ignore[misc]
            def payload(self, request: Any) -> str:
                # A chunk's name is the SHA-256 of its bytes: the body is signed without hashing it again.
                known: str | None = request.context.get("payload_sha256")
                return known if known is not None else str(super().payload(request))

        return cls(http, base, credentials, Signer, (scope[1], scope[2]))

    def send(
        self,
        method: str,
        name: str,
        *,
        body: bytes | bytearray | None = None,
        body_sha256: str | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> Answer:
        """One attempt at method on the object prefix + name (a chunk name: hex, nothing to quote).

        body_sha256 is the body's SHA-256 in hex, signed as the payload's.
        Failures to connect or to read come as botocore's exceptions; an
        answer with a body not streamed comes with its body read whole
        (as botocore does).
        """
        request = self._request(
            method=method, url=self._base + name, data=body, headers=headers or {}, stream_output=stream
        )
        request.context["payload_sha256"] = body_sha256
        frozen = self._credentials.get_frozen_credentials()  # refreshed here when they expire
        self._signer(frozen, self._service, self._region).add_auth(request)
        answer = self._http.send(request.prepare())
        if stream:
            # botocore's wrapper: a failure while reading comes as botocore's exception, as from the client.
            streamed = self._streaming(answer.raw, content_length(answer.headers))
            if answer.status_code < 300:
                return Answer(answer.status_code, answer.headers, b"", streamed)
            # An error's body is read here, while the attempt's deadline still covers it.
            try:
                content = bytes(streamed.read(_ERROR_BYTES))
            finally:
                streamed.close()  # drops the connection when bytes are left unread
            return Answer(answer.status_code, answer.headers, content, None)
        return Answer(answer.status_code, answer.headers, answer.content or b"", None)


class _MadeError(Exception):
    """Raised from botocore's request-created event: the request is made and signed, and goes no further."""


def _request_made(client: Any, bucket: str, key: str) -> tuple[str, str]:
    """The URL and Authorization header of the HEAD of key that client makes, without sending it.

    The request comes from botocore's own pipeline (endpoint rules, addressing
    style, signing region), so the direct path goes where botocore goes. A
    presigned URL would not do: botocore presigns for the global endpoint
    where its requests go to the region's.
    """

    def caught(request: Any, operation_name: str = "", **_: Any) -> None:
        if operation_name != "HeadObject":
            return
        authorization = request.headers.get("Authorization", "")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        raise _MadeError(request.url, str(authorization))

    event, unique = "request-created.s3", f"self-encryption-direct-{id(caught)}"
    client.meta.events.register_last(event, caught, unique_id=unique)  # after botocore's signer (same event)
    try:
        client.head_object(Bucket=bucket, Key=key)
    except _MadeError as made:
        return str(made.args[0]), str(made.args[1])
    finally:
        client.meta.events.unregister(event, unique_id=unique)
    raise LookupError("botocore sent the request")  # never: it was caught before it was sent


def content_length(headers: Any) -> int | None:
    """An answer's Content-Length, where it is a plain number (a server's header is not trusted)."""
    value = headers.get("content-length")
    # isascii: str.isdigit() takes "²" (a Latin-1 header byte) for a digit, which int() refuses.
    plain = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19
    return int(value) if plain else None
