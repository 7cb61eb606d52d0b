"""One module per Processing algorithm; each turns parameters into one call of ``core``."""

ALGORITHMS = []
