"""Ways mail leaves: one module per provider behind the interface in base.py."""
