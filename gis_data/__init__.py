"""Synthetic GIS data for the twin: a sample community (小区) and district-scale benchmarks.

Everything here is made up (names, phone numbers, layouts), so it can be
committed and shared; the shapes and counts follow real Chinese high-rise
communities so that the layers, rules and dispatcher meet realistic data.
"""

from __future__ import annotations

from pathlib import Path

#: The committed sample community, written by ``generate_community().write(SAMPLE_DIR)``.
SAMPLE_DIR = Path(__file__).parent / "sample"
