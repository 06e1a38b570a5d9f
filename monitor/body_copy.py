"""A bounded copy of a relayed body, taken chunk by chunk as the bytes pass: the usage
cache keeps one to store an answer, the passive refresh one to read a snapshot from it.
Past its limit it drops what it held and keeps nothing more, so a huge answer costs no
memory beyond the limit."""

from __future__ import annotations


class BodyCopy:
    """The chunks fed so far, while their total stays within `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.overflowed = False

    def feed(self, chunk: bytes) -> None:
        if self.overflowed:
            return
        self._size += len(chunk)
        if self._size > self._limit:
            self.overflowed = True
            self._chunks.clear()
            return
        self._chunks.append(chunk)

    def joined(self) -> bytes:
        """What was fed, as one body (empty once it overflowed)."""
        return b"".join(self._chunks)
