"""The package version, in one place: the package root, the modules below it and the build read it here."""

__version__ = "0.1.0"
