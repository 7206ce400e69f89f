"""The cache plugin's pure parts: its Corefile options, the rules for what is kept and for how long, and the tables."""
