"""Planning: what each hook should run, what it runs now, and the difference between them."""
