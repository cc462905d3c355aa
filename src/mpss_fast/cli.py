"""The ``mpss`` command line: split and combine files, report the build, run a demo.

``mpss split`` writes libgfshare-compatible share files ``STEM.001`` ... ``STEM.NNN``
(raw y bytes, x in the file name); ``mpss combine`` reads them back (x from each
file name's ``.NNN`` suffix). With ``--poly 0x11d`` the files interoperate with
``gfsplit``/``gfcombine``; the default 0x11B is the AES field of draft-mcgrew-tss.
Neither the threshold nor the polynomial is stored in the files. With ``--format rtss``
each file holds one self-describing RTSS share of draft-mcgrew-tss (header, index, value;
the secret's hash is shared with it and checked by ``combine``): see ``mpss_fast.rtss``.

``mpss selftest`` runs the known-answer tests of every kernel tier (``mpss_fast.selftest``).

``mpss kme-sim`` serves ETSI GS QKD 014 link keys for SAE pairs, a simulated KME
(``mpss_fast.etsi014.kme_sim``, needs the ``node`` extra).

``mpss demo`` relays a random 32-byte key over five simulated QKD paths with a (3, 5)
threshold and hop-by-hop one-time pads, printing fingerprints only, never key bytes.

Every user error is one line ``mpss: error: <message>`` on stderr and exit status 1;
argparse usage errors keep exit status 2. No message contains secret or share bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mpss_fast

from . import rtss
from ._backend import available
from ._gf256 import POLY_AES, POLY_GFSHARE, POLYS
from ._validate import check_k_n
from .rtss import RtssShare
from .streaming import CombineStream, SplitStream, _read_full

PROG = "mpss"
_SUFFIX = re.compile(r"\.([0-9]{3})\Z")
_POLY_NAMES = {POLY_AES: "0x11B", POLY_GFSHARE: "0x11D"}
FORMATS = ("gfsplit", "rtss")
RTSS_HASHES = ("sha256", "sha1", "none")


class CliError(Exception):
    """A user error: reported as one line on stderr, exit status 1."""


# -- small helpers ----------------------------------------------------------------------


def _q(path: str | os.PathLike[str]) -> str:
    """A file name quoted for a one-line message (newlines and control characters escaped)."""
    return repr(os.fspath(path))


def _save_report(json_path: str | None, document: str, plot_path: str | None, plot: Callable[[str], None]) -> None:
    """Write ``--json FILE`` (``-`` was printed already) and ``--plot FILE``, saying so on stderr."""
    if json_path not in (None, "-"):
        Path(json_path).write_text(document + "\n", encoding="utf-8")
        print(f"wrote {json_path}", file=sys.stderr)
    if plot_path:
        plot(plot_path)
        print(f"wrote {plot_path}", file=sys.stderr)


def _check_report_paths(*paths: str | None) -> None:
    """Fail before long work if a ``--json``/``--plot`` file could not be written ("-" is stdout)."""
    for path in paths:
        if path not in (None, "-") and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CliError(f"cannot write {_q(path)}: no such directory")


def _parse_poly(text: str) -> int:
    """``0x11b``/``0x11D``/``283``/``285`` -> the polynomial; anything else is a :class:`CliError`."""
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if value not in POLYS:
        raise CliError(f"--poly must be 0x11b or 0x11d, not {text!r}")
    return value


def _check_format(args: argparse.Namespace, poly: int) -> None:
    """``--format rtss`` is defined over the AES field; ``--hash`` applies to it only."""
    if args.format == "rtss" and poly != POLY_AES:
        raise CliError("--format rtss is defined over the AES field; --poly must be 0x11b")
    if args.format != "rtss" and getattr(args, "hash", None) is not None:
        raise CliError("--hash applies to --format rtss only")


def _fingerprint(data: bytes) -> str:
    """The first 16 hex characters of SHA-256(data): safe to print, unlike the data."""
    return hashlib.sha256(data).hexdigest()[:16]


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _read_file(path: str, limit: int = -1) -> bytes:
    """The bytes of ``path`` (at most ``limit`` when given: for formats that are small by definition)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit)
    except OSError as exc:
        raise CliError(f"cannot read {_q(path)}: {_why(exc)}") from None


def _read_input(path: str, limit: int = -1) -> bytes:
    """The bytes of ``path``, or of stdin for ``-``."""
    return sys.stdin.buffer.read(limit) if path == "-" else _read_file(path, limit)


