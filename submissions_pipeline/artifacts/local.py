"""The local-disk artifact store: the embedded default, with atomic writes and a TTL sweep."""

from __future__ import annotations

import builtins
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from submissions_pipeline.artifacts.base import (
    DEFAULT_CONTENT_TYPE,
    KEPT_PAST_TTL,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreUnavailable,
    StoredArtifact,
    guess_content_type,
)

_CHUNK = 1024 * 1024
# Temp files start with a dot, which no valid key segment can, so listings never show them.
_TEMP_PREFIX = ".tmp-"

#: Evidence holds personal data (VINs, names, screenshots): only its owner reads it by default.
DEFAULT_FILE_MODE = 0o600
DEFAULT_DIR_MODE = 0o700


def parse_mode(mode: str | int) -> int:
    """A permission mode from an octal string ("0640", "640") or an int."""
    if isinstance(mode, bool):
        raise ValueError(f"a file mode must be octal digits, got {mode!r}")
    if isinstance(mode, int):
        return mode
    if not isinstance(mode, str) or not mode.strip().isdigit():
        raise ValueError(f"a file mode must be octal digits like 0600, got {mode!r}")
    try:
        return int(mode.strip(), 8)
    except ValueError:
        raise ValueError(f"a file mode must be octal digits like 0600, got {mode!r}") from None


def check_modes(file_mode: int, dir_mode: int) -> tuple[int, int]:
    """Refuse modes that would show evidence to every user of the machine, or lock its owner
    (and so the store itself) out; return them."""
    for what, mode, owner in (("file", file_mode, 0o600), ("folder", dir_mode, 0o700)):
        if not 0 <= mode <= 0o777:
            raise ValueError(f"artifact {what} mode {mode:#o} is not a permission mode")
        if mode & 0o007:
            raise ValueError(
                f"artifact {what} mode {mode:04o} grants access to every user (evidence holds "
                "personal data); use owner and group bits only, e.g. 0600/0700 or 0640/0750"
            )
        if mode & owner != owner:
            raise ValueError(f"artifact {what} mode {mode:04o} must give its owner {owner:04o}")
    return file_mode, dir_mode


