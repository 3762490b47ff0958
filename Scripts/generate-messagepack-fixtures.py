#!/usr/bin/env python3
"""Generate the MessagePack test vectors in Fixtures/messagepack/.

Run from anywhere (needs PyPI's msgpack package, `pip install msgpack`):

    python3 Scripts/generate-messagepack-fixtures.py

It deletes every *.json in Fixtures/messagepack/ and writes one JSON file per vector,
named <family>-<short-name>.json. Each file says what the bytes are ("msgpack", hex),
what they mean ("value", tagged JSON), which Swift type they decode into ("type"),
how Swift's JSONDecoder would spell the same value ("json") and which encoder options
produce them ("options"). Fixtures/messagepack/README.md describes the format.

Every byte comes from the msgpack package, never from this script: plain values go
through one msgpack.packb call; values that hold a float32 inside a larger value are
packed piecewise by pack() (see there), because Python has no float32 type.
Negative ext type codes need one workaround, explained at ext_type().

The output is deterministic. Each file is read back and checked against msgpack
right after it is written (see check_file); the script stops at the first failure
and otherwise prints a summary.
"""

import base64
import json
import math
import re
import struct
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

try:
    import msgpack
except ImportError:
    sys.exit("error: the Python package 'msgpack' is missing; install it with: pip install msgpack")
# Timestamp arrived in msgpack 1.0; older versions would silently pack other bytes.
if not hasattr(msgpack, "Timestamp"):
    sys.exit("error: msgpack >= 1.0 is needed (found %s); upgrade with: pip install -U msgpack"
             % ".".join(map(str, getattr(msgpack, "version", ("?",)))))

OUT_DIR = Path(__file__).resolve().parent.parent / "Fixtures" / "messagepack"
SIZE_WARNING = 1_000_000  # bytes; the brief asks for files of about 1 MB at most

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
# Swift's Date counts seconds from 2001-01-01, this many seconds after 1970-01-01.
SWIFT_REFERENCE_DATE = 978_307_200

ALLOWED_TYPES = {
    "Int?", "Bool", "Int", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32",
    "UInt64", "Float", "Double", "String", "Data", "[UInt8]", "[Int]", "[String]",
    "[String: Int]", "[Int: String]", "Date", "MessagePackValue", "MessagePackTimestamp",
    "MessagePackExtension",
    "Inner", "Primitives", "Order", "Basket", "Drawing", "Stamps", "Dog", "IntKeyed",
}


# ---------------------------------------------------------------------------
# The MessagePack model: what the bytes say, as Python values.
#   None, bool, int, float (float64), str, bytes (bin), list (array), dict (map with
#   unique hashable keys), Map (map as ordered pairs), F32 (float32),
#   msgpack.ExtType (ext), msgpack.Timestamp (ext -1).
# ---------------------------------------------------------------------------

class F32:
    """A float32. Holds the float64 that equals the float32 nearest to x."""

    def __init__(self, x):
        # struct rounds to float32 (and raises on overflow, which catches typos).
        self.value = struct.unpack("<f", struct.pack("<f", x))[0]


class Map:
    """A map as ordered (key, value) pairs: keys of any type, order as in the bytes."""

    def __init__(self, pairs):
        self.pairs = list(pairs)


def ext_type(code, data):
    """A msgpack.ExtType for any type code -128...127.

    msgpack.ExtType's constructor refuses negative codes (the MessagePack spec reserves
    them for predefined types), but both of msgpack's packers write the code as a signed
    byte, and Swift's MessagePackExtension takes any Int8. So for negative codes only
    that Python-side range check is skipped; the bytes are still msgpack's. Also used as
    unpackb's ext_hook, whose default (ExtType) would refuse negative codes too.
    """
    assert -128 <= code <= 127, code
    return tuple.__new__(msgpack.ExtType, (code, data))


def has_f32(model):
    if isinstance(model, F32):
        return True
    if isinstance(model, list):
        return any(has_f32(e) for e in model)
    if isinstance(model, Map):
        return any(has_f32(k) or has_f32(v) for k, v in model.pairs)
    if isinstance(model, dict):
        return any(has_f32(k) or has_f32(v) for k, v in model.items())
    return False


def to_py(model):
    """The model as the plain Python value msgpack.packb takes (no F32 inside)."""
    if isinstance(model, list):
        return [to_py(e) for e in model]
    if isinstance(model, (Map, dict)):
        pairs = model.pairs if isinstance(model, Map) else list(model.items())
        d = {to_py(k): to_py(v) for k, v in pairs}
        # A dict would merge keys Python thinks equal (1 and True, 1 and 1.0).
        assert len(d) == len(pairs), "map keys collide in a Python dict: %r" % pairs
        return d
    assert not isinstance(model, F32), "F32 must go through pack()"
    return model


def pack(model):
    """The MessagePack bytes of a model value, every byte from the msgpack package.

    A value without float32 is one msgpack.packb(..., use_bin_type=True) call.
    A value with a float32 somewhere is assembled from pieces, because packb packs
    every Python float either as float64 or (use_single_float=True) as float32:
      - the F32 itself: msgpack.packb(x, use_bin_type=True, use_single_float=True);
      - an array or map around it: the header from msgpack.Packer.pack_array_header /
        pack_map_header, then pack() of each element (or key and value) in order;
      - every other part: msgpack.packb as above.
    The pieces concatenate to exactly what a MessagePack encoder writing that float
    as float32 would produce, since MessagePack values are self-delimiting.
    """
    if not has_f32(model):
        return msgpack.packb(to_py(model), use_bin_type=True)
    if isinstance(model, F32):
        return msgpack.packb(model.value, use_bin_type=True, use_single_float=True)
    packer = msgpack.Packer(use_bin_type=True)
    if isinstance(model, list):
        return packer.pack_array_header(len(model)) + b"".join(pack(e) for e in model)
    pairs = model.pairs if isinstance(model, Map) else list(model.items())
    return packer.pack_map_header(len(pairs)) + b"".join(pack(k) + pack(v) for k, v in pairs)


