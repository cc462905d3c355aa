"""The one exception hierarchy shared by every backend.

Both backends raise these from the same checks in ``_validate``; messages name the
offending parameter and never contain secret or share bytes.
"""


class MpssError(Exception):
    """Base class of every error raised by mpss_fast."""


class ParameterError(MpssError, ValueError):
    """A parameter has the right type but an invalid value (k, n, poly, xs, sizes, buffers)."""


class ShareError(MpssError, ValueError):
    """A set of shares cannot be combined (too few, duplicate or zero x, unequal lengths)."""


class StreamStateError(MpssError, ValueError):
    """A finished or closed :class:`~mpss_fast.SplitStream` was used again."""


class InputTypeError(MpssError, TypeError):
    """An argument has the wrong type or element type (e.g. ``str`` for bytes, int16 for uint8)."""


class BackendError(MpssError, ImportError):
    """The backend asked for with ``MPSS_FAST_BACKEND`` cannot be loaded."""


class WireError(MpssError, ValueError):
    """A packet or header is malformed, or a value cannot be put on the wire (``mpss_fast.wire``)."""


class TruncatedError(WireError):
    """The buffer ends before a header or field does, or a length field points past its end."""


class BadHeaderError(WireError):
    """A header is inconsistent: IP version, lengths, routing type, segment list, destination."""


class NextHeaderError(BadHeaderError):
    """The Next Header chain is not IPv6 -> Destination Options -> SRH -> UDP."""


class SegmentsLeftError(BadHeaderError):
    """Segments Left exceeds Last Entry, or is 0 where a segment endpoint must advance."""


class HopLimitError(WireError):
    """The Hop Limit expires at this segment endpoint (it is 1 or less)."""


class BadPaddingError(WireError):
    """Pad1/PadN padding is malformed: non-zero PadN data, over 7 octets, or past the header end."""


class UnknownOptionError(WireError):
    """An unrecognised option whose action bits (01, 10, 11) say the packet must be discarded."""

    def __init__(self, message: str, option_type: int = -1) -> None:
        super().__init__(message)
        self.option_type = option_type
        """The type of the offending option."""


class DuplicateOptionError(WireError):
    """The Destination Options header carries more than one MPSS option."""


class MissingOptionError(WireError):
    """The Destination Options header carries no MPSS option."""


class UnsupportedVersionError(WireError):
    """The MPSS option has a version this implementation does not know."""


class BadFieldError(WireError):
    """A field value is out of range: share index 0, k > n, k < 2, unknown field, share length mismatch, ..."""


class ChecksumError(WireError):
    """The UDP checksum is wrong or zero."""


class RelayError(MpssError):
    """A share cannot be relayed or delivered (``mpss_fast.relay``)."""


class _PoolError(RelayError):
    """A pool cannot hand out the material asked for; ``link`` names the pool's link (``None`` if unknown)."""

    def __init__(self, message: str, *, link: str | None = None) -> None:
        super().__init__(message)
        self.link = link


class KeyPoolExhaustedError(_PoolError):
    """A link's key pool holds too little material; wait for more key or fail the session (never reuse)."""


class KeyReuseError(_PoolError):
    """A key ID points at material already handed out or behind the pool's window: a replayed or late message."""


class _RefusedShare(RelayError):
    """A share dropped at a hop, with where it came in and what it claimed to be (no secret bytes)."""

    def __init__(self, message: str, *, link: str, session_id: bytes, path_id: int, x: int) -> None:
        super().__init__(message)
        self.link = link
        """The link the share came in on (the one its segment list names as the last hop)."""
        self.session_id = session_id
        """The session the share claims to belong to."""
        self.path_id = path_id
        self.x = x


class TagError(_RefusedShare):
    """A per-hop tag does not verify: the share is dropped, and no key material is consumed."""


class RouteError(_RefusedShare):
    """An authenticated share arrived by a route its session cannot accept: a second share over one incoming
    link, a path not node-disjoint from another share's, or another source. Refused; ``link`` names where it
    came from."""


class MalformedShareError(ShareError):
    """An RTSS share cannot be decoded: truncated, a wrong Share Length, an unknown hash, threshold < 2, index 0."""


class IntegrityError(ShareError):
    """RTSS shares rebuild a secret whose hash does not match, for every subset tried (``mpss_fast.rtss``)."""


