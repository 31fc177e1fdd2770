"""Regenerates testdata/clixml/psrpcore: CLIXML written by psrpcore (an
independent implementation) for values covering every element and complex
form, each with psrpcore's own reading of it in the neutral JSON form of
neutral.py. The Rust test psrp-core/tests/clixml_psrpcore.rs decodes every
NAME.xml and compares with NAME.expected.json.

Run with the test virtualenv: "$(tests/venv.sh)/bin/python" tests/clixml/gen_corpus.py
The output is deterministic (fixed key, GUIDs and random seed).
"""

import datetime
import decimal
import json
import pathlib
import random
import sys
import uuid
import xml.etree.ElementTree as ET

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from neutral import neutral  # noqa: E402
from psrpcore._crypto import PSRemotingCrypto  # noqa: E402
from psrpcore.types import (  # noqa: E402
    ClixmlStream,
    ConsoleColor,
    ProgressRecord,
    ProgressRecordType,
    PSByte,
    PSChar,
    PSCustomObject,
    PSDateTime,
    PSDecimal,
    PSDict,
    PSDouble,
    PSDuration,
    PSEnumBase,
    PSFlagBase,
    PSGuid,
    PSIEnumerable,
    PSInt,
    PSInt16,
    PSInt64,
    PSList,
    PSNoteProperty,
    PSObject,
    PSQueue,
    PSSByte,
    PSScriptBlock,
    PSSecureString,
    PSSingle,
    PSStack,
    PSString,
    PSType,
    PSUInt,
    PSUInt16,
    PSUInt64,
    PSUri,
    PSVersion,
    PSXml,
    add_note_property,
)
from psrpcore.types._serializer import deserialize, deserialize_clixml, serialize, serialize_clixml  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "testdata" / "clixml" / "psrpcore"

# Fixed session key so that SecureString ciphertext is reproducible.
KEY = bytes(range(32))


def cipher() -> PSRemotingCrypto:
    c = PSRemotingCrypto()
    c.register_key(KEY)
    return c


@PSType(["Psrp.Test.FileAttributes"])
class FileAttributes(PSFlagBase):
    none = 0
    ReadOnly = 1
    Hidden = 2
    Directory = 16
    Archive = 32


@PSType(["Psrp.Test.Color"])
class Color(PSEnumBase):
    Red = 0
    Green = 1
    Blue = 2


@PSType(
    ["Psrp.Test.Item", "Psrp.Test.Base"],
    adapted_properties=[
        PSNoteProperty("Name"),
        PSNoteProperty("Length"),
        PSNoteProperty("Modified"),
    ],
    extended_properties=[PSNoteProperty("PSPath")],
)
class Item(PSObject):
    pass


def custom(**props) -> PSCustomObject:
    return PSCustomObject(**props)


def item(name: str, length: int) -> Item:
    i = Item(
        Name=name,
        Length=PSInt64(length),
        Modified=PSDateTime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        PSPath=f"Microsoft.PowerShell.Core\\FileSystem::C:\\{name}",
    )
    i.PSObject.to_string = f"C:\\{name}"
    return i


