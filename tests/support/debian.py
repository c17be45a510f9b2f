"""Debian packages a test needs that a fresh machine lacks (CI machines start without them):
installed once with apt-get, as root, non-interactively."""

from __future__ import annotations

import os
import subprocess


def apt_install(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env, timeout=900)
