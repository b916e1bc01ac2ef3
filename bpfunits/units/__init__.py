"""The unit language: files on disk become validated, typed units."""
