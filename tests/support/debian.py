"""Debian packages a test needs that a fresh machine lacks (CI machines start without them):
installed once with apt-get, as root, non-interactively."""

from __future__ import annotations

import fcntl
import os
import subprocess

# The test workers may install at the same moment (PostgreSQL on one, Chromium on another):
# apt takes a lock and a second apt-get fails at once instead of waiting. They take turns here.
_TURNS = "/tmp/fruxon-tests-apt.lock"


def apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    wait = ["-o", "DPkg::Lock::Timeout=600"]  # and for an apt run outside the tests
    with open(_TURNS, "w") as turns:
        fcntl.flock(turns, fcntl.LOCK_EX)
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", *wait, "install", "-y", "-qq", *packages], check=True, env=env, timeout=900
        )
