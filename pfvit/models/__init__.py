"""Model definitions. Importing this package registers every model with :mod:`pfvit.models.registry`."""
