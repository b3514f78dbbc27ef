"""Offline side: verify, extract and relocate bundled interpreters without network access."""
