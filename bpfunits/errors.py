"""The base of every error bpfunits reports to its user."""


class BpfUnitsError(Exception):
    """An error with a message meant for the user."""
