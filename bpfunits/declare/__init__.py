"""Declared program configuration: global variables and map entries, typed by the object's BTF."""