def nonfinite_name(x):
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def tag(model):
    """The model as tagged JSON (the "value" field)."""
    if model is None or isinstance(model, (bool, int, str)):
        return model
    if isinstance(model, float):
        return model if math.isfinite(model) else {"$float64": nonfinite_name(model)}
    if isinstance(model, F32):
        x = model.value
        return {"$float32": x if math.isfinite(x) else nonfinite_name(x)}
    if isinstance(model, bytes):
        return {"$bin": model.hex()}
    if isinstance(model, list):
        return [tag(e) for e in model]
    if isinstance(model, msgpack.Timestamp):
        return {"$timestamp": {"seconds": model.seconds, "nanoseconds": model.nanoseconds}}
    if isinstance(model, msgpack.ExtType):
        assert model.code != -1, "ext -1 is the timestamp; use msgpack.Timestamp"
        return {"$ext": {"type": model.code, "data": model.data.hex()}}
    pairs = model.pairs if isinstance(model, Map) else list(model.items())
    if all(isinstance(k, str) and not k.startswith("$") for k, _ in pairs):
        return {k: tag(v) for k, v in pairs}
    return {"$map": [[tag(k), tag(v)] for k, v in pairs]}


def untag(j):
    """Tagged JSON back to the model: the inverse of tag(), used by the self-check."""
    if isinstance(j, list):
        return [untag(e) for e in j]
    if not isinstance(j, dict):
        return j
    keys = list(j)
    if len(keys) == 1 and keys[0].startswith("$"):
        name, body = keys[0], j[keys[0]]
        if name == "$bin":
            return bytes.fromhex(body)
        if name == "$ext":
            return ext_type(body["type"], bytes.fromhex(body["data"]))
        if name == "$timestamp":
            return msgpack.Timestamp(body["seconds"], body["nanoseconds"])
        if name in ("$float32", "$float64"):
            x = float(body) if isinstance(body, str) else body
            assert isinstance(x, float), "float tag holds a non-float: %r" % j
            return F32(x) if name == "$float32" else x
        if name == "$map":
            return Map((untag(k), untag(v)) for k, v in body)
        raise AssertionError("unknown tag %s" % name)
    assert not any(k.startswith("$") for k in keys), "a $ key in a plain map: %r" % keys
    return Map((k, untag(v)) for k, v in j.items())


def same(decoded, model):
    """Whether msgpack.unpackb's result equals a model value, types included."""
    if isinstance(model, F32):
        model = model.value
    if isinstance(model, float):
        return isinstance(decoded, float) and (
            (math.isnan(decoded) and math.isnan(model))
            or (decoded == model and math.copysign(1, decoded) == math.copysign(1, model)))
    if isinstance(model, list):
        return (isinstance(decoded, list) and len(decoded) == len(model)
                and all(same(d, m) for d, m in zip(decoded, model)))
    if isinstance(model, (Map, dict)):
        pairs = model.pairs if isinstance(model, Map) else list(model.items())
        return (isinstance(decoded, dict) and len(decoded) == len(pairs)
                and all(same(dk, mk) and same(dv, mv)
                        for (dk, dv), (mk, mv) in zip(decoded.items(), pairs)))
    return type(decoded) is type(model) and decoded == model


# ---------------------------------------------------------------------------
# Swift values: what the Swift side holds. to_model() says what Swift's MessagePack
# encoder writes for them (it depends on the options), to_json() what Swift's
# JSONEncoder writes (the "json" field). Plain Python values stand for themselves:
# None (nil / absent optional), bool, int (any integer type), float (Double),
# str, list (Array). F32 stands for a Swift Float.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    struct_array: bool = False      # "structEncoding": "array"
    integer_keys: bool = False      # "keyEncoding": "integer"
    dates: str = "timestamp"        # or "secondsSince1970" / "millisecondsSince1970"

    def to_json(self):
        out = {}
        if self.struct_array:
            out["structEncoding"] = "array"
        if self.integer_keys:
            out["keyEncoding"] = "integer"
        if self.dates != "timestamp":
            out["dateEncoding"] = self.dates
        return out or None


DEFAULT = Options()


@dataclass
class SData:          # Data: bin; JSON base64
    data: bytes


@dataclass
class SBytes:         # [UInt8] encoded as bin; JSON array of ints
    data: bytes


@dataclass
class SDate:          # Date, from seconds since 1970
    seconds: float

    def __post_init__(self):
        # Only values Swift's Date (a Double from 2001) holds exactly, and whose
        # nanoseconds are whole, so every side agrees to the bit.
        exact = Fraction(self.seconds)
        since2001 = exact - SWIFT_REFERENCE_DATE
        assert Fraction(float(since2001)) == since2001, "not exact as a Swift Date"
        assert (exact * 10**9).denominator == 1, "not whole nanoseconds"

    def timestamp(self):
        exact = Fraction(self.seconds)
        whole = math.floor(exact)
        return msgpack.Timestamp(whole, int((exact - whole) * 10**9))


@dataclass
class STimestamp:     # MessagePackTimestamp
    seconds: int
    nanoseconds: int = 0


@dataclass
class SExt:           # MessagePackExtension
    type: int
    data: bytes


@dataclass
class SDict:          # [String: Int] / [Int: String]: the Swift encoder sorts the keys
    entries: dict

    def sorted_pairs(self):
        keys = list(self.entries)
        if all(isinstance(k, str) for k in keys):
            keys.sort(key=lambda k: k.encode("utf-8"))
        else:
            assert all(type(k) is int for k in keys), "keys must be all String or all Int"
            keys.sort()
        return [(k, self.entries[k]) for k in keys]


