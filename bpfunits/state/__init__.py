"""bpfunits' state in bpffs: the state root's folders and the pins in them."""
