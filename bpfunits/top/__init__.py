"""`bpfunits top`: live packets/s and drops/s per hook and unit."""