def _refuse_existing(paths: Sequence[str], force: bool) -> None:
    """Fail before anything is written if an output exists and ``--force`` was not given."""
    if force:
        return
    existing = [p for p in paths if os.path.lexists(p)]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CliError(f"{_q(existing[0])}{more} already exists; use --force to overwrite")


STREAM_BUFFER_BYTES = 8 << 20
"""All chunk buffers of one split or combine together (input, outputs, coefficients)."""

PROGRESS_MIN_BYTES = 64 << 20
"""Inputs this large get a progress bar on a terminal."""


def _chunk_size(buffers: int, most: int) -> int:
    """Bytes per chunk when ``buffers`` chunk-sized buffers must fit in :data:`STREAM_BUFFER_BYTES`.

    ``most``: measured on a 128 MiB file (docs/benchmarks.md), 1 MiB suits split and
    256 KiB combine (its k input chunks then stay in L2).
    """
    return max(16 << 10, min(most, STREAM_BUFFER_BYTES // buffers)) // 4096 * 4096


class _PrivateFiles:
    """Output files readable by their owner only, written under temporary names and renamed when complete.

    The temporary name ``.NAME.XXXXXXXX.part`` sits in NAME's directory and never ends in
    ``.NNN``, so an interrupted run leaves nothing that looks like a share; on an error or
    Ctrl-C the temporary files are removed.
    """

    def __init__(self, paths: Sequence[str], force: bool) -> None:
        self.paths = list(paths)
        self.force = force
        self.fds: list[int] = []
        self.temps: list[str] = []

    def __enter__(self) -> _PrivateFiles:
        for path in self.paths:
            directory, base = os.path.split(os.path.abspath(path))
            try:
                fd, temp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=directory)  # mode 0600
            except OSError as exc:
                raise CliError(f"cannot write {_q(path)}: {_why(exc)}") from None
            self.fds.append(fd)
            self.temps.append(temp)
        return self

    def write(self, i: int, data: memoryview) -> None:
        fd = self.fds[i]
        try:
            while data.nbytes:
                data = data[os.write(fd, data) :]
        except OSError as exc:
            raise CliError(f"cannot write {_q(self.paths[i])}: {_why(exc)}") from None

    def commit(self) -> None:
        """Close every file and move it to its name (refusing an existing one without ``--force``)."""
        fds, self.fds = self.fds, []
        for fd, path in zip(fds, self.paths, strict=True):
            try:
                os.close(fd)
            except OSError as exc:
                raise CliError(f"cannot write {_q(path)}: {_why(exc)}") from None
        placed: list[str] = []
        try:
            for temp, path in zip(self.temps, self.paths, strict=True):
                self._place(temp, path)
                placed.append(path)
        except BaseException:
            for path in placed:  # all or nothing
                _unlink_quietly(path)
            raise
        self.temps = []

    def _place(self, temp: str, path: str) -> None:
        try:
            if self.force:
                os.replace(temp, path)
                return
            try:
                os.link(temp, path)  # fails if path appeared meanwhile
            except FileExistsError:
                raise CliError(f"{_q(path)} already exists; use --force to overwrite") from None
            except OSError:  # a file system without hard links
                if os.path.lexists(path):
                    raise CliError(f"{_q(path)} already exists; use --force to overwrite") from None
                os.rename(temp, path)
                return
            os.unlink(temp)
        except OSError as exc:
            raise CliError(f"cannot write {_q(path)}: {_why(exc)}") from None

    def __exit__(self, *exc: object) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for temp in self.temps:
            _unlink_quietly(temp)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class _Progress:
    """A progress bar on stderr, drawn only on a terminal, for :data:`PROGRESS_MIN_BYTES` and more, without -q."""

    WIDTH = 30

    def __init__(self, label: str, total: int, quiet: bool) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.enabled = not quiet and total >= PROGRESS_MIN_BYTES and sys.stderr.isatty()
        self.drawn = False
        self.last = 0.0

    def __enter__(self) -> _Progress:
        return self

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and self.done < self.total:
            return
        self.last = now
        frac = min(1.0, self.done / self.total)
        fill = int(frac * self.WIDTH)
        bar = "#" * fill + "." * (self.WIDTH - fill)
        mib = 1 << 20
        sys.stderr.write(f"\r{PROG} {self.label} [{bar}] {frac:4.0%} {self.done // mib}/{self.total // mib} MiB")
        sys.stderr.flush()
        self.drawn = True

    def __exit__(self, *exc: object) -> None:
        if self.drawn:  # end the bar's line, so what follows starts on its own
            sys.stderr.write("\n")
            sys.stderr.flush()


def _regular_size(fileobj: Any) -> int:
    """The size of a regular file, 0 for a pipe, terminal or anything else."""
    try:
        st = os.fstat(fileobj.fileno())
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _fill(reader: Any, buf: memoryview, path: str) -> int:
    """Read into ``buf`` until it is full or the input ends; a read error is a :class:`CliError`."""
    try:
        return _read_full(reader, buf)
    except OSError as exc:
        raise CliError(f"cannot read {_q(path)}: {_why(exc)}") from None


def _open_reader(path: str) -> Any:
    """An unbuffered binary reader of ``path`` (the caller closes it), or stdin's for ``-``."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb", buffering=0)  # closed by the caller
    except OSError as exc:
        raise CliError(f"cannot read {_q(path)}: {_why(exc)}") from None


# -- split ------------------------------------------------------------------------------


def cmd_split(args: argparse.Namespace) -> int:
    """Split FILE (or stdin) into STEM.001 ... STEM.NNN."""
    poly = _parse_poly(args.poly)
    _check_format(args, poly)
    if args.file == "-" and args.output is None:
        raise CliError("reading the secret from stdin needs -o STEM to name the share files")
    if args.output == "-":
        raise CliError("split writes share files STEM.001 ...; -o - (stdout) is not supported")
    stem = args.file if args.output is None else args.output
    check_k_n(args.k, args.n)
    names = [f"{stem}.{x:03d}" for x in range(1, args.n + 1)]
    _refuse_existing(names, args.force)
    if args.format == "rtss":
        return _split_rtss(args, names)
    reader = _open_reader(args.file)
    try:
        _split_gfsplit(args, poly, names, reader)
    finally:
        if reader is not sys.stdin.buffer:
            reader.close()
    print(f"wrote {args.n} shares {names[0]} ... {names[-1]} (any {args.k} rebuild it; poly {_POLY_NAMES[poly]})")
    return 0


def _split_rtss(args: argparse.Namespace, names: list[str]) -> int:
    secret = _read_input(args.file, rtss.MAX_DATA_BYTES + 1)  # RTSS shares are small by definition
    if not secret:
        raise CliError(f"input {_q(args.file)} is empty; there is nothing to split")
    hash_name = args.hash or "sha256"
    encoded = rtss.rtss_split(secret, args.k, args.n, hash=hash_name)
    with _PrivateFiles(names, args.force) as files:
        for i, share in enumerate(encoded):
            files.write(i, memoryview(share))
        files.commit()
    print(f"wrote {args.n} RTSS shares {names[0]} ... {names[-1]} (any {args.k} rebuild it; hash {hash_name})")
    return 0


def _split_gfsplit(args: argparse.Namespace, poly: int, names: list[str], reader: Any) -> None:
    """Stream the secret through a :class:`SplitStream` into the share files, a chunk at a time."""
    chunk = _chunk_size(args.n + args.k, 1 << 20)
    buf = bytearray(chunk)
    view = memoryview(buf)
    outs = [bytearray(chunk) for _ in names]
    out_views = [memoryview(o) for o in outs]
    try:
        got = _fill(reader, view, args.file)
        if not got:
            raise CliError(f"input {_q(args.file)} is empty; there is nothing to split")
        with (
            SplitStream(args.k, args.n, poly=poly) as stream,
            _PrivateFiles(names, args.force) as files,
            _Progress("split", _regular_size(reader), args.quiet) as progress,
        ):
            while got:
                stream.update_into(view[:got], out_views)
                for i, out in enumerate(out_views):
                    files.write(i, out[:got])
                progress.advance(got)
                got = _fill(reader, view, args.file)
            stream.finish_into(out_views)  # nothing is buffered without an rng
            files.commit()
    finally:
        buf[:] = bytes(chunk)
        for o in outs:
            o[:] = bytes(chunk)


# -- combine ----------------------------------------------------------------------------


def _share_x(path: str) -> tuple[str, int]:
    """(stem, x) from a share file name ending in ``.NNN`` with NNN in 001..255."""
    match = _SUFFIX.search(path)
    if match is None or not 1 <= int(match.group(1)) <= 255:
        raise CliError(f"share file {_q(path)} must end in .NNN, three decimal digits 001..255 (the share's x)")
    return path[: match.start()], int(match.group(1))


def _share_names(paths: Sequence[str]) -> tuple[dict[int, str], set[str]]:
    """{x: path} and the set of stems of gfsplit share files; checked before any file is opened."""
    seen: dict[int, str] = {}
    stems: set[str] = set()
    for path in paths:
        stem, x = _share_x(path)
        if x in seen:
            raise CliError(f"share files {_q(seen[x])} and {_q(path)} both have x = {x}")
        seen[x] = path
        stems.add(stem)
    return seen, stems


def _load_rtss_shares(paths: Sequence[str]) -> tuple[list[RtssShare], set[str]]:
    """The decoded RTSS shares of ``paths`` and the set of their stems ("" for a name without ``.NNN``)."""
    shares: list[RtssShare] = []
    stems: set[str] = set()
    for path in paths:
        match = _SUFFIX.search(path)
        stems.add("" if match is None else path[: match.start()])
        try:
            shares.append(RtssShare.decode(_read_file(path, rtss.HEADER_BYTES + rtss.MAX_DATA_BYTES + 2)))
        except mpss_fast.ShareError as exc:
            raise CliError(f"share file {_q(path)} is not an RTSS share: {exc}") from None
    return shares, stems


def _default_output(stems: set[str]) -> str:
    if len(stems) != 1:
        raise CliError("the share files have different stems; name the output with -o OUT (or -o - for stdout)")
    stem = next(iter(stems))
    if not stem or stem.endswith(("/", os.sep)):
        raise CliError("cannot derive an output name from the share file names; use -o OUT")
    return stem


def _looks_like_rtss(readers: Sequence[Any], sizes: Sequence[int]) -> bool:
    """Whether the files all carry one RTSS header (same identifier, hash, threshold; Share Length = size - 20).

    Raw gfsplit shares of one secret differ from their first byte on, so two of them
    carrying the same valid 20-byte header happens with probability about 2^-160.
    """
    headers = set()
    for reader, size in zip(readers, sizes, strict=True):
        if size < rtss.HEADER_BYTES + 2:
            return False
        try:
            head = os.pread(reader.fileno(), rtss.HEADER_BYTES, 0)
        except OSError:
            return False
        headers.add(head)
        if len(headers) > 1:
            return False
    head = headers.pop()
    hash_id, threshold, length = head[16], head[17], int.from_bytes(head[18:20], "big")
    return hash_id in rtss.HASH_IDS.values() and 2 <= threshold <= 255 and length == sizes[0] - rtss.HEADER_BYTES


def cmd_combine(args: argparse.Namespace) -> int:
    """Rebuild the secret from share files; x comes from each file name (gfsplit) or each share (rtss)."""
    poly = _parse_poly(args.poly)
    _check_format(args, poly)
    if args.format == "rtss":
        return _combine_rtss(args, args.files)
    by_x, stems = _share_names(args.files)
    readers: list[Any] = []
    try:
        for path in by_x.values():
            readers.append(_open_reader(path))
        sizes = [_regular_size(r) for r in readers]
        paths = list(by_x.values())
        if len(paths) >= 2 and all(sizes) and _looks_like_rtss(readers, sizes):
            if poly != POLY_AES:
                raise CliError(
                    f"{_q(paths[0])} and the others are RTSS shares (draft-mcgrew-tss, AES field); "
                    "combine them with --format rtss, without --poly"
                )
            return _combine_rtss(args, args.files)
        known = [(path, size) for path, size in zip(paths, sizes, strict=True) if size or os.path.isfile(path)]
        for path, size in known:  # regular files; a pipe's length shows only as it is read
            if size == 0:
                raise CliError(f"share file {_q(path)} is empty")
            if size != known[0][1]:
                raise CliError(
                    f"share files differ in length: {_q(known[0][0])} is {known[0][1]} bytes, {_q(path)} is {size}"
                )
        if len(paths) < 2:
            raise CliError(f"need at least 2 share files to combine, got {len(paths)}")
        output = args.output if args.output is not None else _default_output(stems)
        if output != "-":
            _refuse_existing([output], args.force)
        _combine_gfsplit(args, poly, by_x, readers, output, sizes[0])
    finally:
        for reader in readers:
            reader.close()
    return 0


def _combine_gfsplit(
    args: argparse.Namespace, poly: int, by_x: dict[int, str], readers: list[Any], output: str, size: int
) -> None:
    """Stream the share files through a :class:`CombineStream` into OUT (or stdout), a chunk at a time."""
    paths = list(by_x.values())
    chunk = _chunk_size(len(readers) + 1, 256 << 10)
    bufs = [bytearray(chunk) for _ in readers]
    views = [memoryview(b) for b in bufs]
    out = bytearray(chunk)
    out_view = memoryview(out)
    stream = CombineStream(list(by_x), poly=poly)
    files = _PrivateFiles([] if output == "-" else [output], args.force)
    try:
        with files, _Progress("combine", size, args.quiet) as progress:
            while True:
                counts = [_fill(r, v, p) for r, v, p in zip(readers, views, paths, strict=True)]
                if min(counts) != max(counts):
                    short = paths[counts.index(min(counts))]
                    raise CliError(
                        f"share files differ in length: {_q(short)} ended after {stream.position + min(counts)} bytes"
                    )
                got = counts[0]
                if not got:
                    break
                stream.update_into([v[:got] for v in views], out_view)
                if output == "-":
                    _write_stdout(out_view[:got])
                else:
                    files.write(0, out_view[:got])
                progress.advance(got)
            if stream.position == 0:
                raise CliError(f"share file {_q(paths[0])} is empty")
            if output == "-":
                sys.stdout.buffer.flush()
            else:
                files.commit()
    finally:
        for b in bufs:
            b[:] = bytes(chunk)
        out[:] = bytes(chunk)


def _write_stdout(data: memoryview) -> None:
    try:
        sys.stdout.buffer.write(data)
    except OSError as exc:
        raise CliError(f"cannot write to stdout: {_why(exc)}") from None


def _combine_rtss(args: argparse.Namespace, paths: Sequence[str]) -> int:
    """Combine RTSS share files; a share the hash check routes around is named on stderr."""
    decoded, stems = _load_rtss_shares(paths)
    output = args.output if args.output is not None else _default_output(stems)
    if output != "-":
        _refuse_existing([output], args.force)
    labels = [_q(path) for path in paths]
    used: list[int] = []
    secret = rtss._combine(decoded, labels, rtss._engine(None), used=used)
    for i in rtss._inconsistent_shares(decoded, used, secret):
        print(
            f"{PROG}: warning: share file {labels[i]} is corrupt (the hash check fails with it); "
            "the secret was rebuilt from the other files",
            file=sys.stderr,
        )
    if output == "-":
        _write_stdout(memoryview(secret))
        sys.stdout.buffer.flush()
    else:
        with _PrivateFiles([output], args.force) as files:
            files.write(0, memoryview(secret))
            files.commit()
    return 0


# -- selftest ---------------------------------------------------------------------------


def cmd_selftest(args: argparse.Namespace) -> int:
    """Run the known-answer tests of every kernel tier; one line per tier, exit 1 on any mismatch."""
    report = mpss_fast.selftest(raise_on_failure=False)
    for tier, (passed, total) in report.tiers().items():
        print(f"{tier}: {passed}/{total} checks passed")
    if not report.ok:
        return _fail(report.message())
    return 0


# -- info -------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    """Print version, backend and supported polynomials."""
    print(f"mpss_fast {mpss_fast.__version__}")
    print(f"backend: {mpss_fast.BACKEND} (MPSS_FAST_BACKEND={os.environ.get('MPSS_FAST_BACKEND', 'auto')})")
    print(f"available backends: {', '.join(available())}")
    from ._backend import KERNEL_REASON

    kernel_env = os.environ.get("MPSS_FAST_KERNEL") or "unset"
    kernel = mpss_fast.KERNEL
    if mpss_fast.COMBINE_KERNEL != kernel:
        kernel = f"{kernel} (splits), {mpss_fast.COMBINE_KERNEL} (combines and XORs)"
    print(f"kernel: {kernel} (MPSS_FAST_KERNEL={kernel_env})")
    print(f"kernel chosen because: {KERNEL_REASON}")
    print(f"kernels this CPU runs: {', '.join(mpss_fast.KERNELS) or 'none (no native extension)'}")
    print(f"coefficients: AES-256-CTR keystream ({mpss_fast.KEYSTREAM}) under a fresh OS key per split")
    print("polynomials: 0x11B (AES field, draft-mcgrew-tss; default), 0x11D (libgfshare gfsplit/gfcombine)")
    print(f"limits: n <= {mpss_fast.MAX_SHARES}, secret <= {mpss_fast.MAX_SECRET_BYTES} bytes")
    return 0


# -- demo -------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """Relay a random key k-of-n over node-disjoint paths in SRv6 packets and rebuild it (``demo.py``)."""
    from . import demo

    result = demo.run()
    if not result.ok:
        print(f"{PROG}: error: demo verification failed", file=sys.stderr)
        return 1
    print("OK: key rebuilt from 3 of 5 shares")
    return 0


# -- bench ------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    """Time every kernel tier, pure, the machine's floor, a copy (and peers) side by side; print, save or plot."""
    from . import benchmark

    try:
        rounds = benchmark.parse_rounds(args.rounds)
        keys = benchmark.parse_keys(args.keys)
        sizes = benchmark.parse_sizes(args.sizes) if args.sizes else None
        if args.plot:
            benchmark.check_matplotlib()
    except benchmark.BenchError as exc:
        raise CliError(str(exc)) from None
    _check_report_paths(args.json, args.plot)
    sizes = sizes or (benchmark.PLOT_SIZES if args.plot else benchmark.DEFAULT_SIZES)
    peers, peer_status = benchmark.load_peers() if args.peers else ([], {})
    for name, status in peer_status.items():
        print(f"peer {name}: {status}", file=sys.stderr)
    large = None if args.sizes or args.plot else benchmark.LARGE_SPLIT
    cases = benchmark.default_cases(sizes, keys=keys, peers=bool(peers), large=large)
    floor, floor_status = benchmark.load_floor()
    with benchmark.Progress(sys.stderr) as progress:
        results = benchmark.run(cases, peers=peers, rounds=rounds, progress=progress, floor=floor)
    report = benchmark.report(results, rounds, peer_status, floor_status)
    rows = ",\n".join(f"  {json.dumps(row)}" for row in report.pop("results"))
    document = json.dumps(report, indent=1)[:-2] + f',\n "results": [\n{rows}\n ]\n}}'
    if args.json == "-":
        print(document)
    else:
        print(f"mpss_fast {mpss_fast.__version__}: medians of {rounds} rounds, contenders interleaved round by round")
        print(benchmark.format_table(results, floor_status))
    _save_report(args.json, document, args.plot, lambda path: benchmark.plot(results, path))
    return 0


# -- simulate ---------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate MPSS key relay and single-path trusted relay on one load; print (and save, plot) the comparison."""
    try:
        from . import sim
    except ImportError as exc:
        raise CliError(f"simulate needs simpy and networkx: install mpss-fast[sim] ({exc})") from None
    _check_report_paths(args.json, args.plot)
    if args.plot:
        sim.check_matplotlib()
    config = sim.SimConfig(
        topology=args.topology,
        sessions=args.sessions,
        seed=args.seed,
        duration_s=args.duration,
        key_bytes=args.key_bytes,
        failures=args.failures,
        tolerate=args.tolerate,
        k=args.k,
        n=args.n,
        compromised_relays=args.compromised_relays,
        tamper=args.tamper,
        mtbf_s=args.mtbf,
        mttr_s=args.mttr,
        key_timeout_s=args.key_timeout,
        verify_fraction=1.0 if args.verify else sim.SimConfig.verify_fraction,
        keep_sessions=False,
    ).checked()
    topology = sim.load_topology(config.topology, seed=config.seed)
    with sim.progress_bar(2 * config.sessions, quiet=args.quiet) as progress:
        results = sim.run(config, topology=topology, progress=progress)
    if args.json == "-":
        print(results.to_json())
    else:
        print(
            f"{config.sessions} sessions on {config.topology} ({results.topology['nodes']} nodes), seed {config.seed}, "
            f"{len(results.compromised)} compromised relays; {results.verified_sessions} verified with real relays; "
            f"{results.wall_s:.1f} s"
        )
        print(sim.format_table(results))
    _save_report(args.json, results.to_json(), args.plot, lambda path: sim.plot(results, topology, path))
    return 0


# -- kme-sim ----------------------------------------------------------------------------


def cmd_kme_sim(args: argparse.Namespace) -> int:
    """Serve ETSI GS QKD 014 link keys for SAE pairs until SIGTERM or Ctrl-C (``mpss_fast.etsi014.kme_sim``)."""
    import asyncio

    try:
        from .etsi014 import kme_sim
        from .etsi014.model import KeyLimits
        from .https.server import parse_listen
    except ImportError as exc:
        raise CliError(f"kme-sim needs aiohttp: install mpss-fast[node] ({exc})") from None
    host, port = parse_listen(args.listen)
    pairs = [kme_sim.parse_sae_pair(text) for text in args.sae]
    if args.plain_http and (args.cert or args.key or args.ca):
        raise CliError("--plain-http takes no --cert, --key or --ca")
    if not args.plain_http and not (args.cert and args.key and args.ca):
        raise CliError("kme-sim needs --cert, --key and --ca (mutual TLS), or --plain-http for development")
    limits = KeyLimits(key_size=args.key_size, max_key_count=args.max_keys)
    backend = kme_sim.KmeSimBackend(pairs, kme_id=args.kme_id, limits=limits, rate=args.rate)
    scheme = "http" if args.plain_http else "https"
    names = " ".join(f"{a},{b}" for a, b in pairs)

    def ready(server: kme_sim.RunningServer) -> None:
        shown = f"[{server.host}]" if ":" in server.host else server.host
        print(f"kme-sim: serving ETSI 014 on {scheme}://{shown}:{server.port} for SAE pairs {names}", flush=True)
        if args.plain_http:
            print("kme-sim: plain HTTP, no client authentication: development only", file=sys.stderr, flush=True)

    try:
        asyncio.run(
            kme_sim.serve(
                backend, host, port, cert=args.cert, key=args.key, ca=args.ca, plain_http=args.plain_http, ready=ready
            )
        )
    except OSError as exc:
        raise CliError(f"cannot listen on {args.listen}: {exc.strerror or exc}") from None
    return 0


# -- node -------------------------------------------------------------------------------


def cmd_node(args: argparse.Namespace) -> int:
    """Run a key-manager node from its configuration file until SIGTERM or Ctrl-C (``mpss_fast.node.daemon``)."""
    import asyncio

    try:
        from .node import daemon
        from .node.config import load_config
    except ImportError as exc:
        raise CliError(f"node needs aiohttp and networkx: install mpss-fast[node] ({exc})") from None
    config = load_config(args.config)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(daemon.run(config))
    except KeyboardInterrupt:  # pragma: no cover - the signal handler normally catches it
        pass
    return 0


# -- entry point ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``mpss``."""
    parser = argparse.ArgumentParser(prog=PROG, description="Multi-path secret sharing over GF(2^8) (mpss_fast).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {mpss_fast.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    poly_help = "reduction polynomial: 0x11b (AES, default) or 0x11d (libgfshare)"
    format_help = "share file layout: gfsplit (raw y bytes, x in the file name; default) or rtss (draft-mcgrew-tss)"

    p = sub.add_parser("split", help="split FILE into share files STEM.001 ... STEM.NNN")
    p.add_argument("-k", type=int, required=True, help="threshold: shares needed to rebuild")
    p.add_argument("-n", type=int, required=True, help="number of shares to write")
    p.add_argument("--poly", default="0x11b", help=poly_help)
    p.add_argument("--format", choices=FORMATS, default="gfsplit", help=format_help)
    p.add_argument(
        "--hash", choices=RTSS_HASHES, help="rtss: hash shared with the secret and checked on combine (default sha256)"
    )
    p.add_argument("-o", "--output", metavar="STEM", help="stem of the share files (default: FILE)")
    p.add_argument("--force", action="store_true", help="overwrite existing share files")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (shown on a terminal from 64 MiB)")
    p.add_argument("file", metavar="FILE", help="the secret; - for stdin")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("combine", help="rebuild a secret from share files FILE.NNN ...")
    p.add_argument("--poly", default="0x11b", help=poly_help)
    p.add_argument("--format", choices=FORMATS, default="gfsplit", help=format_help)
    p.add_argument("-o", "--output", metavar="OUT", help="output file, - for stdout (default: the files' stem)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (shown on a terminal from 64 MiB)")
    p.add_argument("files", metavar="FILE.NNN", nargs="+", help="share files; x is the .NNN suffix (gfsplit)")
    p.set_defaults(func=cmd_combine)

    p = sub.add_parser("info", help="show version, backends and polynomials")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="time every kernel tier, pure, the machine's floor and a memory copy side by side")
    p.add_argument("--rounds", default="15", help="timed rounds per case and contender, at least 3 (default 15)")
    p.add_argument("--sizes", metavar="LIST", help="secret sizes, e.g. 64,64K,1M (default 1M; with --plot 64..4M)")
    p.add_argument("--keys", default=str(100_000), help="32-byte keys in the bulk key cases (default 100000)")
    p.add_argument("--peers", action="store_true", help="also time galois, tss and pycryptodome where installed")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE (- for stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="plot split/combine GB/s vs size per tier (needs matplotlib)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("selftest", help="run known-answer tests of every kernel tier and keystream")
    p.set_defaults(func=cmd_selftest)

    p = sub.add_parser("demo", help="relay a random key over 5 simulated QKD paths and rebuild it")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="simulate MPSS key relay against single-path trusted relay (needs [sim])")
    p.add_argument(
        "--topology", default="metro", help="metro, backbone, mesh:N or a .json/.graphml file (default metro)"
    )
    p.add_argument("--sessions", type=int, default=1000, help="key sessions (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated load, failures and adversary (default 0)")
    p.add_argument(
        "--duration", type=float, default=100.0, help="simulated seconds the sessions arrive over (default 100)"
    )
    p.add_argument("--key-bytes", type=int, default=32, help="bytes of each end-to-end key (default 32)")
    p.add_argument("--failures", type=int, default=1, help="failed paths the (k, n) policy tolerates (default 1)")
    p.add_argument("--tolerate", type=int, default=1, help="compromised relays the (k, n) policy tolerates (default 1)")
    p.add_argument("-k", type=int, help="fixed threshold k (with -n; overrides the policy)")
    p.add_argument("-n", type=int, help="fixed number of shares and paths n (with -k)")
    p.add_argument("--compromised-relays", type=int, default=0, help="relays the adversary holds (default 0)")
    p.add_argument("--tamper", action="store_true", help="compromised relays also alter what they forward")
    p.add_argument("--mtbf", type=float, default=600.0, help="mean s between failures of a link; 0: none (default 600)")
    p.add_argument("--mttr", type=float, default=30.0, help="mean s to repair a link (default 30)")
    p.add_argument("--key-timeout", type=float, default=1.0, help="longest s a share waits for link key (default 1)")
    p.add_argument("--verify", action="store_true", help="relay every share as real bytes (default: 10 %% of sessions)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE (- for stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="draw one session's paths and the metrics (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("kme-sim", help="simulated QKD KME serving ETSI 014 link keys over mutual TLS (needs [node])")
    p.add_argument("--listen", required=True, metavar="HOST:PORT", help="address to serve on (port 0: any free port)")
    p.add_argument("--cert", metavar="PEM", help="the KME's certificate")
    p.add_argument("--key", metavar="PEM", help="the KME's private key")
    p.add_argument("--ca", metavar="PEM", help="CA that signed the SAE (client) certificates")
    p.add_argument("--sae", action="append", required=True, metavar="A,B", help="an SAE pair sharing keys (repeatable)")
    p.add_argument("--kme-id", default="kme-sim", help="this KME's ID in status answers (default kme-sim)")
    p.add_argument("--key-size", type=int, default=256, help="default key size in bits (default 256)")
    p.add_argument("--max-keys", type=int, default=100_000, help="most keys waiting per SAE pair (default 100000)")
    p.add_argument("--rate", type=float, help="keys per second the simulated link makes (default: unlimited)")
    p.add_argument("--plain-http", action="store_true", help="no TLS, caller named by X-SAE-ID: development only")
    p.set_defaults(func=cmd_kme_sim)

    p = sub.add_parser("node", help="run a key-manager node: MPSS relay + ETSI 014 toward applications (needs [node])")
    p.add_argument("--config", required=True, metavar="FILE", help="the node's configuration (JSON, or .toml)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"), help="default info")
    p.set_defaults(func=cmd_node)
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run ``mpss`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.func(args))
    except (CliError, mpss_fast.MpssError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        name = f"{_q(exc.filename)}: " if exc.filename else ""
        return _fail(f"{name}{exc.strerror or type(exc).__name__}")
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
