"""Reads CLIXML with psrpcore and prints its reading in the neutral JSON
form of neutral.py. Used by psrp-core/tests/clixml_psrpcore.rs to check
that psrpcore (an independent implementation) reads our encoder's output
as the values we meant.

stdin: a JSON list of {"name": str, "xml": str, "objs": bool}
stdout: a JSON object {name: {"value": neutral} or {"error": message}}
"""

import json
import pathlib
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from gen_corpus import cipher  # noqa: E402
from neutral import neutral  # noqa: E402
from psrpcore.types._serializer import deserialize, deserialize_clixml  # noqa: E402


def read(case):
    if case.get("objs"):
        items = deserialize_clixml(case["xml"], cipher(), preserve_streams=True)
        return {"_objs": [{"stream": s.value, "value": neutral(v)} for v, s in items]}
    return neutral(deserialize(ET.fromstring(case["xml"]), cipher()))


def main() -> None:
    sys.setrecursionlimit(10000)
    out = {}
    for case in json.load(sys.stdin):
        try:
            out[case["name"]] = {"value": read(case)}
        except Exception as e:  # reported per case, so one failure names itself
            out[case["name"]] = {"error": f"{type(e).__name__}: {e}"}
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