@dataclass
class SStruct:        # a struct or class: fields in declaration order
    name: str
    fields: list      # (name, value) or (name, intValue, value); value None = absent optional

    def items(self):
        for f in self.fields:
            yield (f[0], None, f[1]) if len(f) == 2 else f


@dataclass
class SEnum:          # an enum case with associated values, in synthesized Codable form
    case: str
    values: list = field(default_factory=list)   # (label or None, value)

    def pairs(self):
        # Unlabeled associated values are keyed "_0", "_1", ... by position.
        return [(label if label is not None else "_%d" % i, v)
                for i, (label, v) in enumerate(self.values)]


@dataclass
class SAny:           # MessagePackValue: holds a model value as is; no JSON form
    model: object


class NoJSON(Exception):
    """The value has no JSONEncoder form (it holds a MessagePackValue)."""


def to_model(v, opts):
    if v is None or isinstance(v, (bool, int, str, float, F32)):
        return v
    if isinstance(v, list):
        return [to_model(e, opts) for e in v]
    if isinstance(v, (SData, SBytes)):
        return v.data
    if isinstance(v, SDate):
        if opts.dates == "secondsSince1970":
            return float(v.seconds)
        if opts.dates == "millisecondsSince1970":
            ms = Fraction(v.seconds) * 1000
            assert Fraction(float(ms)) == ms
            return float(ms)
        return v.timestamp()
    if isinstance(v, STimestamp):
        return msgpack.Timestamp(v.seconds, v.nanoseconds)
    if isinstance(v, SExt):
        return ext_type(v.type, v.data)
    if isinstance(v, SDict):
        return Map((k, to_model(x, opts)) for k, x in v.sorted_pairs())
    if isinstance(v, SStruct):
        if opts.struct_array:
            # Array form: every field in order, an absent optional as nil.
            return [to_model(x, opts) for _, _, x in v.items()]
        if opts.integer_keys:
            assert all(ik is not None for _, ik, _ in v.items()), v.name + " has no Int keys"
        # Map form: absent optionals are left out (encodeIfPresent).
        return Map((ik if opts.integer_keys else name, to_model(x, opts))
                   for name, ik, x in v.items() if x is not None)
    if isinstance(v, SEnum):
        assert not opts.struct_array, "enums in array form are not specified"
        return Map([(v.case, Map((k, to_model(x, opts)) for k, x in v.pairs()))])
    if isinstance(v, SAny):
        return v.model
    raise TypeError(v)


def to_json(v):
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, (float, F32)):
        x = v.value if isinstance(v, F32) else v
        # Non-finite floats as the strings of convertFromString(...).
        return x if math.isfinite(x) else nonfinite_name(x)
    if isinstance(v, list):
        return [to_json(e) for e in v]
    if isinstance(v, SData):
        return base64.b64encode(v.data).decode("ascii")
    if isinstance(v, SBytes):
        return list(v.data)
    if isinstance(v, SDate):
        return float(v.seconds)
    if isinstance(v, STimestamp):
        return {"seconds": v.seconds, "nanoseconds": v.nanoseconds}
    if isinstance(v, SExt):
        return {"type": v.type, "data": list(v.data)}
    if isinstance(v, SDict):
        # JSON object keys are strings; Int keys as their decimal text.
        return {str(k): to_json(x) for k, x in v.sorted_pairs()}
    if isinstance(v, SStruct):
        # JSON always uses the string keys (the CodingKeys' case names).
        return {name: to_json(x) for name, _, x in v.items() if x is not None}
    if isinstance(v, SEnum):
        return {v.case: {k: to_json(x) for k, x in v.pairs()}}
    if isinstance(v, SAny):
        raise NoJSON()
    raise TypeError(v)


# ---------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------

@dataclass
class Vector:
    name: str            # file name without .json: <family>-<short-name>
    type: str            # the Swift type
    description: str
    value: object        # a Swift value (see above)
    prefix: str          # hex the bytes must start with: checks the format chosen
    options: Options = DEFAULT


def V(name, type_, description, value, prefix, options=DEFAULT):
    return Vector(name, type_, description, value, prefix, options)


