"""ImmigrationOS: an open, lawful-by-design Immigration Lifecycle Operating System."""

__version__ = "0.1.0"
