"""Custody: originals escrowed for custodians, every access audited, the site's signing key."""
