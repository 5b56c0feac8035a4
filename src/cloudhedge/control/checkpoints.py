"""Checkpoint stores: save, list and load a job's checkpoints, on disk or in S3.

Used by workloads (to save and resume, e.g. ``examples/control/train.py``) and by the
control plane (to find a job's latest checkpoint before placing it again).

Layout: one object per checkpoint, named ``step-%012d`` (``step-000000000120``), directly
under the store's location: a directory (``/data/ckpt/job``, ``file:///data/ckpt/job``)
or an S3 prefix (``s3://bucket/ckpt/job``). Other names there are ignored.

Contract:

- :meth:`CheckpointStore.save` is atomic: a reader sees the whole checkpoint or none
  of it, even if the writer dies mid-save. On disk: a temporary file in the same
  directory, ``fsync``, ``os.replace``, ``fsync`` of the directory; in S3 a single
  ``PutObject`` (S3 never shows a partial object).
- :meth:`~CheckpointStore.list` is in ascending step order (the number, not the name or
  the modification time); :meth:`~CheckpointStore.latest` is its last.
- Saving a step again replaces that checkpoint.
- I/O failures raise :class:`CheckpointError`, naming the location.

S3 uses boto3 (imported when first needed) with its usual configuration: credentials
and region from the environment or the config files, and the endpoint from
``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (boto3 reads them itself).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from cloudhedge.core.errors import CloudhedgeError

log = logging.getLogger(__name__)

NAME_FORMAT = "step-%012d"
_NAME = re.compile(r"^step-(\d{12,})$")


class CheckpointError(CloudhedgeError):
    """A checkpoint store could not be read or written; ``location`` says which."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location


@dataclass(frozen=True)
class StoredCheckpoint:
    """One saved checkpoint: its step and where it is (a path or ``s3://bucket/key``)."""

    step: int
    location: str


class CheckpointStore(Protocol):
    """Checkpoints under one location; see the module docstring."""

    location: str

    def save(self, step: int, data: bytes) -> StoredCheckpoint:
        """Store ``data`` as the checkpoint of ``step``, atomically."""
        ...

    def latest(self) -> StoredCheckpoint | None:
        """The checkpoint with the highest step, or ``None`` if there is none."""
        ...

    def load(self, checkpoint: StoredCheckpoint) -> bytes:
        """The data of a checkpoint of this store."""
        ...

    def list(self) -> list[StoredCheckpoint]:
        """Every checkpoint, in ascending step order."""
        ...


def checkpoint_name(step: int) -> str:
    """The object name of ``step`` (``step-000000000120``)."""
    if step < 0:
        raise ValueError(f"a checkpoint step is >= 0, not {step}")
    return NAME_FORMAT % step


