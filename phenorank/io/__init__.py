"""Data in and out of the store in the formats other tools write and read: profile tables."""