def ascii_text(n):
    """n bytes of readable ASCII, the same every run."""
    base = "The quick brown fox jumps over the lazy dog 0123456789. "
    return (base * (n // len(base) + 1))[:n]


def counting_bytes(n):
    return bytes(i % 256 for i in range(n))


def nil_and_bool():
    return [
        V("nil-value", "Int?", "nil: the nil value (c0)", None, "c0"),
        V("bool-true", "Bool", "true (c3)", True, "c3"),
        V("bool-false", "Bool", "false (c2)", False, "c2"),
    ]


def integers():
    # Each format's smallest and largest value; the type is the narrowest Swift
    # integer that holds the value (signed when it fits).
    return [
        V("posfixint-min", "Int8", "positive fixint: 0, the smallest", 0, "00"),
        V("posfixint-one", "Int8", "positive fixint: 1", 1, "01"),
        V("posfixint-max", "Int8", "positive fixint: 127, the largest", 127, "7f"),
        V("uint8-min", "UInt8", "uint8: 128, the smallest value past positive fixint", 128, "cc"),
        V("uint8-max", "UInt8", "uint8: 255, the largest uint8", 255, "cc"),
        V("uint16-min", "Int16", "uint16: 256, the smallest value past uint8", 256, "cd"),
        V("uint16-max", "UInt16", "uint16: 65535, the largest uint16", 65535, "cd"),
        V("uint32-min", "Int32", "uint32: 65536, the smallest value past uint16", 65536, "ce"),
        V("uint32-max", "UInt32", "uint32: 4294967295, the largest uint32", 2**32 - 1, "ce"),
        V("uint64-min", "Int64", "uint64: 4294967296, the smallest value past uint32", 2**32, "cf"),
        V("uint64-int64-max", "Int64",
          "uint64: 9223372036854775807 (Int64.max); non-negative values use the uint formats",
          INT64_MAX, "cf"),
        V("uint64-max", "UInt64", "uint64: 18446744073709551615 (UInt64.max)", UINT64_MAX, "cf"),
        V("negfixint-max", "Int8", "negative fixint: -1, the largest", -1, "ff"),
        V("negfixint-min", "Int8", "negative fixint: -32, the smallest", -32, "e0"),
        V("int8-max", "Int8", "int8: -33, the largest value past negative fixint", -33, "d0"),
        V("int8-min", "Int8", "int8: -128 (Int8.min), the smallest int8", -128, "d0"),
        V("int16-max", "Int16", "int16: -129, the largest value past int8", -129, "d1"),
        V("int16-min", "Int16", "int16: -32768 (Int16.min)", -32768, "d1"),
        V("int32-max", "Int32", "int32: -32769, the largest value past int16", -32769, "d2"),
        V("int32-min", "Int32", "int32: -2147483648 (Int32.min)", -(2**31), "d2"),
        V("int64-max", "Int64", "int64: -2147483649, the largest value past int32", -(2**31) - 1, "d3"),
        V("int64-min", "Int64", "int64: -9223372036854775808 (Int64.min)", INT64_MIN, "d3"),
    ]


def typed_integers():
    # The same integer space decoded into other Swift types: the bytes say the value,
    # the type only its range (e.g. Int32.max arrives as uint32).
    return [
        V("typed-int-zero", "Int", "Int: 0 (positive fixint)", 0, "00"),
        V("typed-int-300", "Int", "Int: 300 (uint16)", 300, "cd"),
        V("typed-int-minus-one", "Int", "Int: -1 (negative fixint)", -1, "ff"),
        V("typed-int-max", "Int", "Int: Int.max on 64-bit (uint64)", INT64_MAX, "cf"),
        V("typed-int-min", "Int", "Int: Int.min on 64-bit (int64)", INT64_MIN, "d3"),
        V("typed-int8-max", "Int8", "Int8: 127 (Int8.max, positive fixint)", 127, "7f"),
        V("typed-uint8-small", "UInt8", "UInt8: 5 (positive fixint)", 5, "05"),
        V("typed-uint8-max", "UInt8", "UInt8: 255 (UInt8.max, uint8)", 255, "cc"),
        V("typed-int16-from-uint8", "Int16", "Int16: 200 (uint8 into a signed type)", 200, "cc"),
        V("typed-int16-max", "Int16", "Int16: 32767 (Int16.max, uint16)", 32767, "cd"),
        V("typed-int16-min", "Int16", "Int16: -32768 (Int16.min, int16)", -32768, "d1"),
        V("typed-uint16-small", "UInt16", "UInt16: 7 (positive fixint)", 7, "07"),
        V("typed-uint16-max", "UInt16", "UInt16: 65535 (UInt16.max, uint16)", 65535, "cd"),
        V("typed-int32-max", "Int32", "Int32: 2147483647 (Int32.max, uint32)", 2**31 - 1, "ce"),
        V("typed-uint32-max", "UInt32", "UInt32: 4294967295 (UInt32.max, uint32)", 2**32 - 1, "ce"),
        V("typed-int64-small", "Int64", "Int64: -5 (negative fixint)", -5, "fb"),
        V("typed-uint64-zero", "UInt64", "UInt64: 0 (positive fixint)", 0, "00"),
    ]


def float32s():
    # Float values: packb(use_single_float=True) writes them as float32 (ca).
    cases = [
        ("zero", 0.0, "0.0"),
        ("negative-zero", -0.0, "-0.0"),
        ("one-and-a-half", 1.5, "1.5"),
        ("minus-two-and-a-quarter", -2.25, "-2.25"),
        ("max", 3.4028234663852886e38, "the largest finite float32 (Float.greatestFiniteMagnitude)"),
        ("min-normal", 1.1754943508222875e-38, "the smallest normal float32 (Float.leastNormalMagnitude)"),
        ("min-subnormal", 1.401298464324817e-45,
         "the smallest subnormal float32 (Float.leastNonzeroMagnitude)"),
        ("inf", math.inf, "+infinity"),
        ("minus-inf", -math.inf, "-infinity"),
        ("nan", math.nan, "NaN"),
    ]
    return [V("float32-" + name, "Float", "float32: " + text, F32(x), "ca") for name, x, text in cases]


def float64s():
    cases = [
        ("zero", 0.0, "0.0"),
        ("negative-zero", -0.0, "-0.0 (sign bit set)"),
        ("whole", 2.0, "2.0, a whole number still written as float64"),
        ("one-point-one", 1.1, "1.1 (not exact in binary)"),
        ("minus-one-and-a-half", -1.5, "-1.5"),
        ("1e300", 1e300, "1e300, beyond float32"),
        ("max", 1.7976931348623157e308, "the largest finite float64 (Double.greatestFiniteMagnitude)"),
        ("min-normal", 2.2250738585072014e-308, "the smallest normal float64 (Double.leastNormalMagnitude)"),
        ("min-subnormal", 5e-324, "5e-324, the smallest subnormal float64 (Double.leastNonzeroMagnitude)"),
        ("inf", math.inf, "+infinity"),
        ("minus-inf", -math.inf, "-infinity"),
        ("nan", math.nan, "NaN"),
    ]
    return [V("float64-" + name, "Double", "float64: " + text, x, "cb") for name, x, text in cases]


def strings():
    # The formats go by UTF-8 byte count, so the lengths here are in bytes.
    def s(n):
        return ascii_text(n)

    return [
        V("fixstr-empty", "String", "fixstr: the empty string", "", "a0"),
        V("fixstr-max", "String", "fixstr: 31 ASCII bytes, the largest fixstr", s(31), "bf"),
        V("str8-min", "String", "str8: 32 ASCII bytes, the smallest str8", s(32), "d920"),
        V("str8-max", "String", "str8: 255 ASCII bytes, the largest str8", s(255), "d9ff"),
        V("str16-min", "String", "str16: 256 ASCII bytes, the smallest str16", s(256), "da0100"),
        V("str16-max", "String", "str16: 65535 ASCII bytes, the largest str16", s(65535), "daffff"),
        V("str32-min", "String", "str32: 65536 ASCII bytes, the smallest str32", s(65536), "db00010000"),
        # Multi-byte characters: fewer characters than bytes.
        V("fixstr-utf8-max", "String",
          "fixstr: 15 x U+00E9 (2 bytes each) + 'a' = 16 characters, 31 bytes: still fixstr",
          "\u00e9" * 15 + "a", "bf"),
        V("str8-utf8-min", "String",
          "str8: 16 x U+00E9 = 16 characters but 32 bytes: str8, not fixstr",
          "\u00e9" * 16, "d920"),
        V("str16-utf8-cjk", "String",
          "str16: a CJK sentence (3 bytes a character) repeated to 270 bytes",
          "\u961f\u5217\u5df2\u7ecf\u6ee1\u4e86" * 15, "da010e"),
        V("utf8-latin", "String",
          "UTF-8: accented Latin, precomposed (U+00E8 ...): 30 characters, 36 bytes, so str8",
          "Cr\u00e8me br\u00fbl\u00e9e \u00e0 la fa\u00e7on de Zo\u00eb", "d924"),
        V("utf8-cjk", "String", "UTF-8: CJK '\u961f\u5217\u5df2\u7ecf\u6ee1\u4e86' (the queue is full), 18 bytes",
          "\u961f\u5217\u5df2\u7ecf\u6ee1\u4e86", "b2"),
        V("utf8-emoji", "String", "UTF-8: emoji, 4 bytes each: grinning face, thumbs up with skin tone",
          "\U0001F600\U0001F44D\U0001F3FD", "ac"),
        V("utf8-emoji-zwj", "String",
          "UTF-8: ZWJ family (woman, ZWJ, woman, ZWJ, girl, ZWJ, boy): one character, 25 bytes",
          "\U0001F469\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466", "b9"),
        V("utf8-flag", "String", "UTF-8: the flag of Japan, two regional indicators, 8 bytes",
          "\U0001F1EF\U0001F1F5", "a8"),
        V("utf8-combining", "String",
          "UTF-8: 'Cafe' + U+0301 combining acute: decomposed, 6 bytes; Swift's == equals "
          "it to the precomposed form, but the bytes must be kept",
          "Cafe\u0301", "a6"),
        V("utf8-precomposed", "String", "UTF-8: 'Caf' + U+00E9: precomposed, 5 bytes", "Caf\u00e9", "a5"),
        V("utf8-escapes", "String", "UTF-8: NUL, newline, tab, quote, backslash and U+2028 inside a string",
          "a\u0000b\n\t\"\\\u2028z", "ab"),
    ]


def binaries():
    def data(n):
        return SData(counting_bytes(n))

    return [
        V("bin8-empty", "Data", "bin8: 0 bytes", data(0), "c400"),
        V("bin8-max", "Data", "bin8: 255 bytes (0, 1, 2, ...), the largest bin8", data(255), "c4ff"),
        V("bin16-min", "Data", "bin16: 256 bytes, the smallest bin16", data(256), "c50100"),
        V("bin16-max", "Data", "bin16: 65535 bytes, the largest bin16", data(65535), "c5ffff"),
        V("bin32-min", "Data", "bin32: 65536 bytes, the smallest bin32", data(65536), "c600010000"),
        # [UInt8] is also bin; its JSON form is an array of numbers.
        V("bin8-uint8-array", "[UInt8]", "bin8: 3 bytes as [UInt8]", SBytes(bytes([0, 127, 255])), "c403"),
        V("bin16-uint8-array", "[UInt8]", "bin16: 256 bytes as [UInt8]", SBytes(counting_bytes(256)), "c50100"),
    ]


def arrays():
    def ints(n):
        return [i % 10 for i in range(n)]   # one-digit fixints keep the big files small

    mixed = [0, -1, 1.5, "two", True, None, b"\x00\xff", [1, [2]], Map([("k", "v")]),
             msgpack.ExtType(7, b"\x01"), msgpack.Timestamp(1, 0), UINT64_MAX, INT64_MIN]
    return [
        V("fixarray-empty", "[Int]", "fixarray: no elements", [], "90"),
        V("fixarray-max", "[Int]", "fixarray: 15 elements, the largest fixarray", ints(15), "9f"),
        V("array16-min", "[Int]", "array16: 16 elements, the smallest array16", ints(16), "dc0010"),
        V("array16-max", "[Int]", "array16: 65535 elements (i % 10), the largest array16", ints(65535), "dcffff"),
        V("array32-min", "[Int]", "array32: 65536 elements (i % 10), the smallest array32",
          ints(65536), "dd00010000"),
        V("fixarray-wide-ints", "[Int]", "fixarray: Ints of every integer format",
          [0, 127, 128, 65536, INT64_MAX, -1, -33, -129, -32769, INT64_MIN], "9a"),
        V("fixarray-strings", "[String]", "fixarray: strings, one empty, one multi-byte",
          ["a", "", "\u00fcber", "\u961f\u5217"], "94"),
        V("fixarray-mixed", "MessagePackValue",
          "fixarray: one value of many kinds (int, float64, str, bool, nil, bin, array, map, ext, "
          "timestamp, UInt64.max, Int64.min)", SAny(mixed), "9d"),
        V("fixarray-mixed-floats", "MessagePackValue",
          "fixarray: float32 1.5, float64 1.5, float32 NaN, float64 -inf (assembled by pack())",
          SAny([F32(1.5), 1.5, F32(math.nan), -math.inf]), "94ca"),
        V("fixarray-nested", "MessagePackValue", "fixarray: nested arrays, some empty",
          SAny([[1, 2], [], [[3]], ["a", [True, None]]]), "94"),
    ]


def maps():
    def counts(keys):
        return SDict({k: i % 10 for i, k in enumerate(keys)})

    small = ["k%02d" % i for i in range(16)]
    # 4 hex digits: fixed width, so sorted order is numeric order; short, to keep
    # the 64 Ki-entry files as small as possible.
    big = ["%04x" % i for i in range(65536)]
    return [
        V("fixmap-empty", "[String: Int]", "fixmap: no entries", SDict({}), "80"),
        V("fixmap-max", "[String: Int]", "fixmap: 15 entries k00...k14, the largest fixmap",
          counts(small[:15]), "8f"),
        V("map16-min", "[String: Int]", "map16: 16 entries k00...k15, the smallest map16",
          counts(small), "de0010"),
        V("map16-max", "[String: Int]", "map16: 65535 entries '0000'...'fffe', the largest map16",
          counts(big[:65535]), "deffff"),
        V("map32-min", "[String: Int]", "map32: 65536 entries '0000'...'ffff', the smallest map32",
          counts(big), "df00010000"),
        # Sorted by UTF-8 bytes: 'B' < 'a' < 'ab' < 'z' < U+00E9 < U+FF21 < U+1F600.
        # UTF-16 order would put U+1F600 (a surrogate pair) before U+FF21.
        V("fixmap-utf8-sorted-keys", "[String: Int]",
          "fixmap: keys in UTF-8 byte order, which differs from UTF-16 order for U+FF21 vs U+1F600",
          SDict({"\U0001F600": 7, "\uff21": 6, "\u00e9": 5, "z": 4, "ab": 3, "a": 2, "B": 1}), "87"),
        V("fixmap-int-keys", "[Int: String]", "fixmap: Int keys 1, 2, 300, -5, sorted numerically",
          SDict({1: "one", 2: "two", 300: "three hundred", -5: "minus five"}), "84fb"),
        V("fixmap-mixed-keys", "MessagePackValue",
          "fixmap: keys of many types (int, str, negative int, nil, float64, bin, bool), order kept",
          SAny(Map([(1, "int"), ("s", "str"), (-1, "negative"), (None, "nil"), (1.5, "float64"),
                    (b"\x00\xff", "bin"), (False, "bool")])), "87"),
        V("fixmap-dollar-key", "MessagePackValue",
          "fixmap: a string key that starts with '$', so the value uses the $map tag",
          SAny(Map([("$bin", "not a tag"), ("plain", 1)])), "82"),
        V("fixmap-unsorted", "MessagePackValue",
          "fixmap: string keys not in sorted order; a MessagePackValue keeps the order",
          SAny(Map([("z", 1), ("a", 2), ("m", 3)])), "83a17a"),
        V("fixmap-nested", "MessagePackValue", "fixmap: maps and arrays inside a map",
          SAny(Map([("outer", Map([("inner", [1, Map([("deep", None)])])])), ("empty", Map([]))])), "82"),
    ]


def extensions():
    def ext(t, n):
        return SExt(t, counting_bytes(n))

    return [
        V("fixext1-type-1", "MessagePackExtension", "fixext1: type 1, 1 byte", SExt(1, b"\x2a"), "d401"),
        V("fixext2-type-minus-2", "MessagePackExtension", "fixext2: type -2, 2 bytes", ext(-2, 2), "d5fe"),
        V("fixext4-type-127", "MessagePackExtension", "fixext4: type 127 (the largest), 4 bytes",
          ext(127, 4), "d67f"),
        V("fixext8-type-minus-128", "MessagePackExtension", "fixext8: type -128 (the smallest), 8 bytes",
          ext(-128, 8), "d780"),
        V("fixext16-type-0", "MessagePackExtension", "fixext16: type 0, 16 bytes", ext(0, 16), "d800"),
        V("ext8-empty", "MessagePackExtension", "ext8: type 3, 0 bytes (no fixext0 exists)",
          ext(3, 0), "c70003"),
        V("ext8-3-bytes", "MessagePackExtension", "ext8: type -5, 3 bytes (not a fixext size)",
          ext(-5, 3), "c703fb"),
        V("ext8-17-bytes", "MessagePackExtension", "ext8: type 9, 17 bytes, one past fixext16",
          ext(9, 17), "c71109"),
        V("ext8-max", "MessagePackExtension", "ext8: type 42, 255 bytes, the largest ext8",
          ext(42, 255), "c7ff2a"),
        V("ext16-min", "MessagePackExtension", "ext16: type -42, 256 bytes, the smallest ext16",
          ext(-42, 256), "c80100d6"),
        V("ext16-max", "MessagePackExtension", "ext16: type 100, 65535 bytes, the largest ext16",
          ext(100, 65535), "c8ffff64"),
        V("ext32-min", "MessagePackExtension", "ext32: type -100, 65536 bytes, the smallest ext32",
          ext(-100, 65536), "c9000100009c"),
    ]


def timestamps():
    def ts(name, seconds, ns, prefix, text):
        return V(name, "MessagePackTimestamp", text, STimestamp(seconds, ns), prefix)

    # msgpack picks the smallest of the three formats, as the spec asks.
    return [
        ts("timestamp32-zero", 0, 0, "d6ff", "timestamp 32: 1970-01-01T00:00:00Z"),
        ts("timestamp32-max", 2**32 - 1, 0, "d6ff",
           "timestamp 32: seconds 4294967295, the largest (2106-02-07T06:28:15Z)"),
        ts("timestamp64-one-ns", 0, 1, "d7ff",
           "timestamp 64: seconds 0, nanoseconds 1: any nanoseconds need 64 bits"),
        ts("timestamp64-past-uint32", 2**32, 0, "d7ff",
           "timestamp 64: seconds 4294967296, one past the 32-bit format"),
        ts("timestamp64-2023", 1_700_000_000, 123_456_789, "d7ff",
           "timestamp 64: seconds 1700000000, nanoseconds 123456789"),
        ts("timestamp64-max", 2**34 - 1, 999_999_999, "d7ff",
           "timestamp 64: seconds 17179869183 (34-bit max), nanoseconds 999999999"),
        ts("timestamp96-past-34-bits", 2**34, 0, "c70cff",
           "timestamp 96: seconds 17179869184, one past the 64-bit format"),
        ts("timestamp96-year-9999", 253_402_300_799, 0, "c70cff",
           "timestamp 96: 9999-12-31T23:59:59Z"),
        ts("timestamp96-minus-one", -1, 0, "c70cff",
           "timestamp 96: seconds -1: negative seconds need 96 bits"),
        ts("timestamp96-minus-one-ns", -1, 999_999_999, "c70cff",
           "timestamp 96: seconds -1, nanoseconds 999999999 (one ns before 1970)"),
        ts("timestamp96-int64-min", INT64_MIN, 0, "c70cff", "timestamp 96: seconds Int64.min"),
        ts("timestamp96-int64-max", INT64_MAX, 999_999_999, "c70cff",
           "timestamp 96: seconds Int64.max, nanoseconds 999999999"),
    ]


def dates():
    # Seconds that a Swift Date (a Double from 2001) holds exactly.
    def date(name, seconds, prefix, text, options=DEFAULT):
        return V(name, "Date", text, SDate(seconds), prefix, options)

    return [
        date("date-epoch", 0.0, "d6ff", "Date: 1970-01-01T00:00:00Z as timestamp 32"),
        date("date-one", 1.0, "d6ff", "Date: 1 s after 1970 as timestamp 32"),
        date("date-reference", float(SWIFT_REFERENCE_DATE), "d6ff",
             "Date: 2001-01-01T00:00:00Z, Swift's reference date (timeIntervalSinceReferenceDate 0)"),
        date("date-half", 1_700_000_000.5, "d7ff",
             "Date: 1700000000.5 s as timestamp 64 (nanoseconds 500000000)"),
        date("date-minus-one", -1.0, "c70cff", "Date: -1 s (1969) as timestamp 96"),
        date("date-minus-quarter", -0.25, "c70cff",
             "Date: -0.25 s as timestamp 96: seconds -1, nanoseconds 750000000"),
        date("date-seconds-since-1970", 1_700_000_000.5, "cb",
             "Date: 1700000000.5 with dateEncoding secondsSince1970: a float64",
             Options(dates="secondsSince1970")),
        date("date-milliseconds-since-1970", 1_700_000_000.5, "cb",
             "Date: 1700000000.5 with dateEncoding millisecondsSince1970: float64 1700000000500.0",
             Options(dates="millisecondsSince1970")),
    ]


# --- Swift types of the tests, as builders of Swift values ---

def inner(a, b, c):
    return SStruct("Inner", [("a", a), ("b", b), ("c", c)])


def order(id, item, price, placed, note, tags, inner_, counts, blob):
    return SStruct("Order", [
        ("id", id), ("item", item), ("price", price), ("placed", SDate(placed)), ("note", note),
        ("tags", tags), ("inner", inner_), ("counts", SDict(counts)), ("blob", SData(blob)),
    ])


def sample_order(note="Leave at the door"):
    return order(42, "Widget", 19.99, 1_700_000_000.5, note, ["red", "small"],
                 inner(-7, "h\u00e9llo", True), {"pears": 0, "apples": 3}, b"\x00\x01\x02\xff")


def structs():
    primitives = SStruct("Primitives", [
        ("i8", -128), ("i16", -32768), ("i32", -(2**31)), ("i64", INT64_MIN),
        ("u8", 255), ("u16", 65535), ("u32", 2**32 - 1), ("u64", UINT64_MAX),
        ("f", F32(-3.4028234663852886e38)), ("d", 1.7976931348623157e308),
        ("s", "\u961f\u5217\u5df2\u7ecf\u6ee1\u4e86"), ("b", False),
    ])
    second = order(7, "Gadget", 2.0, -0.25, None, [], inner(0, "", False), {}, b"")
    basket = SStruct("Basket", [
        ("orders", [sample_order(), second]),
        ("byID", SDict({7: "Gadget", -1: "none", 42: "Widget", 1000: "k"})),
        ("matrix", [[1, 2, 3], [4, 5, 6], [7, 8, 9]]),
        ("maybe", [1, None, 3]),
    ])
    shapes = [
        SEnum("circle", [("radius", 1.5)]),
        SEnum("rect", [(None, 2.0), (None, 3.0)]),
        SEnum("empty"),
        SEnum("labeled", [(None, "p"), ("at", inner(7, "pt", False))]),
    ]
    stamps = SStruct("Stamps", [
        ("when", STimestamp(1_700_000_000, 123_456_789)),
        ("ext", SExt(5, b"\x01\x02\x03")),
        ("date", SDate(1_700_000_000.25)),
        ("value", SAny(Map([("k", [1, -1, "two", None, True, F32(0.5), 2.5, b"\xff"]),
                            (3, msgpack.ExtType(9, b"\x00"))]))),
    ])
    dog = SStruct("Dog", [("breed", "Corgi"), ("super", SStruct("Animal", [("name", "Rex"), ("legs", 4)]))])
    intkeyed = SStruct("IntKeyed", [("id", 1, 7), ("name", 2, "seven"), ("score", 3, 7.5)])
    deep = 1
    for _ in range(30):
        deep = [deep]
    return [
        V("struct-inner", "Inner", "struct Inner {a, b, c} as a map", inner(-7, "h\u00e9llo", True), "83a161"),
        V("struct-primitives", "Primitives",
          "struct Primitives: each field at an extreme (Int8.min ... UInt64.max, -Float.greatestFiniteMagnitude "
          "as float32, Double.greatestFiniteMagnitude)", primitives, "8ca2"),
        V("struct-order", "Order",
          "struct Order with note present: Date as timestamp, nested Inner, sorted [String: Int], Data as bin",
          sample_order(), "89"),
        V("struct-order-note-absent", "Order", "struct Order with note nil: the key is left out (8 entries)",
          sample_order(None), "88"),
        V("struct-basket", "Basket",
          "struct Basket: two Orders, [Int: String] with sorted Int keys, 3x3 [[Int]], [Int?] with a nil",
          basket, "84"),
        V("struct-drawing", "Drawing",
          "struct Drawing with title: Shape enum cases in synthesized Codable form ({case: {label or _n: ...}})",
          SStruct("Drawing", [("title", "Sketch"), ("shapes", shapes)]), "82"),
        V("struct-drawing-untitled", "Drawing", "struct Drawing with title nil (left out)",
          SStruct("Drawing", [("title", None), ("shapes", [SEnum("rect", [(None, 1.0), (None, 1.0)])])]), "81"),
        V("struct-stamps", "Stamps",
          "struct Stamps: MessagePackTimestamp, MessagePackExtension, Date and MessagePackValue fields "
          "(the value holds a float32)", stamps, "84"),
        V("struct-dog", "Dog",
          "class Dog: Animal: breed, then Animal's fields under 'super' (super.encode(to: c.superEncoder()))",
          dog, "82"),
        V("struct-intkeyed", "IntKeyed", "struct IntKeyed with keyEncoding integer: keys 1, 2, 3",
          intkeyed, "830107", Options(integer_keys=True)),
        V("struct-order-as-array", "Order",
          "struct Order with structEncoding array: Order and Inner as arrays of their fields in order; "
          "the [String: Int] stays a map", sample_order(), "99", Options(struct_array=True)),
        V("struct-order-as-array-note-absent", "Order",
          "struct Order with structEncoding array, note nil: nil at its place, not left out",
          sample_order(None), "99", Options(struct_array=True)),
        V("struct-order-dates-as-seconds", "Order",
          "struct Order with dateEncoding secondsSince1970: placed is float64 1700000000.5",
          sample_order(), "89", Options(dates="secondsSince1970")),
        V("nested-array-depth-30", "MessagePackValue", "30 nested fixarrays around the int 1",
          SAny(deep), "91" * 30 + "01"),
    ]


FAMILIES = [nil_and_bool, integers, typed_integers, float32s, float64s, strings, binaries,
            arrays, maps, extensions, timestamps, dates, structs]

NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")


# ---------------------------------------------------------------------------
# Writing and checking
# ---------------------------------------------------------------------------

def build(vector):
    """The file's JSON object and facts the check needs."""
    model = to_model(vector.value, vector.options)
    raw = pack(model)
    obj = {"description": vector.description, "type": vector.type, "msgpack": raw.hex(),
           "value": tag(model)}
    try:
        obj["json"] = to_json(vector.value)
    except NoJSON:
        pass
    options = vector.options.to_json()
    if options:
        obj["options"] = options
    return obj


def write(path, obj):
    json.dumps(obj, allow_nan=False)  # NaN/inf must be tagged, never bare JSON tokens
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def check_file(path, vector):
    """Read a written file back and check it against the msgpack package."""
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    keys = list(obj)
    assert keys[:4] == ["description", "type", "msgpack", "value"], keys
    assert set(keys[4:]) <= {"json", "options"}, keys
    assert obj["type"] in ALLOWED_TYPES, obj["type"]
    # "json" is there exactly when the value has a JSONEncoder form.
    no_json = obj["type"] == "MessagePackValue" or obj["type"] == "Stamps"
    assert ("json" in obj) != no_json, "json present/absent wrongly"

    hex_ = obj["msgpack"]
    raw = bytes.fromhex(hex_)
    assert raw.hex() == hex_, "hex must be lowercase and re-parse to itself"
    assert hex_.startswith(vector.prefix), "%s: expected prefix %s" % (hex_[:16], vector.prefix)

    # ext_hook only so that negative ext codes decode (see ext_type); -1 stays a Timestamp.
    decoded = msgpack.unpackb(raw, raw=False, strict_map_key=False, timestamp=0, ext_hook=ext_type)
    model = untag(obj["value"])
    assert same(decoded, model), "unpackb disagrees with the tagged value"
    # The tagged value alone determines the bytes (float32 vs float64 included).
    assert pack(model) == raw, "tagged value packs to other bytes"
    if not has_f32(model):
        assert msgpack.packb(decoded, use_bin_type=True) == raw, "packb(unpackb(bytes)) != bytes"


def main():
    vectors = [v for family in FAMILIES for v in family()]
    names = [v.name for v in vectors]
    assert len(set(names)) == len(names), "duplicate vector names"
    for v in vectors:
        assert NAME_RE.match(v.name), "bad file name: " + v.name

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for stale in OUT_DIR.glob("*.json"):
        stale.unlink()

    families = {}
    for v in vectors:
        path = OUT_DIR / (v.name + ".json")
        write(path, build(v))
        try:
            check_file(path, v)
        except AssertionError as e:
            sys.exit("error: %s: %s" % (path.name, e))
        family = v.name.split("-")[0]
        families[family] = families.get(family, 0) + 1
        size = path.stat().st_size
        if size > SIZE_WARNING:
            print("note: %s is %.1f MB" % (path.name, size / 1e6))

    print("%d vectors written to %s" % (len(vectors), OUT_DIR))
    print("families: " + ", ".join("%s (%d)" % kv for kv in families.items()))


if __name__ == "__main__":
    main()