def cases():
    rnd = random.Random(4)
    utc = datetime.timezone.utc
    c = {}

    # Strings and escaping.
    c["string_empty"] = ""
    c["string_plain"] = "plain text"
    c["string_controls"] = "tab\tnl\ncr\rnul\x00us\x1fdel\x7fc1\x85\x9fnbsp\xa0"
    c["string_non_bmp"] = "emoji 😀 deseret 𐐷 cjk こんにちは"
    c["string_underscore_x"] = "_x0041_ _X0041_ _x _X x_ __x"
    c["string_xml_specials"] = "<a href=\"x\">&amp; 'q'</a> >"
    c["string_spaces"] = "  leading and trailing  \n  "
    # Every char escaping class in one.
    c["string_mixed"] = "".join(chr(i) for i in range(0, 0xB0)) + "\u2028\ud7ff\ue000\U0010FFFF"

    # Primitives.
    c["char"] = PSChar(65)
    c["char_nul"] = PSChar(0)
    c["char_high"] = PSChar(0x263A)
    c["bool_true"] = True
    c["bool_false"] = False
    c["datetime_utc_ticks"] = PSDateTime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=utc, nanosecond=700)
    c["datetime_offset"] = PSDateTime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=10, minutes=30)))
    c["datetime_negative_offset"] = PSDateTime(1999, 12, 31, 23, 0, 0, 500000, tzinfo=datetime.timezone(-datetime.timedelta(hours=5)))
    c["datetime_unspecified"] = PSDateTime(2001, 9, 9, 1, 46, 40)
    # psrpcore writes years below 1000 unpadded ("1-01-01"), which no .NET
    # reader accepts: the earliest date here is 1000.
    c["datetime_early"] = PSDateTime(1000, 1, 1, 0, 0, 0, tzinfo=utc)
    c["datetime_max"] = PSDateTime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc, nanosecond=900)
    c["timespan_zero"] = PSDuration(0)
    c["timespan_one_tick"] = PSDuration(nanoseconds=100)
    c["timespan_negative"] = PSDuration(seconds=-1.5)
    c["timespan_mixed"] = PSDuration(days=3, hours=4, minutes=5, seconds=6, microseconds=789012)
    c["timespan_days_only"] = PSDuration(days=2)
    c["timespan_large"] = PSDuration(days=10675199, hours=2, minutes=48, seconds=5, microseconds=477580)
    c["byte"] = PSByte(255)
    c["sbyte"] = PSSByte(-128)
    c["uint16"] = PSUInt16(65535)
    c["int16"] = PSInt16(-32768)
    c["uint32"] = PSUInt(4294967295)
    c["int32_min"] = PSInt(-2147483648)
    c["int32_max"] = 2147483647
    c["uint64"] = PSUInt64(18446744073709551615)
    c["int64_min"] = PSInt64(-9223372036854775808)
    c["int64_from_int"] = 2**40
    c["single"] = PSSingle(1.5)
    c["single_small"] = PSSingle(1.1754943508222875e-38)
    c["double"] = PSDouble(0.1)
    c["double_big"] = PSDouble(1.7976931348623157e308)
    c["double_tiny"] = PSDouble(5e-324)
    c["double_negative_exp"] = PSDouble(-1.5e-7)
    c["double_inf"] = PSDouble(float("inf"))
    c["double_neg_inf"] = PSDouble(float("-inf"))
    # psrpcore writes "NAN" (uppercased); .NET writes "NaN": both are read.
    c["double_nan"] = PSDouble(float("nan"))
    c["decimal"] = PSDecimal(decimal.Decimal("-12.3400"))
    c["decimal_max"] = PSDecimal(decimal.Decimal("79228162514264337593543950335"))
    # psrpcore writes small decimals in exponent form ("1E-28"), which .NET's
    # XmlConvert.ToDecimal (and our decoder) rejects: keep to plain forms.
    c["decimal_small"] = PSDecimal(decimal.Decimal("0.000001"))
    c["bytes_empty"] = b""
    c["bytes"] = bytes(rnd.getrandbits(8) for _ in range(1000))
    c["guid"] = PSGuid(uuid.UUID("792e5b37-4505-47ef-b7d2-8711bb7affa8"))
    c["uri"] = PSUri("http://host:8080/path with space?q=a&b=_x")
    c["version_2"] = PSVersion("1.2")
    c["version_3"] = PSVersion("1.2.3")
    c["version_4"] = PSVersion("10.0.17763.1")
    c["xml_document"] = PSXml('<root a="1"><c>text</c></root>')
    c["script_block"] = PSScriptBlock("Get-ChildItem | Where-Object { $_.Length -gt 1 }\n$_x")
    c["secure_string"] = PSSecureString("s3cr3t p@ss")
    c["null"] = None

    # Progress record: the <PR> element.
    c["progress_record"] = ProgressRecord(
        Activity="Copying _x files",
        ActivityId=3,
        StatusDescription="half way",
        CurrentOperation="file 5",
        ParentActivityId=1,
        PercentComplete=50,
        RecordType=ProgressRecordType.Processing,
        SecondsRemaining=10,
    )
    c["progress_record_completed"] = ProgressRecord(
        Activity="Done",
        ActivityId=0,
        StatusDescription="finished",
        RecordType=ProgressRecordType.Completed,
    )

    # Enums.
    c["enum_console_color"] = ConsoleColor.White
    c["enum_custom"] = Color.Blue
    c["enum_flags"] = FileAttributes.ReadOnly | FileAttributes.Archive
    c["enum_flags_zero"] = FileAttributes.none

    # Objects.
    c["custom_object"] = custom(
        Name="n",
        Count=5,
        Big=PSInt64(-1),
        When=PSDateTime(2021, 1, 1, tzinfo=utc),
        Flag=False,
        Nothing=None,
        Color=Color.Green,
    )
    c["typed_object_adapted_and_extended"] = item("a.txt", 12)
    c["type_name_reuse"] = PSList([item("a.txt", 1), item("b.txt", 2), item("c_x.txt", 3)])
    c["nested_objects"] = custom(Inner=custom(Deeper=custom(Leaf=1, Items=[1, 2])), Sibling=custom(X="y"))
    c["property_names_escaped"] = custom(**{"na_xme": 1, "with space": 2, "tab\tname": 3, "ünïcödé": 4, "a<b>&c": 5})
    c["empty_custom_object"] = custom()

    # Collections.
    c["list_mixed"] = [1, "two", None, True, PSInt64(4), [5, [6]]]
    c["list_empty"] = PSList()
    c["stack"] = PSStack([1, 2, 3])
    c["queue"] = make_queue(["first", "second"])
    c["ienumerable"] = PSIEnumerable(["a", 1])
    c["dict_strings"] = {"a": "b", "c": 1}
    c["dict_key_types"] = {1: "int key", False: "bool key", None: "none key", PSInt64(2): "int64 key"}
    c["dict_nested"] = PSDict({"inner": {"x": [1, 2]}, "list": [{"k": "v"}]})
    c["dict_empty"] = {}

    # References: the same object twice.
    shared = custom(Shared=True)
    c["shared_reference"] = [shared, shared, custom(Again=shared)]

    # Primitives with notes (as Get-Content output is).
    line = PSString("line one")
    add_note_property(line, "PSPath", "C:\\file.txt")
    add_note_property(line, "ReadCount", PSInt64(1))
    c["string_with_notes"] = line
    number = PSInt(42)
    add_note_property(number, "Note", "n")
    c["int_with_notes"] = number

    # psrpcore cannot write a cycle (its serializer recurses forever);
    # cycles are covered by the reverse-direction test and unit tests.

    # Deep nesting.
    deep: list = ["bottom"]
    for _ in range(40):
        deep = [deep]
    c["deep_lists"] = deep
    return c


