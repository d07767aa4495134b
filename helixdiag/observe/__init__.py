"""Host observations: pure parsers that turn the text of host tools (lsof, otool, ps, command lines) into facts.

Nothing here runs a command; callers run the tool with a timeout and pass its output in.
"""
