"""Reconciling: units and the live kernel in, one atomic change per hook out."""
