"""The command side: the Dispatch application and its persistence wiring."""
