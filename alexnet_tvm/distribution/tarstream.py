"""Reading a ``.tar.gz`` that ends where it says it ends.

``gzip.GzipFile`` accepts zero bytes after the last gzip member (it skips them one
byte at a time: 2 GiB of them take minutes), and ``tarfile`` stops at the first
zero block, so a signed pack followed by gigabytes of anything was accepted as
long as its members checked out. :class:`StrictGunzip` decompresses the gzip
member(s) for ``tarfile`` and refuses anything after the last one;
:func:`check_tar_end` refuses anything after the tar's end-of-archive marker but
the zero padding every tar writer adds (two 512-byte blocks, then up to the
10240-byte record).
"""

from __future__ import annotations

import io
import tarfile
import zlib
from typing import IO

from alexnet_tvm.errors import RegistryError

#: what a gzip member starts with
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class StrictGunzip:
    """The decompressed bytes of a gzip file, forward only, for ``tarfile.open(fileobj=..., mode="r:")``.

    Every member's CRC and length are checked (by zlib, at the member's end); a file
    that ends inside a member is an ``EOFError``; bytes after the last member that do
    not start another one (zero padding included) are a :class:`RegistryError`. The
    last ``KEEP`` bytes read stay available to a backward seek (tarfile looks back at
    the block that ended the archive); a seek further back is an ``OSError``.
    """

    KEEP = 1 << 16

    def __init__(self, raw: IO[bytes], where: str):
        self._raw, self._where = raw, where
        self._d = zlib.decompressobj(31)  # gzip wrapper: header, CRC32 and ISIZE checked
        self._in = b""  # compressed bytes read, not yet given to a decompressor
        self._buf = bytearray()  # decompressed bytes from offset self._base on
        self._base = 0
        self._pos = 0
        self._done = False

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            pos += self._pos
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("a compressed stream has no known end to seek from")
        if pos < self._base:
            raise OSError(f"cannot seek back to offset {pos} of a compressed stream")
        self._pos = pos
        return pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            raise ValueError("reads from a compressed stream need a size")
        end = self._pos + n
        while self._base + len(self._buf) < end:
            self._trim()
            if not self._fill():
                break
        start = self._pos - self._base
        out = bytes(self._buf[start:start + n])
        self._pos += len(out)
        self._trim()
        return out

    def _trim(self) -> None:
        """Forget what lies more than KEEP bytes behind the read position."""
        drop = min(self._pos - self.KEEP - self._base, len(self._buf))
        if drop > 0:
            del self._buf[:drop]
            self._base += drop

    def _fill(self) -> bool:
        """Decompress some more into the buffer; ``False`` at the end of the last member."""
        if self._done:
            return False
        if not self._in:
            self._in = self._raw.read(_CHUNK)
        if self._d.eof:  # a member ended: only another member may follow
            if not self._in:
                self._done = True
                return False
            if len(self._in) < len(GZIP_MAGIC):
                self._in += self._raw.read(len(GZIP_MAGIC))
            if not self._in.startswith(GZIP_MAGIC):
                raise RegistryError(f"{self._where}: data after the end of the gzip stream; refusing it")
            self._d = zlib.decompressobj(31)
        elif not self._in:  # the file ended: whatever zlib still holds, then the member must be complete
            self._buf += self._d.flush()
            if not self._d.eof:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            return True
        self._buf += self._d.decompress(self._in, _CHUNK)
        self._in = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        return True


def _record_end(offset: int) -> int:
    """Where a tar whose end-of-archive marker starts at ``offset`` ends, padded as writers pad it."""
    end = offset + 2 * tarfile.BLOCKSIZE
    return -(-end // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def check_tar_end(tar: tarfile.TarFile, stream: StrictGunzip, where: str) -> None:
    """After the last member: zero blocks up to the tar record at most, then the end of the gzip stream
    (reading to it makes zlib check the last member's CRC and length)."""
    limit = _record_end(tar.offset)  # tar.offset: where the block that ended the member list starts
    stream.seek(tar.offset)
    while chunk := stream.read(min(_CHUNK, limit + 1 - stream.tell())):
        if chunk.strip(b"\0") or stream.tell() > limit:
            raise RegistryError(f"{where}: data after the end of the tar archive; refusing it")
