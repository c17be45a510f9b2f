"""The API's workers keep what they import, at start-up or later, out of the cyclic garbage
collector's full collections (fruxon_api/heap.py)."""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a fresh interpreter: a freeze is for the life of the process.
_SCRIPT = """
import gc, json, sys
from fruxon_api.heap import freeze_long_lived

freeze_long_lived()
at_start = gc.get_freeze_count()
kept = [[i] for i in range(5_000)]  # new objects, but no new module: not frozen
gc.collect()
without_imports = gc.get_freeze_count()
import email.mime.multipart, xml.dom.minidom  # a lazy import's worth of new objects
before_collection = gc.get_freeze_count()
gc.collect()
after_imports = gc.get_freeze_count()
unfrozen = len(gc.get_objects())
print(json.dumps([at_start, without_imports, before_collection, after_imports, unfrozen]))
"""


def test_what_start_up_and_later_imports_built_is_frozen_at_the_next_full_collection():
    output = subprocess.run(
        [sys.executable, "-c", _SCRIPT], check=True, capture_output=True, text=True
    ).stdout
    at_start, without_imports, before_collection, after_imports, unfrozen = json.loads(output)
    assert at_start > 5_000
    # Frozen objects can still be freed; nothing new imported, nothing was frozen again.
    assert without_imports <= at_start and before_collection <= at_start
    assert after_imports > before_collection + 1_000  # the modules, classes and functions
    assert unfrozen < 1_000  # what a full collection still walks


_WAVES = """
import gc, importlib, json
from fruxon_api import heap

heap.freeze_long_lived()
freezes = 0
for name in ("csv", "difflib", "fractions", "ftplib", "imaplib", "mailbox", "pdb", "plistlib",
             "poplib", "smtplib", "tarfile", "telnetlib", "wave", "zipapp"):
    before = gc.get_freeze_count()
    importlib.import_module(name)
    gc.collect()
    freezes += gc.get_freeze_count() > before
print(json.dumps([freezes, heap.MAX_LATER_FREEZES]))
"""


def test_later_freezes_stop_at_their_cap():
    """Each may keep a request's cyclic garbage for good: a worker that keeps importing
    stops freezing."""
    output = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _WAVES], check=True, capture_output=True, text=True
    ).stdout
    freezes, cap = json.loads(output)
    assert freezes == cap
