"""Small file helpers for run records: JSON written through a temporary file and a rename."""

import json
import os


def write_json_atomically(path, value):
    """Write ``value`` as JSON to ``path`` through ``path.tmp`` and a rename: a crash at any
    moment leaves the previous file or the new one, never half of one."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2)
    os.replace(temporary, path)


def read_json(path):
    """The JSON in ``path``, or ``None`` when there is no such file."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