def _step_of(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


class LocalCheckpoints:
    """Checkpoints as files of one directory (made on first save)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.location = str(self.directory)

    def save(self, step: int, data: bytes) -> StoredCheckpoint:
        final = self.directory / checkpoint_name(step)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial",
                                           dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(partial)
                raise
            self._sync_directory()
        except OSError as e:
            raise CheckpointError(self.location, f"cannot save step {step}: {e}") from e
        log.debug("saved %s", final)
        return StoredCheckpoint(step, str(final))

    def _sync_directory(self) -> None:
        """Make the rename durable (where directories can be opened)."""
        try:
            fd = os.open(self.directory, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def list(self) -> list[StoredCheckpoint]:
        try:
            names = [p.name for p in self.directory.iterdir()] if self.directory.exists() else []
        except OSError as e:
            raise CheckpointError(self.location, f"cannot list: {e}") from e
        found = [(step, name) for name in names if (step := _step_of(name)) is not None]
        return [StoredCheckpoint(step, str(self.directory / name))
                for step, name in sorted(found)]

    def latest(self) -> StoredCheckpoint | None:
        found = self.list()
        return found[-1] if found else None

    def load(self, checkpoint: StoredCheckpoint) -> bytes:
        try:
            return Path(checkpoint.location).read_bytes()
        except OSError as e:
            raise CheckpointError(self.location, f"cannot load step {checkpoint.step}: {e}") from e


class S3Checkpoints:
    """Checkpoints as objects under ``s3://bucket/prefix``.

    ``client`` is a boto3 S3 client (default: made on first use, from the environment);
    ``page_size`` the keys per ``ListObjectsV2`` page (default: S3's 1000).
    """

    def __init__(self, location: str, *, client: Any = None,
                 page_size: int | None = None) -> None:
        parsed = urlparse(location)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] location: {location!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._client = client
        self._client_lock = threading.Lock()
        self._page_size = page_size

    def _s3(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    boto3 = importlib.import_module("boto3")  # lazy: only s3:// needs it
                except ImportError as e:
                    raise CheckpointError(self.location, "s3:// needs boto3 (pip install "
                                          "'cloudhedge[aws]')") from e
                self._client = boto3.client("s3")
            return self._client

    @staticmethod
    def _sdk_errors() -> tuple[type[Exception], ...]:
        """botocore's exception roots (every failure of a call), imported lazily."""
        try:
            exceptions = importlib.import_module("botocore.exceptions")
        except ImportError:
            return ()
        return (exceptions.BotoCoreError, exceptions.ClientError)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, what: str, exc: Exception) -> CheckpointError:
        return CheckpointError(self.location, f"{what}: {type(exc).__name__}: {exc}")

    def save(self, step: int, data: bytes) -> StoredCheckpoint:
        key = self._key(checkpoint_name(step))
        try:
            self._s3().put_object(Bucket=self.bucket, Key=key, Body=data)
        except self._sdk_errors() as e:
            raise self._fail(f"cannot save step {step}", e) from e
        return StoredCheckpoint(step, f"s3://{self.bucket}/{key}")

    def list(self) -> list[StoredCheckpoint]:
        args: dict[str, Any] = {"Bucket": self.bucket,
                                "Prefix": f"{self.prefix}/" if self.prefix else ""}
        if self._page_size is not None:
            args["PaginationConfig"] = {"PageSize": self._page_size}
        found: list[tuple[int, str]] = []
        try:
            for page in self._s3().get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", []):
                    key = str(item["Key"])
                    step = _step_of(key[len(args["Prefix"]):])
                    if step is not None:
                        found.append((step, key))
        except self._sdk_errors() as e:
            raise self._fail("cannot list", e) from e
        return [StoredCheckpoint(step, f"s3://{self.bucket}/{key}") for step, key in sorted(found)]

    def latest(self) -> StoredCheckpoint | None:
        found = self.list()
        return found[-1] if found else None

    def load(self, checkpoint: StoredCheckpoint) -> bytes:
        parsed = urlparse(checkpoint.location)
        if parsed.scheme != "s3" or parsed.netloc != self.bucket:
            raise CheckpointError(self.location, f"{checkpoint.location} is not in this store")
        try:
            body = self._s3().get_object(Bucket=self.bucket, Key=parsed.path.lstrip("/"))["Body"]
            with contextlib.closing(body):
                data: bytes = body.read()
            return data
        except self._sdk_errors() as e:
            raise self._fail(f"cannot load step {checkpoint.step}", e) from e


def open_checkpoints(location: str) -> CheckpointStore:
    """The store at ``location``: ``s3://bucket/prefix``, ``file:///dir`` or a path."""
    if location.startswith("s3://"):
        return S3Checkpoints(location)
    if location.startswith("file://"):
        parsed = urlparse(location)
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// location names no host: {location!r}")
        return LocalCheckpoints(unquote(parsed.path))
    if "://" in location:
        raise ValueError(f"unsupported checkpoint location {location!r} (s3://, file:// or a path)")
    return LocalCheckpoints(location)
