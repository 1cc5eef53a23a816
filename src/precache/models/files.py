"""Model directories: the one verified way to write and read them.

Why one module: every model kind, the model registry and the inference engine read the same kind of
directory -- model files (JSON / NPZ / ONNX, never pickle) plus ``manifest.json`` with the format version,
the kind and the sha256 of every file. When each kind did its own reading, one could forget a check
(an attention directory whose manifest listed no files loaded edited files unchecked). Here a kind can
only reach its files through :class:`ModelFiles`, whose readers refuse a file the manifest does not list,
check its sha256 on the very bytes they parse, and turn every parse failure (a bad zip, a truncated
array, broken JSON, absurd sizes) into :class:`ModelFileError`. Nothing here imports more than numpy.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Bounds on what one file may unpack to: a flipped byte or a hostile file must fail, not exhaust memory.
MAX_FILE_BYTES = 2 << 30
MAX_UNPACKED_BYTES = 4 << 30


class ModelFileError(ValueError):
    """A model directory cannot be loaded: missing file, checksum mismatch, newer format, wrong kind,
    unreadable or inconsistent content, or a model that loads but cannot predict."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- writing ----------------------------------------------------------------------------------------------
def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")


def write_npz(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """Plain numeric arrays only: object arrays would need pickle, which we refuse."""
    for name, array in arrays.items():
        if array.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; only numeric arrays are stored")
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]


def write_manifest(directory: str | os.PathLike[str], manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temporary file + rename): a crash leaves the old one or none."""
    root = Path(directory)
    with tempfile.NamedTemporaryFile("w", dir=root, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
        json.dump(manifest, tmp, indent=1, sort_keys=True)
    os.replace(tmp.name, root / MANIFEST)
    return root / MANIFEST


def file_digests(directory: str | os.PathLike[str], names: Iterable[str]) -> dict[str, str]:
    """``{name: sha256}`` of files just written, for the manifest's ``files``."""
    root = Path(directory)
    return {name: sha256_file(root / name) for name in names}


# -- parsing (from bytes already checked) -------------------------------------------------------------
def parse_json(data: bytes, where: object) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"cannot read {where}: {exc}") from exc


def parse_npz(data: bytes, where: object, names: Collection[str] | None = None) -> dict[str, npt.NDArray[Any]]:
    """The arrays of an ``.npz`` file; with ``names``, exactly those arrays must be there.

    Each member is unpacked within :data:`MAX_UNPACKED_BYTES` and its declared shape must match its size
    before numpy allocates anything, so a damaged header cannot ask for terabytes.
    """
    arrays: dict[str, npt.NDArray[Any]] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
                raise ModelFileError(f"{where}: unpacks to more than {MAX_UNPACKED_BYTES} bytes")
            for member in members:
                name = member.filename.removesuffix(".npy")
                if name == member.filename or name in arrays:
                    raise ModelFileError(f"{where}: unexpected member {member.filename!r}")
                arrays[name] = _parse_npy(archive.read(member), f"{where}:{member.filename}")
    except ModelFileError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy raise many types for damaged input
        raise ModelFileError(f"cannot read {where}: {type(exc).__name__}: {exc}") from exc
    if names is not None and set(arrays) != set(names):
        missing, extra = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        raise ModelFileError(f"{where}: arrays do not fit this model (missing {missing}, unexpected {extra})")
    return arrays


def _parse_npy(raw: bytes, where: str) -> npt.NDArray[Any]:
    stream = io.BytesIO(raw)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ModelFileError(f"{where}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise ModelFileError(f"{where}: object arrays are refused (they would need pickle)")
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw) - stream.tell():
        raise ModelFileError(f"{where}: array of shape {shape} does not match its {len(raw)} bytes")
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=stream.tell())
    return array.reshape(shape, order="F" if fortran else "C").copy()


