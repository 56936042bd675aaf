"""The redaction engine: frame geometry, setup, offline and online tracking, masking."""
