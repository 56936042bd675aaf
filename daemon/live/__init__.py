"""Live masking: one camera loop per stream, and the supervisor that follows the rules."""