# -- the manifest ---------------------------------------------------------------------------------------
def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``manifest.json``: format version, kind, file list, the sha256 of every listed file."""
    root = Path(directory)
    path = root / MANIFEST
    if not root.is_dir():
        raise ModelFileError(f"model directory {root} does not exist")
    if not path.is_file():
        raise ModelFileError(f"{root} is not a model directory: {MANIFEST} is missing")
    manifest = parse_json(_read_bounded(path), path)
    if not isinstance(manifest, dict) or "format_version" not in manifest or "kind" not in manifest:
        raise ModelFileError(f"{path} is not a precache model manifest (no format_version/kind)")
    version = manifest["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: model format version {version} is newer than this precache supports "
            f"({FORMAT_VERSION}); upgrade precache to load it"
        )
    if not isinstance(manifest["kind"], str) or not manifest["kind"]:
        raise ModelFileError(f"{path}: bad kind {manifest['kind']!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelFileError(f"{path}: 'files' must map every model file to its sha256 (it lists none)")
    verify_files(root, files)
    return manifest


def verify_files(directory: Path, digests: Mapping[str, object]) -> None:
    """Every ``name -> sha256`` entry names a plain file of ``directory`` whose content has that sha256."""
    for name, expected in digests.items():
        file_path = _listed_path(directory, name)
        if not file_path.is_file():
            raise ModelFileError(f"model file {file_path} listed in the manifest is missing")
        actual = sha256_file(file_path)
        if actual != expected:
            raise ModelFileError(
                f"model file {file_path} is corrupt or was modified: sha256 {actual[:12]}... "
                f"!= manifest {str(expected)[:12]}..."
            )


def _listed_path(directory: Path, name: object) -> Path:
    if not isinstance(name, str) or not name or Path(name).name != name or name in (MANIFEST, ".", ".."):
        raise ModelFileError(f"{directory / MANIFEST}: bad file name {name!r} in manifest")
    return directory / name


def _read_bounded(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ModelFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc}") from exc


class ModelFiles:
    """A model directory whose manifest was checked: the only way a model kind reads its files.

    Each reader refuses a name the manifest does not list, and checks the sha256 of the bytes it is
    about to parse (so a file swapped after :func:`read_manifest` is caught too).
    """

    def __init__(self, root: Path, manifest: Mapping[str, Any], listed: Mapping[str, str] | None = None) -> None:
        """``listed`` (``name -> sha256``) defaults to the manifest's ``files``; the cache optimizer's older
        layout keeps it under ``sha256``."""
        self.root = root
        self.manifest = manifest
        self.kind = str(manifest["kind"])
        self.listed: Mapping[str, str] = manifest["files"] if listed is None else listed

    def __repr__(self) -> str:
        return f"ModelFiles({str(self.root)!r}, kind={self.kind!r})"

    @property
    def config(self) -> dict[str, Any]:
        config = self.manifest.get("config") or {}
        if not isinstance(config, dict):
            raise ModelFileError(f"{self.root}: manifest config must be an object")
        return dict(config)

    def require(self, *names: str) -> None:
        """Refuse the directory unless the manifest lists (and so checksums) every one of ``names``."""
        for name in names:
            if name not in self.listed:
                raise ModelFileError(f"{self.root}: manifest does not list {name}, which a {self.kind} model reads")

    def read_bytes(self, name: str) -> bytes:
        self.require(name)
        path = _listed_path(self.root, name)
        data = _read_bounded(path)
        if sha256_bytes(data) != self.listed[name]:
            raise ModelFileError(f"model file {path} is corrupt or was modified (sha256 != manifest)")
        return data

    def read_json(self, name: str) -> Any:
        return parse_json(self.read_bytes(name), self.root / name)

    def read_npz(self, name: str, names: Collection[str] | None = None) -> dict[str, npt.NDArray[Any]]:
        return parse_npz(self.read_bytes(name), self.root / name, names)

    def subdirectory(self, name: object, manifest_sha256: object) -> Path:
        """A component model directory inside this one, pinned by the sha256 of its manifest (the
        component's own files are then verified by its own manifest when it is loaded)."""
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise ModelFileError(f"{self.root}: bad component directory {name!r}")
        sub = self.root / name
        if not (sub / MANIFEST).is_file():
            raise ModelFileError(f"{self.root}: component {name!r} is missing")
        if sha256_file(sub / MANIFEST) != manifest_sha256:
            raise ModelFileError(f"{sub}: component manifest does not match its parent (sha256)")
        return sub


def open_model_dir(directory: str | os.PathLike[str], kind: str | None = None) -> ModelFiles:
    """Check a model directory (manifest, format version, every sha256) and, with ``kind``, that it holds
    that kind of model. The model registry, the inference engine and every predictor's ``load`` start
    here."""
    root = Path(directory)
    manifest = read_manifest(root)
    if kind is not None and manifest["kind"] != kind:
        raise ModelFileError(f"{root} holds a {manifest['kind']!r} model, not {kind!r}; use load_predictor()")
    return ModelFiles(root, manifest)
