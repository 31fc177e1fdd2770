"""The small fake Windows file system Get-Item, Get-ChildItem and Remove-Item work on.

Each runspace pool gets its own copy, so Remove-Item in one test never shows in another.
Paths are case-insensitive, accept / or \\, and the usual ``C:`` drive forms.
"""

import copy
import datetime
import fnmatch
import typing

from peer.objects import FileAttributes, file_system_object

HOME = "C:\\Users\\testuser\\Documents"

_TZ = datetime.timezone(datetime.timedelta(hours=1))


def _when(day: int, hour: int) -> datetime.datetime:
    return datetime.datetime(2024, 3, day, hour, 15, 30, 123456, tzinfo=_TZ)


class Node:
    def __init__(
        self,
        name: str,
        length: int = 0,
        attributes: int = FileAttributes.Archive,
        day: int = 1,
        children: typing.Optional[typing.List["Node"]] = None,
    ) -> None:
        """A file, or a directory when ``children`` is given."""
        self.name = name
        self.is_dir = children is not None
        self.length = length
        self.attributes = int(FileAttributes.Directory) if self.is_dir else int(attributes)
        self.created = _when(day, 9)
        self.written = _when(day, 17)
        self.children: typing.Dict[str, Node] = {c.name.lower(): c for c in (children or [])}

    @property
    def hidden(self) -> bool:
        return bool(self.attributes & FileAttributes.Hidden)


def _file(name: str, length: int, attributes: int = FileAttributes.Archive, day: int = 2) -> Node:
    return Node(name, length, attributes, day)


def _dir(name: str, children: typing.List[Node], day: int = 1) -> Node:
    return Node(name, day=day, children=children)


def _template() -> Node:
    return _dir(
        "C:",
        [
            _dir(
                "Temp",
                [
                    _file("report.txt", 1234),
                    _file("data.csv", 4096, day=3),
                    _file("readonly.log", 512, FileAttributes.Archive | FileAttributes.ReadOnly, day=4),
                    _file("secret.txt", 42, FileAttributes.Archive | FileAttributes.Hidden, day=5),
                    _dir("Logs", [_file("app.log", 20480, day=6), _dir("old", [_file("2023.log", 777, day=7)], 6)], 5),
                ],
            ),
            _dir("Users", [_dir("testuser", [_dir("Documents", [_file("notes.txt", 64, day=8)])])]),
            _dir("Windows", [_file("win.ini", 92, day=1)]),
        ],
    )


_TEMPLATE = _template()


class FakeFileSystem:
    def __init__(self) -> None:
        self.root = copy.deepcopy(_TEMPLATE)

    @staticmethod
    def normalize(path: str) -> typing.Optional[str]:
        """Absolute ``C:\\a\\b`` form, or None when the path is not on drive C."""
        p = path.strip().replace("/", "\\")
        prefix = "microsoft.powershell.core\\filesystem::"
        if p.lower().startswith(prefix):
            p = p[len(prefix) :]
        if p.lower().startswith("filesystem::"):
            p = p[len("filesystem::") :]
        if len(p) >= 2 and p[1] == ":":
            if p[0].lower() != "c":
                return None
            p = "C:\\" + p[2:].lstrip("\\")
        else:
            p = HOME + "\\" + p
        parts: typing.List[str] = []
        for part in p.split("\\")[1:]:
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return "C:\\" + "\\".join(parts)

    def lookup(self, full: str) -> typing.Optional[typing.Tuple[str, Node]]:
        """(canonical full name, node) for a normalized path."""
        node = self.root
        names = ["C:"]
        for part in [p for p in full[3:].split("\\") if p]:
            child = node.children.get(part.lower()) if node.is_dir else None
            if child is None:
                return None
            node = child
            names.append(child.name)
        canonical = "C:\\" + "\\".join(names[1:])
        return canonical, node

    def resolve(self, path: str) -> typing.List[typing.Tuple[str, Node]]:
        """Items a path names; the last component may hold * and ? wildcards."""
        full = self.normalize(path)
        if full is None:
            return []
        leaf = full.rsplit("\\", 1)[-1]
        if any(c in leaf for c in "*?[") and full != "C:\\":
            parent = self.lookup(full.rsplit("\\", 1)[0] or "C:\\")
            if parent is None or not parent[1].is_dir:
                return []
            base = parent[0].rstrip("\\")
            return [
                (f"{base}\\{c.name}", c)
                for c in sorted(parent[1].children.values(), key=lambda n: n.name.lower())
                if fnmatch.fnmatchcase(c.name.lower(), leaf.lower())
            ]
        found = self.lookup(full)
        return [found] if found else []

    def children(self, full: str, node: Node, recurse: bool, force: bool) -> typing.List[typing.Tuple[str, Node]]:
        out = []
        base = full.rstrip("\\")
        for child in sorted(node.children.values(), key=lambda n: (not n.is_dir, n.name.lower())):
            if child.hidden and not force:
                continue
            child_full = f"{base}\\{child.name}"
            out.append((child_full, child))
            if recurse and child.is_dir:
                out.extend(self.children(child_full, child, recurse, force))
        return out

    def remove(self, full: str) -> None:
        parent_path, _, name = full.rpartition("\\")
        parent = self.lookup(parent_path if parent_path != "C:" else "C:\\")
        if parent is not None:
            parent[1].children.pop(name.lower(), None)


def to_object(full: str, node: Node) -> typing.Any:
    return file_system_object(full, node.is_dir, node.length, node.attributes, node.created, node.written)
