"""serverfree: SAN server-free image backup."""