class SelfTestError(MpssError):
    """A known-answer self-test failed (``mpss_fast.selftest``); ``failures`` lists (tier, check) pairs."""

    def __init__(self, message: str, failures: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures
        """The (tier, check) pairs that failed."""


class TopologyError(MpssError, ValueError):
    """A QKD network description is malformed or names an unknown node or link (``mpss_fast.kmp``)."""


class PathError(MpssError, ValueError):
    """The topology cannot give the node-disjoint paths asked for; the message says how many exist and why."""


class PolicyError(MpssError, ValueError):
    """No (k, n) satisfies what was asked: n - f >= k > t with n <= the disjoint paths available."""


class SessionError(RelayError):
    """A relay session at the destination cannot complete: timed out, conflicting shares, or uncorrectable."""


class UncorrectableError(SessionError):
    """More shares are corrupt than robust reconstruction can correct: detected, no number is returned (``robust``)."""


class ConflictError(SessionError):
    """A session has k distinct share indices but too few usable ones: some index arrived with different values."""


class SessionTimeoutError(SessionError):
    """A session's deadline passed before it had k usable shares; its shares are wiped."""


class StoreError(MpssError):
    """The node's durable state cannot be read or written (``mpss_fast.node``); the operation did not happen."""


class StoreVersionError(StoreError):
    """The database was written by a newer schema version (or is not a node store): refused, never downgraded."""


class StoreLockedError(StoreError):
    """Another ``LinkStore`` (this process or another) already has the database open."""


class StorePermissionError(StoreError):
    """The store's directory or one of its files is open to group or others (key material at rest): refused."""


class StoreClosedError(StoreError):
    """The store was closed: its pools hand out no more material and its keys cannot be read."""


class UnknownLinkError(StoreError, LookupError):
    """No key material was ever added for this link direction."""


class KeyNotFoundError(StoreError, LookupError):
    """No key with this ID can be collected for this SAE pair (never applied here, or applied for another pair)."""

    key_id: str | None = None
    """The key ID concerned (text), when the store knows it."""


class KeyAlreadyDeliveredError(StoreError):
    """The end-to-end key was already delivered to its application; a key is delivered once."""

    key_id: str | None = None
    """The key ID concerned (text)."""


class HttpError(MpssError):
    """An HTTP request to one of the project's servers is refused (``mpss_fast.https``).

    ``status`` is the HTTP status (``None`` when no HTTP answer came: connection or TLS
    failure) and ``message`` the reason, never key bytes. A handler raises it and the server
    answers ``status`` with ``{"message": message}`` (and ``Retry-After`` when ``retry_after``
    is set); a client raises it on 4xx/5xx.
    """

    default_status: int | None = 500

    def __init__(self, message: str, status: int | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        """The reason, as sent in the ``{"message": ...}`` body."""
        self.status = self.default_status if status is None else status
        """The HTTP status, or ``None`` when no HTTP answer came."""
        self.retry_after = retry_after
        """Seconds after which a retry may succeed (sent as ``Retry-After``), or ``None``."""


class HttpBadRequestError(HttpError, ValueError):
    """400: a malformed request (bad JSON, a body too large or too deep, a bad field)."""

    default_status = 400


class HttpUnauthorizedError(HttpError):
    """401: the caller has no (known) identity."""

    default_status = 401


class Etsi014Error(HttpError):
    """An ETSI GS QKD 014 key request is refused (``mpss_fast.etsi014``).

    A key backend raises it and the server answers ``status`` with ``{"message": message}``;
    the client raises it on 4xx/5xx.
    """


class Etsi014BadRequestError(Etsi014Error, HttpBadRequestError):
    """400: a malformed key request (bad number or size, too many keys, bad or unknown key IDs, already delivered)."""

    default_status = 400


class Etsi014UnauthorizedError(Etsi014Error, HttpUnauthorizedError):
    """401: the calling SAE has no (known) identity, or is not paired with the SAE it names."""

    default_status = 401


class Etsi014UnavailableError(Etsi014Error):
    """503: not enough key is available now; retry later (``retry_after`` seconds, sent as ``Retry-After``)."""

    default_status = 503


class PeerApiError(HttpError):
    """A node's peer API (neighbours, the S-D channel, operators) refused a request (``status``: its answer)."""


class PeerUnreachableError(PeerApiError):
    """A node's peer API did not answer: connection refused, TLS failure, timeout (``status`` is ``None``)."""

    default_status = None


class Etsi014ConnectionError(Etsi014Error):
    """No usable HTTP answer: connection refused, TLS handshake failed, timeout, or a malformed response body."""

    default_status = None


class KmeFaultError(Etsi014ConnectionError):
    """A KME answered, but with keys unlike the request: another number or size, key IDs other than asked, or
    one key ID twice. Nothing of such an answer is used (the two ends of a link would hold different keys)."""


class NodeError(MpssError):
    """The ``mpss node`` daemon cannot start or run as configured (``mpss_fast.node``)."""


class NodeConfigError(NodeError, ValueError):
    """A node configuration file is unreadable or invalid; the message names the key."""


class NetworkSetupError(NodeError):
    """Setting up the node's network (tun device, routes) failed; the message says which command."""
