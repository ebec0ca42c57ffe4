"""Programs built on settee to show it at work (not part of the installed package)."""
