"""Safe serialization: type-tagged records, refusal of unsafe values, poisoned bytes are never run."""

from __future__ import annotations

import os
import pickle
import random

import pytest

from precache.cache import Codec, PoisonedValueError, UnserializableValueError


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
@pytest.mark.parametrize("value", [b"\x00raw", "text é", {"a": [1, 2.5, None, True]}, [1, "x"], 42, None])
def test_round_trip_keeps_type(serializer: str, value: object) -> None:
    codec = Codec(serializer)  # type: ignore[arg-type]
    record = codec.decode(codec.encode(value, expires_at=123.5, delta=0.25))
    assert record.value == value and type(record.value) is type(value)
    assert record.expires_at == 123.5 and record.delta == pytest.approx(0.25)


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_unserializable_value_is_refused_clearly(serializer: str) -> None:
    with pytest.raises(UnserializableValueError, match="never pickles"):
        Codec(serializer).encode({"f": object()})  # type: ignore[arg-type]


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize(
    "raw",
    [
        random.Random(29).randbytes(64),  # seeded: pytest-xdist's workers must collect the same ids
        pickle.dumps(Boom()),
        b"",
        b"PC\x01\x03" + b"\x00" * 12 + b"{not json",
        b"PC\x09\x01" + b"\x00" * 14,
    ],
    ids=["random", "pickle", "empty", "bad-json", "unknown-tag"],
)
def test_poisoned_bytes_raise_poisoned_error(raw: bytes) -> None:
    with pytest.raises(PoisonedValueError):
        Codec().decode(raw)


def test_unknown_serializer() -> None:
    with pytest.raises(ValueError, match="unknown serializer"):
        Codec("pickle")  # type: ignore[arg-type]
