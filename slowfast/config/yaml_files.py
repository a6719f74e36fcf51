"""Reading YAML safely and strictly: `yaml.safe_load` that refuses a key repeated in one mapping.

YAML itself keeps only the last value of a repeated key, silently; in a config file or a generated prompt
file that is nearly always a mistake (an edit that did not replace the line it meant to, two runs appended to
one file). The config reader and the text-prompt readers both read through `safe_load_unique`.
"""

from __future__ import annotations

from typing import IO, Any, Optional, Union

import yaml

__all__ = ["RepeatedKeyError", "repeated_key", "safe_load_unique"]


class RepeatedKeyError(yaml.YAMLError):
    """A mapping holds a key twice; the message says which key and on which lines."""


def repeated_key(node: yaml.Node, path: str = "", visited: Optional[set[int]] = None) -> Optional[str]:
    """Where a mapping of the YAML tree `node` holds a key twice, as "key K is repeated (lines A and B)" (K
    dotted from the top); None when no key is repeated. A `<<` merge key may be overridden, and a node
    reached again through an alias is not walked again."""
    visited = set() if visited is None else visited
    if id(node) in visited:
        return None
    visited.add(id(node))
    children: list[tuple[str, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None or key_node.tag == "tag:yaml.org,2002:merge":
                children.append((path, value_node))
                continue
            full = f"{path}.{key}" if path else key
            if key in first_line:
                return f"key {full} is repeated (lines {first_line[key]} and {key_node.start_mark.line + 1})"
            first_line[key] = key_node.start_mark.line + 1
            children.append((full, value_node))
    elif isinstance(node, yaml.SequenceNode):
        children = [(path, item) for item in node.value]
    for child_path, child in children:
        found = repeated_key(child, child_path, visited)
        if found:
            return found
    return None


def safe_load_unique(stream: Union[str, IO[str]]) -> Any:
    """`yaml.safe_load` of one document, raising `RepeatedKeyError` when a mapping repeats a key (and
    `yaml.YAMLError` for text that is not YAML)."""
    loader = yaml.SafeLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        repeated = repeated_key(node)
        if repeated:
            raise RepeatedKeyError(repeated)
        return loader.construct_document(node)
    finally:
        loader.dispose()
