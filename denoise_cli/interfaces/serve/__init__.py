"""``denoise serve``: the web page, beside the command line in the interfaces layer (see :mod:`.app`)."""
