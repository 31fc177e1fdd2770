"""Times psrpcore's CLIXML deserializer on the benchmark corpus that
`cargo bench -p psrp-core --bench clixml` writes to
target/clixml-bench/fs_items.xml (one PIPELINE_OUTPUT body per line), to
compare with our decoder on the same bytes.

Run: "$(tests/venv.sh)/bin/python" psrp-core/benches/psrpcore_bench.py [rounds]
Each message is parsed (ElementTree) and deserialized on its own, as a
client does per message. Each message is timed in every round and its best
time kept (on a shared machine the best is the undisturbed one, as in the
Rust summary); prints objects/s and MB/s.
"""

import pathlib
import sys
import time
import xml.etree.ElementTree as ET

from psrpcore.types._serializer import deserialize

path = pathlib.Path(__file__).resolve().parents[2] / "target" / "clixml-bench" / "fs_items.xml"
messages = [line for line in path.read_text(encoding="utf-8").split("\n") if line]
total_bytes = sum(len(m.encode("utf-8")) for m in messages)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3

best_each = [float("inf")] * len(messages)
for _ in range(rounds):
    for i, m in enumerate(messages):
        start = time.perf_counter()
        deserialize(ET.fromstring(m), None)
        best_each[i] = min(best_each[i], time.perf_counter() - start)
best = sum(best_each)

print(f"psrpcore: {len(messages)} objects, {total_bytes} bytes, sum of per-object bests of {rounds} rounds: {best:.3f} s")
print(f"psrpcore: {len(messages) / best:,.0f} objects/s, {total_bytes / best / 1e6:.2f} MB/s")