class LocalArtifactStore(ArtifactStore):
    """Artifacts as files under `root`, at `root/<key>`.

    Writes go to a temp file in the target folder, are fsynced, then renamed over the key, so a
    reader or a crash never sees half an artifact. Disk has no lifecycle engine: call
    `purge_expired(now)` (e.g. from a daily schedule) to delete files whose mtime is older than
    `ttl_days`; that is the local equivalent of the S3 store's bucket lifecycle rule, and like
    it only touches this store's env prefix.

    Files get `file_mode` and the folders the store creates `dir_mode`, whatever the umask:
    0600/0700 by default, 0640/0750 where a group (e.g. the operators) must read the evidence.
    """

    def __init__(
        self,
        root: Path | str,
        env: str = "dev",
        ttl_days: int = 30,
        *,
        file_mode: int | str = DEFAULT_FILE_MODE,
        dir_mode: int | str = DEFAULT_DIR_MODE,
    ):
        """`root`: folder holding every env (created on first write); see ArtifactStore.
        `file_mode`, `dir_mode`: permissions, as ints or octal strings ("0640")."""
        super().__init__(env=env, ttl_days=ttl_days)
        self.root = Path(root).resolve()
        self.file_mode, self.dir_mode = check_modes(parse_mode(file_mode), parse_mode(dir_mode))

    def path_of(self, key: str) -> Path:
        """The file that holds (or would hold) `key`."""
        return self.root / self.check_key(key)

    # -- writes -------------------------------------------------------------------------------

    def put_bytes(
        self, key: str, data: bytes, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> StoredArtifact:
        """Store `data` under `key` atomically."""
        target = self.path_of(key)
        with self._atomic_writer(target) as out:
            out.write(data)
        return self._stored(key, target, len(data), hashlib.sha256(data).hexdigest(), content_type)

    def put_file(
        self, key: str, path: Path | str, content_type: str | None = None
    ) -> StoredArtifact:
        """Copy the file at `path` under `key` atomically, hashing it in the same pass."""
        target = self.path_of(key)
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as src, self._atomic_writer(target) as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return self._stored(
            key, target, size, digest.hexdigest(), content_type or guess_content_type(path)
        )

    @contextmanager
    def _atomic_writer(self, target: Path) -> Iterator[BinaryIO]:
        tmp: str | None = None
        try:
            fd, tmp = self._temp_file_beside(target)
            os.fchmod(fd, self.file_mode)  # exact, whatever the umask
            with os.fdopen(fd, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            tmp = None
            _fsync_dir(target.parent)
        except OSError as exc:
            raise ArtifactStoreUnavailable(f"cannot write {target}: {exc}") from exc
        finally:
            if tmp is not None:
                with suppress(OSError):
                    os.unlink(tmp)

    def _temp_file_beside(self, target: Path) -> tuple[int, str]:
        """Create the folder and a temp file in it; a concurrent purge may remove the folder in
        between when it is still empty, so try again a few times."""
        for _ in range(3):
            try:
                self._make_dirs(target.parent)
                return tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
            except FileNotFoundError:
                continue
        self._make_dirs(target.parent)
        return tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)

    def _make_dirs(self, folder: Path) -> None:
        """Create `folder` and its missing parents up to the root with `dir_mode` (mkdir's own
        mode is cut by the umask and ignored for parents, hence the chmod)."""
        if folder.is_dir():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)  # outside the store: not its call
        missing = []
        for path in (folder, *folder.parents):
            if path.is_dir():
                break
            missing.append(path)
            if path == self.root:
                break
        for path in reversed(missing):
            try:
                path.mkdir(mode=self.dir_mode)
            except FileExistsError:
                continue  # another writer made it
            os.chmod(path, self.dir_mode)

    def _stored(
        self, key: str, target: Path, size: int, sha256: str, content_type: str
    ) -> StoredArtifact:
        return StoredArtifact(
            key=key, size=size, sha256=sha256, content_type=content_type, uri=target.as_uri()
        )

    # -- reads --------------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        """The file's bytes; ArtifactNotFound if it is missing."""
        target = self.path_of(key)
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ArtifactNotFound(key) from exc
        except OSError as exc:
            raise ArtifactStoreUnavailable(f"cannot read {target}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""
        return self.path_of(key).is_file()

    def list(self, prefix: str) -> builtins.list[str]:
        """Keys starting with `prefix`, sorted; temp files of writes in progress are left out."""
        self.check_prefix(prefix)
        # Walk only the deepest folder the prefix names in full; filter the partial tail by string.
        start = self.root / prefix.rpartition("/")[0]
        if not start.is_dir():
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                if filename.startswith("."):
                    continue
                key = Path(dirpath, filename).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def url(self, key: str, expires_s: int | None = None) -> str:
        """A file:// URI; `expires_s` is ignored (a local file has no signed link)."""
        return self.path_of(key).as_uri()

    # -- TTL ----------------------------------------------------------------------------------

    def purge_expired(self, now: datetime) -> int:
        """Delete files under this env whose mtime is more than `ttl_days` before `now`, except
        manifests and bundles (`KEPT_PAST_TTL`), which say what the evidence was.

        Leftover temp files of crashed writes are deleted by the same rule (not counted), and
        folders left empty are removed. `now` must be timezone-aware. Returns the artifacts
        deleted.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        cutoff = (now - timedelta(days=self.ttl_days)).timestamp()
        env_root = self.root / self.env
        deleted = 0
        for dirpath, _dirnames, filenames in os.walk(env_root, topdown=False):
            for filename in filenames:
                if filename in KEPT_PAST_TTL:
                    continue
                path = Path(dirpath, filename)
                try:
                    if path.stat().st_mtime >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue  # replaced or removed meanwhile
                except OSError as exc:
                    raise ArtifactStoreUnavailable(f"cannot purge {path}: {exc}") from exc
                if not filename.startswith("."):
                    deleted += 1
            if Path(dirpath) != env_root:
                with suppress(OSError):
                    os.rmdir(dirpath)  # only succeeds when empty
        return deleted


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where folders cannot be opened."""
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
