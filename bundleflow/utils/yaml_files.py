"""YAML from untrusted files: safe types only, no aliases, no duplicate keys, bounded size.

``yaml.safe_load`` builds no Python objects, but it still expands aliases (a 1 KB file of
nested aliases, "billion laughs", grows to gigabytes), lets a key given twice silently win,
and reads any byte sequence its reader accepts. :func:`load_yaml` refuses all three, each with
one line naming the source: configs never need anchors, and a key given twice is a mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bundleflow.errors import InputError

MAX_YAML_BYTES = 1_000_000  # a config or run file is a few kB


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and duplicate mapping keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in bundleflow YAML", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {str(key)[:60]!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source: str) -> Any:
    """The YAML document ``text`` (module doc); :class:`InputError` naming ``source`` otherwise."""
    if len(text) > MAX_YAML_BYTES:
        raise InputError(f"{source}: {len(text)} characters, more than a YAML file here may hold ({MAX_YAML_BYTES})")
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        said = " ".join(str(exc).replace(' in "<unicode string>",', " at").split())
        raise InputError(f"{source}: not valid YAML ({said[:300]})") from exc


def read_yaml(path: str | Path) -> Any:
    """:func:`load_yaml` of the file ``path``, which must be UTF-8 text of at most
    :data:`MAX_YAML_BYTES` bytes; :class:`InputError` naming the file otherwise."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_YAML_BYTES:
        raise InputError(f"{p}: {size} bytes, more than a YAML file here may hold ({MAX_YAML_BYTES})")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return load_yaml(text, str(p))
