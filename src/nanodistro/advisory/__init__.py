"""Wolfi advisory documents (schema 2.0.2): model, decoding, validation, updates and feeds."""

from nanodistro.advisory.latest import triage_entries
from nanodistro.advisory.triage import TriageEntry

__all__ = ["TriageEntry", "triage_entries"]