def make_queue(items):
    q = PSQueue()
    for i in items:
        q.put(i)
    return q


def objs_document():
    """An <Objs> document with stream-tagged items, shared type names."""
    return [
        "output string",
        (ConsoleColor.Red, ClixmlStream.OUTPUT),
        ("an error", ClixmlStream.ERROR),
        (custom(A=1), ClixmlStream.OUTPUT),
        (custom(A=2), ClixmlStream.WARNING),
        (PSInt64(7), ClixmlStream.VERBOSE),
    ]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()
    names = []
    for name, value in cases().items():
        xml = ET.tostring(serialize(value, cipher()), encoding="unicode")
        back = deserialize(ET.fromstring(xml), cipher())
        (OUT / f"{name}.xml").write_text(xml, encoding="utf-8")
        (OUT / f"{name}.expected.json").write_text(
            json.dumps(neutral(back), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        names.append(name)

    doc = serialize_clixml(objs_document(), cipher())
    items = deserialize_clixml(doc, cipher(), preserve_streams=True)
    (OUT / "objs_streams.xml").write_text(doc, encoding="utf-8")
    expected = {"_objs": [{"stream": s.value, "value": neutral(v)} for v, s in items]}
    (OUT / "objs_streams.expected.json").write_text(
        json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    names.append("objs_streams")
    print(f"wrote {len(names)} cases to {OUT}")


if __name__ == "__main__":
    main()
