"""Runnable examples of precache (``make example`` starts ``examples.site``)."""
